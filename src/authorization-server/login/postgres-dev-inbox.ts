/**
 * The development inbox (dev-inbox.ts) in the shared PostgreSQL database (`dev_inbox`), so that a
 * code mailed by one instance shows at /dev/inbox of every instance behind the balancer. The same
 * bounds as in memory: at most maxMessages rows (each add deletes those beyond), none older than
 * ttlMs (deleted on add, never listed).
 */
import { randomUUID } from 'node:crypto';
import type { Postgres } from '../store/postgres/connection.ts';
import type { Migration } from '../store/postgres/migrations.ts';
import { type DevInbox, type DevInboxOptions, devInboxBounds } from './dev-inbox.ts';

export const DEV_INBOX_MIGRATIONS: readonly Migration[] = [
  {
    id: 'dev-inbox-1',
    sql: `
      CREATE TABLE dev_inbox (
        seq       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        id        text   NOT NULL,
        recipient text   NOT NULL,
        subject   text   NOT NULL,
        body      text   NOT NULL,
        sent_at   bigint NOT NULL
      );
    `,
  },
];

export function postgresDevInbox(db: Postgres, options: DevInboxOptions = {}): DevInbox {
  const { maxMessages, ttlMs, now } = devInboxBounds(options);
  return {
    async add(message) {
      const at = now();
      await db.query(
        'INSERT INTO dev_inbox (id, recipient, subject, body, sent_at) VALUES ($1, $2, $3, $4, $5)',
        [randomUUID(), message.to, message.subject, message.text, at],
      );
      // Two instances adding at once may leave a row or two beyond the bound until the next add;
      // list never shows more than maxMessages.
      await db.query(
        `DELETE FROM dev_inbox WHERE sent_at <= $1
           OR seq <= (SELECT seq FROM dev_inbox ORDER BY seq DESC OFFSET $2 LIMIT 1)`,
        [at - ttlMs, maxMessages],
      );
    },
    async list() {
      const rows = await db.query<{
        id: string;
        recipient: string;
        subject: string;
        body: string;
        sent_at: number;
      }>(
        'SELECT id, recipient, subject, body, sent_at FROM dev_inbox WHERE sent_at > $1 ORDER BY seq DESC LIMIT $2',
        [now() - ttlMs, maxMessages],
      );
      return rows.map((row) => ({
        id: row.id,
        to: row.recipient,
        subject: row.subject,
        text: row.body,
        time: new Date(Number(row.sent_at)).toISOString(),
      }));
    },
  };
}
