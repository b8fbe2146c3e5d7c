/**
 * One-time codes (one-time-codes.ts) in the authorization server's SQLite database. Each issue and
 * each verify is one transaction on the single connection, so racing requests are serialized: two
 * cannot both use one code, nor together try more than maxAttempts.
 */
import { randomBytes } from 'node:crypto';
import type { DatabaseSync } from 'node:sqlite';
import { transaction } from '../store/sqlite-store.ts';
import {
  type CodeRecord,
  type IssueInput,
  type OneTimeCodes,
  type OneTimeCodesOptions,
  oneTimeCodeRules,
  type RateLimit,
  throttleWait,
  type VerifyResult,
} from './one-time-codes.ts';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS login_codes (
  login_id      TEXT PRIMARY KEY,
  email         TEXT NOT NULL,     -- normalized address; '' for a decoy
  code_hash     BLOB,              -- HMAC of the code; NULL once the record is locked
  decoy         INTEGER NOT NULL,  -- 1: never matches, whatever code_hash holds
  attempts_left INTEGER NOT NULL,
  expires_at    INTEGER NOT NULL   -- ms since the epoch
) STRICT;
CREATE INDEX IF NOT EXISTS login_codes_expires_at ON login_codes (expires_at);
CREATE TABLE IF NOT EXISTS login_throttle (
  scope TEXT NOT NULL,             -- 'email' or 'address'
  key   BLOB NOT NULL,             -- HMAC of the email or address, never the value itself
  at    INTEGER NOT NULL           -- ms since the epoch
) STRICT;
CREATE INDEX IF NOT EXISTS login_throttle_key ON login_throttle (scope, key, at);
`;

interface CodeRow {
  email: string;
  code_hash: Uint8Array | null;
  decoy: number;
  attempts_left: number;
  expires_at: number;
}

export function createSqliteOneTimeCodes(db: DatabaseSync, options: OneTimeCodesOptions): OneTimeCodes {
  const rules = oneTimeCodeRules(options);
  const { now } = rules;

  db.exec(SCHEMA);

  const selectCode = db.prepare(
    'SELECT email, code_hash, decoy, attempts_left, expires_at FROM login_codes WHERE login_id = ?',
  );
  const upsertCode = db.prepare(
    `INSERT INTO login_codes (login_id, email, code_hash, decoy, attempts_left, expires_at)
     VALUES (?, ?, ?, ?, ?, ?)
     ON CONFLICT (login_id) DO UPDATE SET email = excluded.email, code_hash = excluded.code_hash,
       decoy = excluded.decoy, attempts_left = excluded.attempts_left, expires_at = excluded.expires_at`,
  );
  const deleteCode = db.prepare('DELETE FROM login_codes WHERE login_id = ?');
  const updateAttempts = db.prepare('UPDATE login_codes SET attempts_left = ? WHERE login_id = ?');
  const lockCode = db.prepare(
    'UPDATE login_codes SET code_hash = NULL, attempts_left = 0 WHERE login_id = ?',
  );
  const deleteExpiredCodes = db.prepare('DELETE FROM login_codes WHERE expires_at <= ?');
  const pruneEvents = db.prepare('DELETE FROM login_throttle WHERE scope = ? AND key = ? AND at <= ?');
  const selectEvents = db.prepare('SELECT at FROM login_throttle WHERE scope = ? AND key = ? ORDER BY at');
  const insertEvent = db.prepare('INSERT INTO login_throttle (scope, key, at) VALUES (?, ?, ?)');
  const deleteOldEvents = db.prepare('DELETE FROM login_throttle WHERE at <= ?');

  const inTransaction = <T>(fn: () => T): T => transaction(db, fn);

  /** Seconds until this key may issue again, or 0 if it may now. Records nothing. */
  const waitFor = (scope: string, key: Buffer, limit: RateLimit, at: number): number => {
    pruneEvents.run(scope, key, at - limit.windowSeconds * 1000);
    const times = selectEvents.all(scope, key).map((row) => row.at as number);
    return throttleWait(times, limit, at);
  };

  const store = (
    input: IssueInput,
    hash: Uint8Array,
    decoy: boolean,
  ): { retryAfterSeconds: number } | undefined => {
    const { email, emailKey, addressKey } = rules.throttleKeys(input);
    return inTransaction(() => {
      const at = now();
      const wait = Math.max(
        waitFor('email', emailKey, rules.perEmail, at),
        waitFor('address', addressKey, rules.perAddress, at),
      );
      // A refused request is not counted: otherwise an attacker could keep a victim's address throttled
      // forever by retrying, and the table would grow with every refused request.
      if (wait > 0) return { retryAfterSeconds: wait };
      insertEvent.run('email', emailKey, at);
      insertEvent.run('address', addressKey, at);
      upsertCode.run(
        input.loginId,
        decoy ? '' : email,
        hash,
        decoy ? 1 : 0,
        rules.maxAttempts,
        at + rules.ttlMs,
      );
      return undefined;
    });
  };

  return {
    async issue(input) {
      const code = rules.newCode();
      const refused = store(input, rules.codeHash(input.loginId, code), false);
      return refused ? { status: 'throttled', ...refused } : { status: 'issued', code };
    },

    async issueDecoy(input) {
      // A random "hash" of the same length, so the record looks and is handled like any other; the decoy
      // flag, checked in verify, makes a match impossible even in the 2^-256 case.
      const refused = store(input, randomBytes(32), true);
      return refused ? { status: 'throttled', ...refused } : { status: 'issued' };
    },

    async verify({ loginId, code }) {
      const candidate = rules.candidateOf(code);
      // Computed before looking at the record, so the time taken does not depend on what is stored.
      const candidateHash = rules.codeHash(loginId, candidate);
      return inTransaction((): VerifyResult => {
        const row = selectCode.get(loginId) as CodeRow | undefined;
        if (!row) return { status: 'unknown' };
        if (row.code_hash === null) {
          // Locked: the code itself is already gone; the record stays until it expires only so that
          // further tries keep answering "locked" rather than "unknown".
          if (now() >= row.expires_at) deleteCode.run(loginId);
          return { status: 'locked' };
        }
        if (now() >= row.expires_at) {
          deleteCode.run(loginId);
          return { status: 'expired' };
        }
        const record: CodeRecord = {
          email: row.email,
          codeHash: row.code_hash,
          decoy: row.decoy !== 0,
          attemptsLeft: row.attempts_left,
          expiresAt: row.expires_at,
        };
        if (rules.matches(record, candidate, candidateHash)) {
          deleteCode.run(loginId);
          return { status: 'ok', email: row.email };
        }
        const attemptsLeft = row.attempts_left - 1;
        if (attemptsLeft <= 0) {
          lockCode.run(loginId);
          return { status: 'locked' };
        }
        updateAttempts.run(attemptsLeft, loginId);
        return { status: 'invalid', attemptsLeft };
      });
    },

    async purgeExpired() {
      return inTransaction(() => {
        const at = now();
        deleteOldEvents.run(at - rules.longestWindowMs);
        return Number(deleteExpiredCodes.run(at).changes);
      });
    },
  };
}
