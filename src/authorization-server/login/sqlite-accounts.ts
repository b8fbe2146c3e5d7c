/**
 * Accounts and consent records (accounts.ts) in the authorization server's SQLite database. The
 * tables are also read by the legacy subject migration (subject-migration.ts), which runs on
 * SQLite only.
 */
import type { DatabaseSync } from 'node:sqlite';
import { type Accounts, type ConsentGrant, grantUseThrottle } from './accounts.ts';

export function createSqliteAccounts(db: DatabaseSync): Accounts {
  db.exec(`
    CREATE TABLE IF NOT EXISTS accounts (
      sub TEXT PRIMARY KEY,
      email TEXT NOT NULL,
      last_login_at INTEGER NOT NULL
    ) STRICT;
    CREATE TABLE IF NOT EXISTS consent_grants (
      sub TEXT NOT NULL,
      client_id TEXT NOT NULL,
      grant_id TEXT NOT NULL,
      PRIMARY KEY (sub, client_id)
    ) STRICT;
    CREATE INDEX IF NOT EXISTS consent_grants_grant ON consent_grants (grant_id);
    CREATE INDEX IF NOT EXISTS consent_grants_client ON consent_grants (client_id);
    CREATE TABLE IF NOT EXISTS grant_use (
      grant_id TEXT PRIMARY KEY,
      last_used_at INTEGER NOT NULL
    ) STRICT;
  `);
  const grantColumns =
    'SELECT g.sub, g.client_id, g.grant_id, u.last_used_at FROM consent_grants g LEFT JOIN grant_use u ON u.grant_id = g.grant_id';
  const grantsOfSub = db.prepare(`${grantColumns} WHERE g.sub = ? ORDER BY g.client_id`);
  const grantsOfClient = db.prepare(`${grantColumns} WHERE g.client_id = ? ORDER BY g.sub`);
  const grantsOfBoth = db.prepare(`${grantColumns} WHERE g.sub = ? AND g.client_id = ?`);
  const allGrants = db.prepare(`${grantColumns} ORDER BY g.sub, g.client_id`);
  const touch = db.prepare(
    'INSERT INTO grant_use (grant_id, last_used_at) VALUES (?, ?) ON CONFLICT (grant_id) DO UPDATE SET last_used_at = excluded.last_used_at',
  );
  const deleteUse = db.prepare('DELETE FROM grant_use WHERE grant_id = ?');
  const selectLogin = db.prepare('SELECT last_login_at FROM accounts WHERE sub = ?');
  const throttle = grantUseThrottle();
  const grantOf = (row: Record<string, unknown>): ConsentGrant => ({
    sub: String(row.sub),
    clientId: String(row.client_id),
    grantId: String(row.grant_id),
    lastUsedAt: row.last_used_at === null ? undefined : Number(row.last_used_at),
  });
  const upsertAccount = db.prepare(
    'INSERT INTO accounts (sub, email, last_login_at) VALUES (?, ?, ?) ON CONFLICT (sub) DO UPDATE SET email = excluded.email, last_login_at = excluded.last_login_at',
  );
  const selectEmail = db.prepare('SELECT email FROM accounts WHERE sub = ?');
  const selectGrant = db.prepare('SELECT grant_id FROM consent_grants WHERE sub = ? AND client_id = ?');
  const upsertGrant = db.prepare(
    'INSERT INTO consent_grants (sub, client_id, grant_id) VALUES (?, ?, ?) ON CONFLICT (sub, client_id) DO UPDATE SET grant_id = excluded.grant_id',
  );
  const deleteGrant = db.prepare('DELETE FROM consent_grants WHERE grant_id = ?');
  const allSubjects = db.prepare('SELECT sub FROM accounts ORDER BY sub');
  const emailOf = (sub: string) => (selectEmail.get(sub) as { email: string } | undefined)?.email;
  return {
    remember: async (sub, email) => void upsertAccount.run(sub, email, Date.now()),
    emailOf: async (sub) => emailOf(sub),
    emailsOf: async (subs) => {
      const found = new Map<string, string>();
      for (const sub of new Set(subs)) {
        const email = emailOf(sub);
        if (email !== undefined) found.set(sub, email);
      }
      return found;
    },
    grantFor: async (sub, clientId) =>
      (selectGrant.get(sub, clientId) as { grant_id: string } | undefined)?.grant_id,
    rememberGrant: async (sub, clientId, grantId) => void upsertGrant.run(sub, clientId, grantId),
    forgetGrant: async (grantId) => {
      deleteGrant.run(grantId);
      deleteUse.run(grantId);
      throttle.forget(grantId);
    },
    subjects: async () => allSubjects.all().map((row) => String(row.sub)),
    lastLoginAt: async (sub) => {
      const row = selectLogin.get(sub);
      return row ? Number(row.last_login_at) : undefined;
    },
    grants: async ({ sub, clientId }) => {
      const rows =
        sub !== undefined && clientId !== undefined
          ? grantsOfBoth.all(sub, clientId)
          : sub !== undefined
            ? grantsOfSub.all(sub)
            : clientId !== undefined
              ? grantsOfClient.all(clientId)
              : allGrants.all();
      return rows.map(grantOf);
    },
    touchGrant: async (grantId) => {
      const at = throttle.due(grantId);
      if (at !== undefined) touch.run(grantId, at);
    },
  };
}
