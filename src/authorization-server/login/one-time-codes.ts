/**
 * Email one-time codes: issue, verify, throttle, with everything in SQLite.
 *
 * Security properties, and where each comes from:
 * - A code is six digits from crypto.randomInt, so a single guess succeeds with probability 10^-6.
 * - Only HMAC-SHA256(secret, loginId, code) is stored: reading the database (a backup, a stolen disk)
 *   gives neither the code nor a cheap way to brute-force it, as the 10^6 candidates cannot be tried
 *   without the secret. Binding the login id into the MAC ties a code to the login it was sent for.
 * - A record accepts at most maxAttempts wrong codes, then it is locked; a right code is deleted when it
 *   is used. Both checks run inside one transaction, so two racing requests cannot both use one code.
 * - Issuing is throttled per email and per source address. Since every new code brings maxAttempts new
 *   guesses, the throttle is what bounds guessing overall: at most perEmail.max * maxAttempts guesses
 *   per address and window against one account.
 * - Unapproved addresses get a decoy record (issueDecoy) that is throttled and fails exactly like a real
 *   one, so neither the answers nor the throttle tell an attacker which addresses are approved.
 *
 * Throttle counters are kept in SQLite, not in an in-memory LRU, because an LRU would forget them on
 * every restart and, being bounded, could be made to evict a victim's counter by flooding it with other
 * keys; either way the guess bound above would be lost. Rows stay bounded: a key never holds more than
 * `max` events (refused requests are not recorded), and old events are pruned on use and by purgeExpired.
 * Emails and addresses are stored in the throttle table only as keyed MACs, so the table does not become
 * a list of everyone (approved or not) who tried to sign in.
 */

import { createHmac, randomBytes, randomInt, timingSafeEqual } from 'node:crypto';
import type { DatabaseSync } from 'node:sqlite';
import { transaction } from '../store/sqlite-store.ts';

export interface RateLimit {
  /** Requests allowed per key in any window of windowSeconds (a sliding window). */
  max: number;
  windowSeconds: number;
}

export interface OneTimeCodesOptions {
  /** How long a code is valid; default 300. */
  ttlSeconds?: number;
  /** Wrong codes accepted before the record is locked; default 5. */
  maxAttempts?: number;
  perEmail: RateLimit;
  perAddress: RateLimit;
  /**
   * HMAC key, at least 32 bytes. It must be the same across restarts (persist it, or derive it from
   * persisted key material): with a new secret, outstanding codes stop verifying and throttle counters
   * restart from zero.
   */
  secret: Uint8Array;
  /** Clock in milliseconds since the epoch; tests inject one. */
  now?: () => number;
}

export interface IssueInput {
  /** Random, unguessable id of this login attempt: the caller passes the interaction uid. */
  loginId: string;
  email: string;
  /** Source address, the throttling key. Pass IPv6 clients as their /64, or one client has 2^64 keys. */
  address: string;
}

export type IssueResult =
  | { status: 'issued'; code: string }
  | { status: 'throttled'; retryAfterSeconds: number };
export type DecoyResult = { status: 'issued' } | { status: 'throttled'; retryAfterSeconds: number };

export interface VerifyInput {
  loginId: string;
  code: string;
  /**
   * Accepted for symmetry with issue and for future use; not used today, because guessing is already
   * bounded per address by the issue throttle times maxAttempts.
   */
  address: string;
}

export type VerifyResult =
  | { status: 'ok'; email: string }
  | { status: 'invalid'; attemptsLeft: number }
  | { status: 'expired' }
  | { status: 'locked' }
  | { status: 'unknown' };

export interface OneTimeCodes {
  /** Issues a code for an approved user, replacing any earlier code of this loginId; or refuses (throttled). */
  issue(input: IssueInput): IssueResult;
  /**
   * For an address that is not approved: the same throttling, and a record under loginId that no code
   * ever matches, so verify answers `invalid` then `locked` as for a real login. Send no mail for it.
   */
  issueDecoy(input: IssueInput): DecoyResult;
  verify(input: VerifyInput): VerifyResult;
  /** Deletes expired login records (and old throttle events); returns how many login records went. */
  purgeExpired(): number;
}

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

const CODE_PATTERN = /^\d{6}$/;

interface CodeRow {
  email: string;
  code_hash: Uint8Array | null;
  decoy: number;
  attempts_left: number;
  expires_at: number;
}

function checkLimit(name: string, limit: RateLimit): void {
  if (
    !Number.isInteger(limit.max) ||
    limit.max < 1 ||
    !Number.isFinite(limit.windowSeconds) ||
    limit.windowSeconds <= 0
  ) {
    throw new Error(`one-time codes: ${name} needs a positive integer max and a positive windowSeconds`);
  }
}

