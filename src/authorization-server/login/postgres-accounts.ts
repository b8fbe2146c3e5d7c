/**
 * Accounts and consent records (accounts.ts) in the shared PostgreSQL database: the same tables
 * and answers as sqlite-accounts.ts, so a user who signed in at one instance is known at every
 * other, and a consent given at one is found (loadExistingGrant) and revoked at all. Every call is
 * one statement; a database that cannot answer raises StoreUnavailableError (503), never a guess.
 */
import type { Postgres } from '../store/postgres/connection.ts';
import type { Migration } from '../store/postgres/migrations.ts';
import { type Accounts, type ConsentGrant, grantUseThrottle } from './accounts.ts';

export const ACCOUNT_MIGRATIONS: readonly Migration[] = [
  {
    id: 'accounts-1',
    sql: `
      CREATE TABLE accounts (
        sub           text   PRIMARY KEY,
        email         text   NOT NULL,
        last_login_at bigint NOT NULL
      );
      CREATE TABLE consent_grants (
        sub       text NOT NULL,
        client_id text NOT NULL,
        grant_id  text NOT NULL,
        PRIMARY KEY (sub, client_id)
      );
      CREATE INDEX consent_grants_grant ON consent_grants (grant_id);
      CREATE INDEX consent_grants_client ON consent_grants (client_id);
      CREATE TABLE grant_use (
        grant_id     text   PRIMARY KEY,
        last_used_at bigint NOT NULL
      );
    `,
  },
];

const GRANT_COLUMNS =
  'SELECT g.sub, g.client_id, g.grant_id, u.last_used_at FROM consent_grants g LEFT JOIN grant_use u ON u.grant_id = g.grant_id';

interface GrantRow {
  sub: string;
  client_id: string;
  grant_id: string;
  last_used_at: number | null;
}

const grantOf = (row: GrantRow): ConsentGrant => ({
  sub: row.sub,
  clientId: row.client_id,
  grantId: row.grant_id,
  lastUsedAt: row.last_used_at === null ? undefined : Number(row.last_used_at),
});

export function postgresAccounts(db: Postgres): Accounts {
  const throttle = grantUseThrottle();
  return {
    async remember(sub, email) {
      await db.query(
        `INSERT INTO accounts (sub, email, last_login_at) VALUES ($1, $2, $3)
         ON CONFLICT (sub) DO UPDATE SET email = excluded.email, last_login_at = excluded.last_login_at`,
        [sub, email, Date.now()],
      );
    },
    async emailOf(sub) {
      const [row] = await db.query<{ email: string }>('SELECT email FROM accounts WHERE sub = $1', [sub]);
      return row?.email;
    },
    async emailsOf(subs) {
      const unique = [...new Set(subs)];
      if (unique.length === 0) return new Map();
      const rows = await db.query<{ sub: string; email: string }>(
        'SELECT sub, email FROM accounts WHERE sub = ANY($1::text[])',
        [unique],
      );
      return new Map(rows.map((row) => [row.sub, row.email]));
    },
    async grantFor(sub, clientId) {
      const [row] = await db.query<{ grant_id: string }>(
        'SELECT grant_id FROM consent_grants WHERE sub = $1 AND client_id = $2',
        [sub, clientId],
      );
      return row?.grant_id;
    },
    async rememberGrant(sub, clientId, grantId) {
      await db.query(
        `INSERT INTO consent_grants (sub, client_id, grant_id) VALUES ($1, $2, $3)
         ON CONFLICT (sub, client_id) DO UPDATE SET grant_id = excluded.grant_id`,
        [sub, clientId, grantId],
      );
    },
    async forgetGrant(grantId) {
      // One statement for both tables: a grant is never left half forgotten.
      await db.query(
        `WITH gone AS (DELETE FROM consent_grants WHERE grant_id = $1)
         DELETE FROM grant_use WHERE grant_id = $1`,
        [grantId],
      );
      throttle.forget(grantId);
    },
    async subjects() {
      const rows = await db.query<{ sub: string }>('SELECT sub FROM accounts ORDER BY sub');
      return rows.map((row) => row.sub);
    },
    async lastLoginAt(sub) {
      const [row] = await db.query<{ last_login_at: number }>(
        'SELECT last_login_at FROM accounts WHERE sub = $1',
        [sub],
      );
      return row ? Number(row.last_login_at) : undefined;
    },
    async grants({ sub, clientId }) {
      const rows =
        sub !== undefined && clientId !== undefined
          ? await db.query<GrantRow>(`${GRANT_COLUMNS} WHERE g.sub = $1 AND g.client_id = $2`, [
              sub,
              clientId,
            ])
          : sub !== undefined
            ? await db.query<GrantRow>(`${GRANT_COLUMNS} WHERE g.sub = $1 ORDER BY g.client_id`, [sub])
            : clientId !== undefined
              ? await db.query<GrantRow>(`${GRANT_COLUMNS} WHERE g.client_id = $1 ORDER BY g.sub`, [clientId])
              : await db.query<GrantRow>(`${GRANT_COLUMNS} ORDER BY g.sub, g.client_id`);
      return rows.map(grantOf);
    },
    async touchGrant(grantId) {
      const at = throttle.due(grantId);
      if (at === undefined) return;
      // GREATEST: an instance whose stamp is older than another's never moves "last used" back.
      await db.query(
        `INSERT INTO grant_use AS u (grant_id, last_used_at) VALUES ($1, $2)
         ON CONFLICT (grant_id) DO UPDATE SET last_used_at = GREATEST(u.last_used_at, excluded.last_used_at)`,
        [grantId, at],
      );
    },
  };
}
