/**
 * The `jti`s of DPoP proofs seen (RFC 9449 §11.1), per key, for as long as each proof could still be
 * accepted, so that a captured proof cannot be replayed.
 *
 * A bounded LRU would let anyone flush it: proofs are cheap to make with a key of one's own, and
 * every new entry would push out the oldest, a victim's included (found by the review of issue 7).
 * So nothing is ever evicted before it lapses:
 * - entries sit in one bucket per key thumbprint; only the holder of a private key can add to its
 *   bucket, and a bucket holds at most `maxEntriesPerKey` proofs (past that, the key's next proofs
 *   are refused until old ones lapse: `key-busy`, a 429);
 * - across all keys at most `maxEntries`; past that, new proofs are refused (`full`, a 503) rather
 *   than old ones forgotten;
 * - a proof is recorded as soon as it verifies (a concurrent replay meets it) and forgotten again
 *   when its request is not let through (`forget`): an unbound, inactive or revoked token's proofs
 *   take no room.
 */

export type ReplayVerdict = 'fresh' | 'replayed' | 'key-busy' | 'full';

export interface DpopReplayCache {
  /** Records `jti` for the key `jkt` until `expiresAtMs`, unless it is already there or there is no room. */
  record(jkt: string, jti: string, expiresAtMs: number): ReplayVerdict;
  /** Removes a recorded `jti` again (its request was refused). */
  forget(jkt: string, jti: string): void;
  readonly size: number;
}

export interface DpopReplayCacheOptions {
  maxEntries: number;
  maxEntriesPerKey: number;
  /** Milliseconds since the epoch; tests pass a clock. */
  now?: () => number;
}

/** A full sweep of every bucket at most this often (and whenever the cache looks full, at most as often). */
const SWEEP_INTERVAL_MS = 1000;

export function createDpopReplayCache(options: DpopReplayCacheOptions): DpopReplayCache {
  const now = options.now ?? Date.now;
  // Each bucket in insertion order; proofs of one key lapse in about that order (their `iat`s).
  const buckets = new Map<string, Map<string, number>>();
  let size = 0;
  let lastSweep = 0;

  const lapse = (bucket: Map<string, number>, t: number) => {
    for (const [jti, expiresAt] of bucket) {
      if (expiresAt > t) break;
      bucket.delete(jti);
      size -= 1;
    }
  };
  const sweep = (t: number) => {
    lastSweep = t;
    for (const [jkt, bucket] of buckets) {
      lapse(bucket, t);
      if (bucket.size === 0) buckets.delete(jkt);
    }
  };

  return {
    record(jkt, jti, expiresAtMs) {
      const t = now();
      if (t - lastSweep >= SWEEP_INTERVAL_MS && (size >= options.maxEntries || buckets.size > 0)) sweep(t);
      let bucket = buckets.get(jkt);
      if (bucket) {
        lapse(bucket, t);
        const seenUntil = bucket.get(jti);
        if (seenUntil !== undefined) return 'replayed';
        if (bucket.size >= options.maxEntriesPerKey) return 'key-busy';
      }
      if (size >= options.maxEntries) return 'full';
      if (!bucket) {
        bucket = new Map();
        buckets.set(jkt, bucket);
      }
      bucket.set(jti, expiresAtMs);
      size += 1;
      return 'fresh';
    },
    forget(jkt, jti) {
      const bucket = buckets.get(jkt);
      if (bucket?.delete(jti)) {
        size -= 1;
        if (bucket.size === 0) buckets.delete(jkt);
      }
    },
    get size() {
      return size;
    },
  };
}
