/**
 * Email one-time codes: issue, verify, throttle, in the store (SQLite, sqlite-one-time-codes.ts, or
 * the shared PostgreSQL database, postgres-one-time-codes.ts). This file holds the contract and
 * what both implementations share: option checks, the MACs, the throttle's arithmetic, the match.
 *
 * Security properties, and where each comes from:
 * - A code is six digits from crypto.randomInt, so a single guess succeeds with probability 10^-6.
 * - Only HMAC-SHA256(secret, loginId, code) is stored: reading the database (a backup, a stolen disk)
 *   gives neither the code nor a cheap way to brute-force it, as the 10^6 candidates cannot be tried
 *   without the secret. Binding the login id into the MAC ties a code to the login it was sent for.
 * - A record accepts at most maxAttempts wrong codes, then it is locked; a right code is deleted when it
 *   is used. Racing requests, at one instance or several, can neither both use one code nor together
 *   try more than maxAttempts codes (each store says how it makes that atomic).
 * - Issuing is throttled per email and per source address. Since every new code brings maxAttempts new
 *   guesses, the throttle is what bounds guessing overall: at most perEmail.max * maxAttempts guesses
 *   per address and window against one account.
 * - Unapproved addresses get a decoy record (issueDecoy) that is throttled and fails exactly like a real
 *   one, so neither the answers nor the throttle tell an attacker which addresses are approved.
 *
 * Throttle counters are kept in the store, not in an in-memory LRU, because an LRU would forget them on
 * every restart and, being bounded, could be made to evict a victim's counter by flooding it with other
 * keys; either way the guess bound above would be lost. Rows stay bounded: a key never holds more than
 * `max` events (refused requests are not recorded), and old events are pruned on use and by purgeExpired.
 * Emails and addresses are stored in the throttle table only as keyed MACs, so the table does not become
 * a list of everyone (approved or not) who tried to sign in.
 */

import { createHmac, randomInt, timingSafeEqual } from 'node:crypto';

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
  issue(input: IssueInput): Promise<IssueResult>;
  /**
   * For an address that is not approved: the same throttling, and a record under loginId that no code
   * ever matches, so verify answers `invalid` then `locked` as for a real login. Send no mail for it.
   */
  issueDecoy(input: IssueInput): Promise<DecoyResult>;
  verify(input: VerifyInput): Promise<VerifyResult>;
  /** Deletes expired login records (and old throttle events); returns how many login records went. */
  purgeExpired(): Promise<number>;
}

/** Builds the one-time codes of a store with the server's settings (store/store.ts). */
export type OneTimeCodesFactory = (options: OneTimeCodesOptions) => OneTimeCodes;

const CODE_PATTERN = /^\d{6}$/;

/** A stored login record, as both stores read it. */
export interface CodeRecord {
  email: string;
  /** HMAC of the code; null once the record is locked. */
  codeHash: Uint8Array | null;
  decoy: boolean;
  attemptsLeft: number;
  expiresAt: number;
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

/** The checked options and the computations both stores share. */
export interface OneTimeCodeRules {
  ttlMs: number;
  maxAttempts: number;
  perEmail: RateLimit;
  perAddress: RateLimit;
  now: () => number;
  /** Throttle events older than this are of no window's concern any more. */
  longestWindowMs: number;
  /** A fresh six-digit code. */
  newCode(): string;
  /** The MAC stored for a code of a login. */
  codeHash(loginId: string, code: string): Buffer;
  /** The code as typed, without the spaces or dashes users paste ("123 456"). */
  candidateOf(typed: string): string;
  /** The throttle keys of an issue request (MACs, never the email or address) and the normalized email. */
  throttleKeys(input: IssueInput): { email: string; emailKey: Buffer; addressKey: Buffer };
  /** True when the candidate is the record's code. */
  matches(record: CodeRecord, candidate: string, candidateHash: Uint8Array): boolean;
}

export function oneTimeCodeRules(options: OneTimeCodesOptions): OneTimeCodeRules {
  const ttlMs = (options.ttlSeconds ?? 300) * 1000;
  const maxAttempts = options.maxAttempts ?? 5;
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

  const mac = (...parts: string[]): Buffer => {
    const hmac = createHmac('sha256', secret);
    // A distinct first label per use, so a code MAC can never double as a throttle key or the reverse.
    hmac.update(parts.join('\0'), 'utf8');
    return hmac.digest();
  };
  return {
    ttlMs,
    maxAttempts,
    perEmail: options.perEmail,
    perAddress: options.perAddress,
    now: options.now ?? Date.now,
    longestWindowMs: Math.max(options.perEmail.windowSeconds, options.perAddress.windowSeconds) * 1000,
    newCode: () => randomInt(0, 1_000_000).toString().padStart(6, '0'),
    codeHash: (loginId, code) => mac('gatehouse-login-code', loginId, code),
    candidateOf: (typed) => typed.replace(/[\s-]/g, ''),
    throttleKeys(input) {
      if (typeof input.loginId !== 'string' || input.loginId.length === 0) {
        throw new TypeError('one-time codes: loginId is required');
      }
      // Throttle keys use the normalized address, so "Alice@x" and "alice@x " share one counter.
      const email = input.email.trim().toLowerCase();
      return {
        email,
        emailKey: mac('gatehouse-login-throttle', 'email', email),
        addressKey: mac('gatehouse-login-throttle', 'address', input.address),
      };
    },
    matches(record, candidate, candidateHash) {
      // timingSafeEqual so that the comparison does not leak how many leading bytes matched. Every
      // input, malformed or not, costs an attempt: the rule is simpler and the answer the same.
      return (
        record.codeHash !== null &&
        record.codeHash.byteLength === candidateHash.byteLength &&
        timingSafeEqual(record.codeHash, candidateHash) &&
        CODE_PATTERN.test(candidate) &&
        !record.decoy
      );
    },
  };
}

/**
 * Seconds until a key whose events in the window are `times` (ascending) may issue again, or 0 if it
 * may now.
 */
export function throttleWait(times: readonly number[], limit: RateLimit, at: number): number {
  if (times.length < limit.max) return 0;
  // The event whose ageing out frees a slot; not simply the oldest if max was lowered since.
  const freeing = times[times.length - limit.max] ?? at;
  return Math.max(1, Math.ceil((freeing + limit.windowSeconds * 1000 - at) / 1000));
}
