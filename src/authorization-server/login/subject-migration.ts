/**
 * Subjects follow the installation's subject key (approved-users.ts `subjectFor`). At start, every
 * account whose stored subject is not what the key derives from its address is moved to the derived
 * one, everywhere the subject is kept: the account, its consent records, oidc-provider's rows
 * (sessions, grants, codes, tokens: `accountId`; interactions: the session's and the login
 * result's `accountId`) and the revocation log (`subject` events). That is how an installation
 * whose subjects were unkeyed SHA-256 hashes of the address (before the key existed) moves to keyed
 * ones, in one transaction, with no session ended and no grant lost.
 *
 * Only those known fields are rewritten, never other text: a client could otherwise name itself
 * after a guessed subject and read back, from its own registration, whether that account exists
 * and what its keyed subject became.
 *
 * What lives outside the store needs nothing: the gateway's and the MCP server's caches are dropped
 * or bounded while the authorization server is down (the revocation stream is cut), and exchanged
 * API tokens live minutes. Clients that stored a subject see a new one once.
 */
import { createHash } from 'node:crypto';
import type { DatabaseSync } from 'node:sqlite';
import { transaction } from '../store/sqlite-store.ts';
import { flushPendingWrites } from '../store/sqlite-write-batch.ts';

export interface SubjectMigration {
  /** Accounts moved to a new subject. */
  moved: number;
  /** Consent records dropped because the account already had one under its new subject. */
  consentsMerged: number;
}

/** How subjects were derived before the key: unkeyed SHA-256 of the normalized address. */
export function legacySubjectFor(normalizedEmail: string): string {
  return `user_${createHash('sha256').update(normalizedEmail, 'utf8').digest('base64url').slice(0, 22)}`;
}

/** Where oidc-provider's payloads hold a subject (models differ; a path a model lacks is skipped). */
const SUBJECT_PATHS: ReadonlyArray<readonly string[]> = [
  ['accountId'],
  ['session', 'accountId'],
  ['result', 'login', 'accountId'],
  ['lastSubmission', 'login', 'accountId'],
];

/** Moves the subjects of `payload` found in `moves`; true when it changed something. */
function moveSubjects(payload: Record<string, unknown>, moves: ReadonlyMap<string, string>): boolean {
  let changed = false;
  for (const path of SUBJECT_PATHS) {
    let holder: unknown = payload;
    for (const key of path.slice(0, -1)) holder = (holder as Record<string, unknown> | undefined)?.[key];
    if (holder === null || typeof holder !== 'object') continue;
    const last = path[path.length - 1]!;
    const value = (holder as Record<string, unknown>)[last];
    const next = typeof value === 'string' ? moves.get(value) : undefined;
    if (next !== undefined) {
      (holder as Record<string, unknown>)[last] = next;
      changed = true;
    }
  }
  return changed;
}

/** Accounts in the database, and which of them the key does not derive. */
export function staleSubjects(db: DatabaseSync, subjectOf: (email: string) => string) {
  // No table: nobody signed in here (with PostgreSQL the accounts are in the shared database).
  const hasAccounts =
    db.prepare("SELECT 1 AS one FROM sqlite_master WHERE type = 'table' AND name = 'accounts'").get() !==
    undefined;
  if (!hasAccounts) return { accounts: [], stale: [] };
  const accounts = db.prepare('SELECT sub, email FROM accounts').all() as Array<{
    sub: string;
    email: string;
  }>;
  return { accounts, stale: accounts.filter((account) => subjectOf(account.email) !== account.sub) };
}

/** Moves every account whose subject is not `subjectOf(email)`; a no-op once all are. */
export function migrateSubjects(db: DatabaseSync, subjectOf: (email: string) => string): SubjectMigration {
  flushPendingWrites(db);
  const { stale } = staleSubjects(db, subjectOf);
  if (stale.length === 0) return { moved: 0, consentsMerged: 0 };
  const moves = new Map(stale.map((account) => [account.sub, subjectOf(account.email)]));
  const hasRevocationLog =
    db
      .prepare("SELECT 1 AS one FROM sqlite_master WHERE type = 'table' AND name = 'revocation_events'")
      .get() !== undefined;
  let consentsMerged = 0;
  transaction(db, () => {
    const moveAccount = db.prepare(
      'INSERT OR REPLACE INTO accounts (sub, email, last_login_at) SELECT ?2, email, last_login_at FROM accounts WHERE sub = ?1',
    );
    const dropAccount = db.prepare('DELETE FROM accounts WHERE sub = ?');
    // An account that already has a consent record for a client under its new subject keeps that
    // one (the latest); the stale record for the same client goes, and is counted.
    const dropShadowed = db.prepare(
      'DELETE FROM consent_grants WHERE sub = ?1 AND client_id IN (SELECT client_id FROM consent_grants WHERE sub = ?2)',
    );
    const moveConsents = db.prepare('UPDATE consent_grants SET sub = ?2 WHERE sub = ?1');
    for (const [old, next] of moves) {
      moveAccount.run(old, next);
      dropAccount.run(old);
      consentsMerged += Number(dropShadowed.run(old, next).changes);
      moveConsents.run(old, next);
    }
    // One pass over the rows that may hold a subject at all.
    const rows = db
      .prepare("SELECT model, id, payload FROM oidc_models WHERE instr(payload, '\"user_') > 0")
      .all() as Array<{ model: string; id: string; payload: string }>;
    const update = db.prepare('UPDATE oidc_models SET payload = ? WHERE model = ? AND id = ?');
    for (const row of rows) {
      const payload = JSON.parse(row.payload) as Record<string, unknown>;
      if (moveSubjects(payload, moves)) update.run(JSON.stringify(payload), row.model, row.id);
    }
    if (hasRevocationLog) {
      const events = db
        .prepare("SELECT id, payload FROM revocation_events WHERE payload ->> '$.type' = 'subject'")
        .all() as Array<{ id: number; payload: string }>;
      const updateEvent = db.prepare('UPDATE revocation_events SET payload = ? WHERE id = ?');
      for (const event of events) {
        const payload = JSON.parse(event.payload) as { sub?: unknown };
        const next = typeof payload.sub === 'string' ? moves.get(payload.sub) : undefined;
        if (next !== undefined) updateEvent.run(JSON.stringify({ ...payload, sub: next }), event.id);
      }
    }
  });
  return { moved: stale.length, consentsMerged };
}