export function createOneTimeCodes(db: DatabaseSync, options: OneTimeCodesOptions): OneTimeCodes {
  const ttlMs = (options.ttlSeconds ?? 300) * 1000;
  const maxAttempts = options.maxAttempts ?? 5;
  const now = options.now ?? Date.now;
  if (!(ttlMs > 0)) throw new Error('one-time codes: ttlSeconds must be positive');
  if (!Number.isInteger(maxAttempts) || maxAttempts < 1) {
    throw new Error('one-time codes: maxAttempts must be a positive integer');
  }
  checkLimit('perEmail', options.perEmail);
  checkLimit('perAddress', options.perAddress);
  // RFC 2104 recommends a key no shorter than the hash output: 32 bytes for SHA-256.
  if (options.secret.byteLength < 32) throw new Error('one-time codes: secret must be at least 32 bytes');
  // Copied so that a caller reusing or zeroing its buffer cannot change the key under us.
  const secret = Buffer.from(options.secret);

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

  const mac = (...parts: string[]): Buffer => {
    const hmac = createHmac('sha256', secret);
    // A distinct first label per use, so a code MAC can never double as a throttle key or the reverse.
    hmac.update(parts.join('\0'), 'utf8');
    return hmac.digest();
  };
  const codeHash = (loginId: string, code: string) => mac('gatehouse-login-code', loginId, code);

  const inTransaction = <T>(fn: () => T): T => transaction(db, fn);

  /** Seconds until this key may issue again, or 0 if it may now. Records nothing. */
  const waitFor = (scope: string, key: Buffer, limit: RateLimit, at: number): number => {
    const windowMs = limit.windowSeconds * 1000;
    pruneEvents.run(scope, key, at - windowMs);
    const times = selectEvents.all(scope, key).map((row) => row.at as number);
    if (times.length < limit.max) return 0;
    // The event whose ageing out frees a slot; not simply the oldest if max was lowered since.
    const freeing = times[times.length - limit.max] ?? at;
    return Math.max(1, Math.ceil((freeing + windowMs - at) / 1000));
  };

  const store = (
    input: IssueInput,
    hash: Uint8Array,
    decoy: boolean,
  ): { retryAfterSeconds: number } | undefined => {
    if (typeof input.loginId !== 'string' || input.loginId.length === 0) {
      throw new TypeError('one-time codes: loginId is required');
    }
    // Throttle keys use the normalized address, so "Alice@x" and "alice@x " share one counter.
    const email = input.email.trim().toLowerCase();
    return inTransaction(() => {
      const at = now();
      const emailKey = mac('gatehouse-login-throttle', 'email', email);
      const addressKey = mac('gatehouse-login-throttle', 'address', input.address);
      const wait = Math.max(
        waitFor('email', emailKey, options.perEmail, at),
        waitFor('address', addressKey, options.perAddress, at),
      );
      // A refused request is not counted: otherwise an attacker could keep a victim's address throttled
      // forever by retrying, and the table would grow with every refused request.
      if (wait > 0) return { retryAfterSeconds: wait };
      insertEvent.run('email', emailKey, at);
      insertEvent.run('address', addressKey, at);
      upsertCode.run(input.loginId, decoy ? '' : email, hash, decoy ? 1 : 0, maxAttempts, at + ttlMs);
      return undefined;
    });
  };

  return {
    issue(input) {
      const code = randomInt(0, 1_000_000).toString().padStart(6, '0');
      const refused = store(input, codeHash(input.loginId, code), false);
      return refused ? { status: 'throttled', ...refused } : { status: 'issued', code };
    },

    issueDecoy(input) {
      // A random "hash" of the same length, so the record looks and is handled like any other; the decoy
      // flag, checked in verify, makes a match impossible even in the 2^-256 case.
      const refused = store(input, randomBytes(32), true);
      return refused ? { status: 'throttled', ...refused } : { status: 'issued' };
    },

    verify({ loginId, code }) {
      // Users paste codes with spaces or dashes ("123 456"); those are not part of the code.
      const candidate = code.replace(/[\s-]/g, '');
      // Computed before looking at the record, so the time taken does not depend on what is stored.
      const candidateHash = codeHash(loginId, candidate);
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
        // timingSafeEqual so that the comparison does not leak how many leading bytes matched. Every
        // input, malformed or not, costs an attempt: the rule is simpler and the answer the same.
        const matches =
          row.code_hash.byteLength === candidateHash.byteLength &&
          timingSafeEqual(row.code_hash, candidateHash) &&
          CODE_PATTERN.test(candidate) &&
          row.decoy === 0;
        if (matches) {
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

    purgeExpired() {
      return inTransaction(() => {
        const at = now();
        const longestWindowMs =
          Math.max(options.perEmail.windowSeconds, options.perAddress.windowSeconds) * 1000;
        deleteOldEvents.run(at - longestWindowMs);
        return Number(deleteExpiredCodes.run(at).changes);
      });
    },
  };
}
