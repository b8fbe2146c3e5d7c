/**
 * One-time codes (one-time-codes.ts) in the shared PostgreSQL database, so that a code sent by one
 * instance verifies at another, and the attempt limit and the issue throttles hold in total across
 * every instance, not per instance (issue 10).
 *
 * How each rule stays atomic with several instances (READ COMMITTED, PostgreSQL's default):
 * - Verify first takes an attempt with one `UPDATE … SET attempts_left = attempts_left - 1 WHERE
 *   attempts_left > 0 … RETURNING`: the row lock serializes concurrent updates and each re-checks
 *   the condition on the latest row, so at most maxAttempts tries ever get a record to compare
 *   against, whichever instances they reach. The comparison itself stays in JavaScript
 *   (timingSafeEqual). A right code is then consumed by a `DELETE … WHERE code_hash = $hash`: of
 *   two requests racing with the right code, only the one whose DELETE removed the row signs in.
 * - Issue counts a key's events and records new ones while holding transaction-scoped advisory
 *   locks on the email key and then the address key (each in a class of its own, so no two issues
 *   can wait for each other in a cycle): no other instance reads those counters in between, so
 *   `max` per window holds in total. A refused request holds the locks only for its reads.
 * A database that cannot answer raises StoreUnavailableError (503): no code is issued or accepted
 * on a guess.
 */
import { randomBytes } from 'node:crypto';
import type { Postgres, Queryable } from '../store/postgres/connection.ts';
import type { Migration } from '../store/postgres/migrations.ts';
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

export const ONE_TIME_CODE_MIGRATIONS: readonly Migration[] = [
  {
    id: 'one-time-codes-1',
    sql: `
      CREATE TABLE login_codes (
        login_id      text    PRIMARY KEY,
        email         text    NOT NULL,  -- normalized address; '' for a decoy
        code_hash     bytea,             -- HMAC of the code; NULL once the record is locked
        decoy         boolean NOT NULL,  -- true: never matches, whatever code_hash holds
        attempts_left integer NOT NULL,
        expires_at    bigint  NOT NULL   -- ms since the epoch
      );
      CREATE INDEX login_codes_expires_at ON login_codes (expires_at);
      CREATE TABLE login_throttle (
        scope text   NOT NULL,           -- 'email' or 'address'
        key   bytea  NOT NULL,           -- HMAC of the email or address, never the value itself
        at    bigint NOT NULL            -- ms since the epoch
      );
      CREATE INDEX login_throttle_key ON login_throttle (scope, key, at);
      CREATE INDEX login_throttle_at ON login_throttle (at);
    `,
  },
];

/**
 * The first keys of pg_advisory_xact_lock(int, int) for the throttles ("LOGE", "LOGA"). The
 * two-key form never meets the one-key form (the migrations' lock); the second key is the first 32
 * bits of the throttle key's MAC, so unrelated keys rarely share a lock, and sharing one only
 * makes them wait for each other.
 */
const EMAIL_LOCK_CLASS = 0x4c4f4745;
const ADDRESS_LOCK_CLASS = 0x4c4f4741;

interface CodeRow {
  email: string;
  code_hash: Buffer | null;
  decoy: boolean;
  attempts_left: number;
  expires_at: number;
}

/** How often verify looks again when the record changed under it (a new code issued meanwhile). */
const VERIFY_ROUNDS = 3;

