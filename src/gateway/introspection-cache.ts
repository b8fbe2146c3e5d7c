/**
 * The introspection cache: one introspection per token for a short while, instead of one per request.
 *
 * Trade-off between speed and revocation. RFC 7662 §4 lets a protected resource cache
 * introspection responses, and warns that a cached "active" answer outlives a revocation. Here an
 * entry lives for min(`gateway.introspectionCache.maxSeconds`, the token's remaining lifetime), so
 * a revoked token keeps working at the gateway for at most `maxSeconds` (default 30 s); never after
 * its own `exp`. Lower `maxSeconds` for faster revocation at the price of more introspection calls;
 * raise it for fewer calls. Inactive answers are cached for `maxSeconds` too (a token never becomes
 * active again), so a client repeating a dead token does not reach the authorization server each
 * time. Failures are never cached: the next request asks again.
 *
 * Entries are keyed by a SHA-256 hash of the token, never the token itself, so a heap dump or a
 * debugging aid listing keys reveals no usable token. The cache is bounded (least recently used
 * entries go first), and concurrent requests with the same uncached token share one introspection.
 */
import { LRUCache } from 'lru-cache';
import { tokenHash } from '../shared/jwt.ts';
import type { Introspection } from './introspection-client.ts';

export interface IntrospectionCacheOptions {
  maxSeconds: number;
  maxEntries: number;
  /** Milliseconds since the epoch; tests pass a fake clock. */
  now?: () => number;
}

/** Where an answer came from: the cache, a new introspection, or one already under way for the same token. */
export type LookupSource = 'hit' | 'miss' | 'shared';

export interface IntrospectionCache {
  /** The cached answer for `token`, or the answer of `introspect`, which is then cached. */
  lookup(
    token: string,
    introspect: () => Promise<Introspection>,
  ): Promise<{ result: Introspection; source: LookupSource }>;
  readonly size: number;
  readonly hits: number;
  /** The stored keys (token hashes), for diagnostics and tests. */
  keys(): string[];
  /** Milliseconds the entry for `token` has left, or 0 when there is none. */
  remainingMs(token: string): number;
}

interface Entry {
  result: Introspection;
  /** Milliseconds since the epoch. */
  expiresAt: number;
}

/** How long an answer may be reused: at most `maxSeconds`, and never past the token's `exp`. */
export function cacheLifetimeMs(result: Introspection, nowMs: number, maxSeconds: number): number {
  const max = maxSeconds * 1000;
  return result.active ? Math.min(max, result.exp * 1000 - nowMs) : max;
}

export function createIntrospectionCache(options: IntrospectionCacheOptions): IntrospectionCache {
  const now = options.now ?? Date.now;
  const entries = new LRUCache<string, Entry>({ max: options.maxEntries });
  const inFlight = new Map<string, Promise<Introspection>>();
  let hits = 0;

  const fresh = (key: string): Entry | undefined => {
    const entry = entries.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt > now()) return entry;
    entries.delete(key);
    return undefined;
  };

  return {
    async lookup(token, introspect) {
      const key = tokenHash(token);
      const cached = fresh(key);
      if (cached) {
        hits += 1;
        return { result: cached.result, source: 'hit' };
      }
      const pending = inFlight.get(key);
      if (pending) return { result: await pending, source: 'shared' };
      const request = introspect().then((result) => {
        const lifetime = cacheLifetimeMs(result, now(), options.maxSeconds);
        // lru-cache's own TTL evicts lapsed entries early; `expiresAt` is the rule that decides.
        if (lifetime > 0) entries.set(key, { result, expiresAt: now() + lifetime }, { ttl: lifetime });
        return result;
      });
      inFlight.set(key, request);
      try {
        return { result: await request, source: 'miss' };
      } finally {
        inFlight.delete(key);
      }
    },
    get size() {
      return entries.size;
    },
    get hits() {
      return hits;
    },
    keys: () => [...entries.keys()],
    remainingMs(token) {
      const entry = fresh(tokenHash(token));
      return entry ? entry.expiresAt - now() : 0;
    },
  };
}
