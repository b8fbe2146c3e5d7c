/**
 * The revocation log (event-log.ts) in PostgreSQL, one log for every authorization-server instance
 * on the database: a gateway that reconnects to any instance is replayed from the same ids.
 *
 * Ids come from a counter row, not a sequence: `UPDATE … RETURNING` takes the row's lock until the
 * append commits, so appends are numbered in the order they commit. With a sequence, an event
 * numbered 9 could commit after 10, and a listener that had heard 10 would never be replayed 9.
 * Revocations are rare next to tokens, so one append at a time costs nothing that matters.
 *
 * Subscribers here hear this instance's appends; instance-notifications.ts carries them to the
 * others (LISTEN/NOTIFY).
 */
import type { RevocationEvent } from '../../shared/revocation-events.ts';
import type { Postgres } from '../store/postgres/connection.ts';
import type { Migration } from '../store/postgres/migrations.ts';
import { type RevocationEventLog, replayable, type StoredRevocationEvent } from './event-log.ts';

export const REVOCATION_LOG_MIGRATIONS: readonly Migration[] = [
  {
    id: 'revocation-log-1',
    sql: `CREATE TABLE revocation_log_state (
            singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
            stream_id text    NOT NULL,
            latest    bigint  NOT NULL
          );
          INSERT INTO revocation_log_state (stream_id, latest) VALUES (gen_random_uuid()::text, 0);
          CREATE TABLE revocation_events (
            id      bigint PRIMARY KEY,
            at      bigint NOT NULL,
            payload jsonb  NOT NULL
          );
          CREATE INDEX revocation_events_at ON revocation_events (at);
          CREATE INDEX revocation_events_token_hash ON revocation_events ((payload ->> 'token_hash'))
            WHERE payload ->> 'type' = 'token';
          CREATE INDEX revocation_events_client ON revocation_events ((payload ->> 'client_id'), at)
            WHERE payload ->> 'type' = 'client';`,
  },
];

interface EventRow {
  id: number;
  payload: RevocationEvent;
}

const stored = (row: EventRow): StoredRevocationEvent => ({ id: Number(row.id), event: row.payload });

export async function postgresRevocationEventLog(db: Postgres): Promise<RevocationEventLog> {
  const [state] = await db.query<{ stream_id: string }>('SELECT stream_id FROM revocation_log_state');
  if (!state) throw new Error('the revocation log has no state row: the migrations did not run');
  const listeners = new Set<(event: StoredRevocationEvent) => void>();
  const latestId = async () => {
    const [row] = await db.query<{ latest: number }>('SELECT latest FROM revocation_log_state');
    return Number(row!.latest);
  };
  const rowsAfter = async (id: number) =>
    (
      await db.query<EventRow>('SELECT id, payload FROM revocation_events WHERE id > $1 ORDER BY id', [id])
    ).map(stored);

  return {
    streamId: state.stream_id,
    async append(event) {
      const id = await db.transaction(async (tx) => {
        const [row] = await tx.query<{ latest: number }>(
          'UPDATE revocation_log_state SET latest = latest + 1 RETURNING latest',
        );
        const next = Number(row!.latest);
        await tx.query('INSERT INTO revocation_events (id, at, payload) VALUES ($1, $2, $3)', [
          next,
          event.at,
          JSON.stringify(event),
        ]);
        return next;
      });
      const kept = { id, event };
      for (const listener of listeners) listener(kept);
      return kept;
    },
    async since(id) {
      // Both in one snapshot, so that a prune between them cannot make a hole look like none.
      return db.transaction(async (tx) => {
        const [row] = await tx.query<{ latest: number; oldest: number | null }>(
          'SELECT s.latest, (SELECT min(id) FROM revocation_events) AS oldest FROM revocation_log_state s',
        );
        const oldest = row!.oldest === null ? undefined : Number(row!.oldest);
        if (!replayable(id, Number(row!.latest), oldest)) return undefined;
        return (
          await tx.query<EventRow>('SELECT id, payload FROM revocation_events WHERE id > $1 ORDER BY id', [
            id,
          ])
        ).map(stored);
      });
    },
    retained: () => rowsAfter(0),
    latestId,
    async hasToken(tokenHash) {
      const rows = await db.query(
        "SELECT 1 FROM revocation_events WHERE payload ->> 'type' = 'token' AND payload ->> 'token_hash' = $1 LIMIT 1",
        [tokenHash],
      );
      return rows.length > 0;
    },
    async hasClientSince(clientId, at) {
      const rows = await db.query(
        "SELECT 1 FROM revocation_events WHERE payload ->> 'type' = 'client' AND payload ->> 'client_id' = $1 AND at >= $2 LIMIT 1",
        [clientId, at],
      );
      return rows.length > 0;
    },
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    async prune(maxAgeSeconds, maxEvents) {
      const cutoff = Math.floor(Date.now() / 1000) - maxAgeSeconds;
      // Always a prefix of the log (everything up to the newest old event), so what is kept has no holes.
      await db.query(
        'DELETE FROM revocation_events WHERE id <= (SELECT max(id) FROM revocation_events WHERE at < $1)',
        [cutoff],
      );
      const removed = await db.query(
        'DELETE FROM revocation_events WHERE id <= (SELECT id FROM revocation_events ORDER BY id DESC LIMIT 1 OFFSET $1) RETURNING id',
        [maxEvents],
      );
      return removed.length;
    },
  };
}
