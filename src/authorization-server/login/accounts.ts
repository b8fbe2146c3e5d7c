/**
 * Who has signed in, and which grant holds each user's consent for each client.
 *
 * Subjects are derived from the email address (approved-users.ts) and cannot be reversed, so the
 * address is remembered here at sign-in to answer `findAccount(sub)` later. Consent lives in an
 * oidc-provider Grant; this index finds a user's grant for a client even from a new browser
 * session, so consent is remembered per user and client, not per cookie.
 */
import type { DatabaseSync } from 'node:sqlite';

export interface Accounts {
  remember(sub: string, email: string): void;
  emailOf(sub: string): string | undefined;
  grantFor(sub: string, clientId: string): string | undefined;
  rememberGrant(sub: string, clientId: string, grantId: string): void;
  forgetGrant(grantId: string): void;
  /** Every subject that ever signed in. */
  subjects(): string[];
  /** When the subject last signed in (milliseconds), if ever. */
  lastLoginAt(sub: string): number | undefined;
  /** The consent grants of a user, or of a client. */
  grants(filter: { sub?: string; clientId?: string }): ConsentGrant[];
  /** Stamps the grant's last use (a token issued under it); written at most once a minute per grant. */
  touchGrant(grantId: string): void;
}

export interface ConsentGrant {
  sub: string;
  clientId: string;
  grantId: string;
  lastUsedAt: number | undefined;
}

/** A grant's last use is written at most this often: every token must not be a write of its own. */
const GRANT_USE_WRITE_INTERVAL_MS = 60_000;

export function createAccounts(db: DatabaseSync): Accounts {
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
  const lastTouch = new Map<string, number>();
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
  const allSubjects = db.prepare('SELECT sub FROM accounts');
  return {
    remember: (sub, email) => void upsertAccount.run(sub, email, Date.now()),
    emailOf: (sub) => (selectEmail.get(sub) as { email: string } | undefined)?.email,
    grantFor: (sub, clientId) =>
      (selectGrant.get(sub, clientId) as { grant_id: string } | undefined)?.grant_id,
    rememberGrant: (sub, clientId, grantId) => void upsertGrant.run(sub, clientId, grantId),
    forgetGrant: (grantId) => {
      deleteGrant.run(grantId);
      deleteUse.run(grantId);
      lastTouch.delete(grantId);
    },
    subjects: () => allSubjects.all().map((row) => String(row.sub)),
    lastLoginAt: (sub) => {
      const row = selectLogin.get(sub);
      return row ? Number(row.last_login_at) : undefined;
    },
    grants: ({ sub, clientId }) => {
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
    touchGrant: (grantId) => {
      const now = Date.now();
      const last = lastTouch.get(grantId);
      if (last !== undefined && now - last < GRANT_USE_WRITE_INTERVAL_MS) return;
      if (lastTouch.size >= 10_000) lastTouch.clear();
      lastTouch.set(grantId, now);
      touch.run(grantId, now);
    },
  };
}