export function postgresOneTimeCodes(db: Postgres, options: OneTimeCodesOptions): OneTimeCodes {
  const rules = oneTimeCodeRules(options);
  const { now } = rules;

  /** Seconds until this key may issue again, or 0 if it may now; prunes the key's old events. */
  const waitFor = async (
    tx: Queryable,
    scope: string,
    key: Buffer,
    limit: RateLimit,
    at: number,
  ): Promise<number> => {
    const since = at - limit.windowSeconds * 1000;
    // The DELETE and the SELECT see the same snapshot: the SELECT filters what the DELETE removes.
    const rows = await tx.query<{ at: number }>(
      `WITH pruned AS (DELETE FROM login_throttle WHERE scope = $1 AND key = $2 AND at <= $3)
       SELECT at FROM login_throttle WHERE scope = $1 AND key = $2 AND at > $3 ORDER BY at`,
      [scope, key, since],
    );
    return throttleWait(
      rows.map((row) => Number(row.at)),
      limit,
      at,
    );
  };

  const store = async (
    input: IssueInput,
    hash: Uint8Array,
    decoy: boolean,
  ): Promise<{ retryAfterSeconds: number } | undefined> => {
    const { email, emailKey, addressKey } = rules.throttleKeys(input);
    return db.transaction(async (tx) => {
      // Email first, then address, always: see the file's comment.
      await tx.query('SELECT pg_advisory_xact_lock($1, $2)', [EMAIL_LOCK_CLASS, emailKey.readInt32BE(0)]);
      await tx.query('SELECT pg_advisory_xact_lock($1, $2)', [ADDRESS_LOCK_CLASS, addressKey.readInt32BE(0)]);
      const at = now();
      const wait = Math.max(
        await waitFor(tx, 'email', emailKey, rules.perEmail, at),
        await waitFor(tx, 'address', addressKey, rules.perAddress, at),
      );
      // A refused request is not counted (one-time-codes.ts says why).
      if (wait > 0) return { retryAfterSeconds: wait };
      await tx.query(
        `INSERT INTO login_throttle (scope, key, at) VALUES ('email', $1, $3), ('address', $2, $3)`,
        [emailKey, addressKey, at],
      );
      await tx.query(
        `INSERT INTO login_codes (login_id, email, code_hash, decoy, attempts_left, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (login_id) DO UPDATE SET email = excluded.email, code_hash = excluded.code_hash,
           decoy = excluded.decoy, attempts_left = excluded.attempts_left, expires_at = excluded.expires_at`,
        [input.loginId, decoy ? '' : email, Buffer.from(hash), decoy, rules.maxAttempts, at + rules.ttlMs],
      );
      return undefined;
    });
  };

  /** Why no attempt could be taken: the record is gone, locked or expired (expired ones are deleted). */
  const refusal = async (loginId: string): Promise<VerifyResult | undefined> => {
    const [row] = await db.query<{ locked: boolean; attempts_left: number; expires_at: number }>(
      'SELECT code_hash IS NULL AS locked, attempts_left, expires_at FROM login_codes WHERE login_id = $1',
      [loginId],
    );
    if (!row) return { status: 'unknown' };
    const at = now();
    const expired = at >= Number(row.expires_at);
    // Locked (or its last attempt taken and the lock on its way): the record stays until it
    // expires only so that further tries keep answering "locked" rather than "unknown".
    if (row.locked || row.attempts_left <= 0) {
      if (expired)
        await db.query('DELETE FROM login_codes WHERE login_id = $1 AND expires_at <= $2', [loginId, at]);
      return { status: 'locked' };
    }
    if (expired) {
      await db.query('DELETE FROM login_codes WHERE login_id = $1 AND expires_at <= $2', [loginId, at]);
      return { status: 'expired' };
    }
    // Live and unlocked: it changed since the attempt was refused (a new code); look again.
    return undefined;
  };

  return {
    async issue(input) {
      const code = rules.newCode();
      const refused = await store(input, rules.codeHash(input.loginId, code), false);
      return refused ? { status: 'throttled', ...refused } : { status: 'issued', code };
    },

    async issueDecoy(input) {
      // As in SQLite: a random "hash" of the same length, and the decoy flag that never matches.
      const refused = await store(input, randomBytes(32), true);
      return refused ? { status: 'throttled', ...refused } : { status: 'issued' };
    },

    async verify({ loginId, code }) {
      const candidate = rules.candidateOf(code);
      // Computed before looking at the record, so the time taken does not depend on what is stored.
      const candidateHash = rules.codeHash(loginId, candidate);
      for (let round = 0; round < VERIFY_ROUNDS; round++) {
        // Every try, right or wrong, takes one attempt first, atomically (see the file's comment).
        const [row] = await db.query<CodeRow>(
          `UPDATE login_codes SET attempts_left = attempts_left - 1
           WHERE login_id = $1 AND code_hash IS NOT NULL AND attempts_left > 0 AND expires_at > $2
           RETURNING email, code_hash, decoy, attempts_left, expires_at`,
          [loginId, now()],
        );
        if (!row) {
          const refused = await refusal(loginId);
          if (refused) return refused;
          continue;
        }
        const record: CodeRecord = {
          email: row.email,
          codeHash: row.code_hash,
          decoy: row.decoy,
          attemptsLeft: row.attempts_left,
          expiresAt: Number(row.expires_at),
        };
        if (rules.matches(record, candidate, candidateHash)) {
          // Only the request whose DELETE removed the row uses the code.
          const used = await db.query(
            'DELETE FROM login_codes WHERE login_id = $1 AND code_hash = $2 RETURNING 1',
            [loginId, candidateHash],
          );
          return used.length === 1 ? { status: 'ok', email: row.email } : { status: 'unknown' };
        }
        if (row.attempts_left <= 0) {
          // The last attempt is gone: drop the code. Guarded, so a code issued meanwhile stays.
          await db.query(
            'UPDATE login_codes SET code_hash = NULL WHERE login_id = $1 AND attempts_left <= 0',
            [loginId],
          );
          return { status: 'locked' };
        }
        return { status: 'invalid', attemptsLeft: row.attempts_left };
      }
      return { status: 'unknown' };
    },

    async purgeExpired() {
      const at = now();
      await db.query('DELETE FROM login_throttle WHERE at <= $1', [at - rules.longestWindowMs]);
      const gone = await db.query('DELETE FROM login_codes WHERE expires_at <= $1 RETURNING 1', [at]);
      return gone.length;
    },
  };
}
