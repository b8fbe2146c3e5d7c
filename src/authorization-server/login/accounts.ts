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
}

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
  `);
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
    forgetGrant: (grantId) => void deleteGrant.run(grantId),
    subjects: () => allSubjects.all().map((row) => String(row.sub)),
  };
}
