/**
 * Subjects follow the installation's subject key (approved-users.ts `subjectFor`). At start, every
 * account whose stored subject is not what the key derives from its address is moved to the derived
 * one, everywhere the subject is kept: the account, its consent records, oidc-provider's rows
 * (sessions, grants, codes, tokens: `accountId` in their JSON) and the revocation log. That is how
 * an installation whose subjects were unkeyed SHA-256 hashes of the address (before the key
 * existed) moves to keyed ones, in one transaction, with no session ended and no grant lost.
 *
 * Subjects are `user_` and 22 base64url characters, so `"user_…"` in quotes occurs in a JSON payload
 * only as that value: the payloads are rewritten by a textual replacement of the quoted subject.
 * What lives outside the store learns the new subject by itself: the gateway's and the MCP server's
 * caches start over when the authorization server restarts (the revocation stream's `reset`), and
 * exchanged API tokens live minutes. Clients that stored a subject see a new one once.
 */
import type { DatabaseSync } from 'node:sqlite';
import { transaction } from '../store/sqlite-store.ts';
import { flushPendingWrites } from '../store/sqlite-write-batch.ts';

export interface SubjectMigration {
  /** Accounts moved to a new subject. */
  moved: number;
}

/** Moves every account whose subject is not `subjectOf(email)`; a no-op once all are. */
export function migrateSubjects(db: DatabaseSync, subjectOf: (email: string) => string): SubjectMigration {
  flushPendingWrites(db);
  const accounts = db.prepare('SELECT sub, email FROM accounts').all() as Array<{
    sub: string;
    email: string;
  }>;
  const stale = accounts.filter((account) => subjectOf(account.email) !== account.sub);
  if (stale.length === 0) return { moved: 0 };
  const hasRevocationLog =
    db
      .prepare("SELECT 1 AS one FROM sqlite_master WHERE type = 'table' AND name = 'revocation_events'")
      .get() !== undefined;
  const replaceIn = (table: string) =>
    db.prepare(`UPDATE ${table} SET payload = replace(payload, ?1, ?2) WHERE instr(payload, ?1) > 0`);
  const models = replaceIn('oidc_models');
  const events = hasRevocationLog ? replaceIn('revocation_events') : undefined;
  const moveAccount = db.prepare(
    'INSERT OR REPLACE INTO accounts (sub, email, last_login_at) SELECT ?2, email, last_login_at FROM accounts WHERE sub = ?1',
  );
  const dropAccount = db.prepare('DELETE FROM accounts WHERE sub = ?');
  const moveConsents = db.prepare('UPDATE OR REPLACE consent_grants SET sub = ?2 WHERE sub = ?1');
  transaction(db, () => {
    for (const { sub, email } of stale) {
      const next = subjectOf(email);
      moveAccount.run(sub, next);
      dropAccount.run(sub);
      moveConsents.run(sub, next);
      models.run(JSON.stringify(sub), JSON.stringify(next));
      events?.run(JSON.stringify(sub), JSON.stringify(next));
    }
  });
  return { moved: stale.length };
}
