/**
 * The introspection cache: one introspection per token for a short while, instead of one per request.
 *
 * RFC 7662 §4 lets a protected resource cache introspection responses, and warns that a cached
 * "active" answer outlives a revocation. Here an entry lives for min(`maxSeconds`, the token's
 * remaining lifetime), and revocations announced by the authorization server remove entries at once
 * (revocation-listener.ts): by token, by grant, by subject, or all of them. While that channel is
 * down the lifetime is bounded further (`bound`), so the cache fails safe; and whenever it has not
 * been heard lately (a stream stalled with its connection up), only answers younger than the bound
 * are reused (`trustWhile`), so a revocation the stream is holding back counts within seconds.
 *
 * Active and inactive answers live in two bounded caches, so a flood of distinct bogus tokens (each
 * cached as inactive, so that a client repeating a dead token does not reach the authorization server
 * each time) can never push valid tokens out. Failures are never cached.
 *
 * Entries are keyed by a SHA-256 hash of the token, never the token itself, so a heap dump or a
 * debugging aid listing keys reveals no usable token. Concurrent requests with the same uncached token
 * share one introspection, and an introspection that was under way while a revocation arrived is
 * neither cached nor shared with later requests (it may predate the revocation).
 */
import { LRUCache } from 'lru-cache';
import { tokenHash } from '../shared/jwt.ts';
import { KeyIndex } from '../shared/key-index.ts';
import type { ActiveIntrospection, Introspection } from './introspection-client.ts';

export interface IntrospectionCacheOptions {
  maxSeconds: number;
  /** Bound on cached active tokens. */
  maxEntries: number;
  /** Bound on cached inactive answers (defaults to maxEntries). */
  inactiveMaxEntries?: number;
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
  /** Revocation: drops the entry of the token with this SHA-256 hash (base64url); the count dropped. */
  dropToken(hash: string): number;
  dropGrant(grantId: string): number;
  dropSubject(sub: string): number;
  dropClient(clientId: string): number;
  clear(): void;
  /** Caps entry lifetimes at `seconds` (while revocations cannot be heard); undefined lifts the cap. */
  bound(seconds: number | undefined): void;
  /**
   * Reuses an answer older than `seconds` only while `heard()` says revocations are being heard
   * right now; otherwise such an answer counts as a miss (and is asked again).
   */
  trustWhile(heard: () => boolean, seconds: number): void;
}

interface Entry {
  result: Introspection;
  /** Milliseconds since the epoch. */
  expiresAt: number;
  storedAt: number;
}

/** How long an answer may be reused: at most `maxSeconds`, and never past the token's `exp`. */
export function cacheLifetimeMs(result: Introspection, nowMs: number, maxSeconds: number): number {
  const max = maxSeconds * 1000;
  return result.active ? Math.min(max, result.exp * 1000 - nowMs) : max;
}

export function createIntrospectionCache(options: IntrospectionCacheOptions): IntrospectionCache {
  const now = options.now ?? Date.now;
  const byGrant = new KeyIndex();
  const bySubject = new KeyIndex();
  const byClient = new KeyIndex();
  const active = new LRUCache<string, Entry>({
    max: options.maxEntries,
    dispose: (entry, key) => {
      const result = entry.result as ActiveIntrospection;
      byGrant.remove(result.grantId, key);
      bySubject.remove(result.sub, key);
      byClient.remove(result.clientId, key);
    },
  });
  const inactive = new LRUCache<string, Entry>({ max: options.inactiveMaxEntries ?? options.maxEntries });
  /** Introspections under way, with the generation they started in (see lookup). */
  const inFlight = new Map<string, { request: Promise<Introspection>; generation: number }>();
  let hits = 0;
  let cap: number | undefined;
  let heard: () => boolean = () => true;
  let unheardMaxAgeMs = 0;
  /** Bumped by every revocation: an introspection that straddles one is not cached. */
  let generation = 0;

  const maxSeconds = () => (cap === undefined ? options.maxSeconds : Math.min(cap, options.maxSeconds));

  const fresh = (key: string): Entry | undefined => {
    for (const cache of [active, inactive]) {
      const entry = cache.get(key);
      if (!entry) continue;
      const t = now();
      if (entry.expiresAt <= t) {
        cache.delete(key);
        continue;
      }
      // Older than the bound and the stream unheard lately: a revocation may be held back.
      return entry.storedAt > t - unheardMaxAgeMs || heard() ? entry : undefined;
    }
    return undefined;
  };

  const store = (key: string, result: Introspection) => {
    const lifetime = cacheLifetimeMs(result, now(), maxSeconds());
    if (lifetime <= 0) return;
    // lru-cache's own TTL evicts lapsed entries early; `expiresAt` is the rule that decides.
    const storedAt = now();
    const entry = { result, expiresAt: storedAt + lifetime, storedAt };
    if (result.active) {
      active.set(key, entry, { ttl: lifetime });
      byGrant.add(result.grantId, key);
      bySubject.add(result.sub, key);
      byClient.add(result.clientId, key);
    } else {
      inactive.set(key, entry, { ttl: lifetime });
    }
  };

  const dropKeys = (keys: string[]) => {
    generation += 1;
    let dropped = 0;
    for (const key of keys) if (active.delete(key)) dropped += 1;
    return dropped;
  };

  return {
    async lookup(token, introspect) {
      const key = tokenHash(token);
      const cached = fresh(key);
      if (cached) {
        hits += 1;
        return { result: cached.result, source: 'hit' };
      }
      // Joined only when no revocation arrived since it started: its answer may predate one.
      const pending = inFlight.get(key);
      if (pending && pending.generation === generation) {
        return { result: await pending.request, source: 'shared' };
      }
      const started = generation;
      const request = introspect().then((result) => {
        // A made-up token is never cached: the check costs less than a cache entry would.
        if (generation === started && !(!result.active && result.madeUp)) store(key, result);
        return result;
      });
      const entry = { request, generation: started };
      inFlight.set(key, entry);
      try {
        return { result: await request, source: 'miss' };
      } finally {
        if (inFlight.get(key) === entry) inFlight.delete(key);
      }
    },
    get size() {
      return active.size + inactive.size;
    },
    get hits() {
      return hits;
    },
    keys: () => [...active.keys(), ...inactive.keys()],
    remainingMs(token) {
      const entry = fresh(tokenHash(token));
      return entry ? entry.expiresAt - now() : 0;
    },
    dropToken: (hash) => dropKeys([hash]),
    dropGrant: (grantId) => dropKeys(byGrant.take(grantId)),
    dropSubject: (sub) => dropKeys(bySubject.take(sub)),
    dropClient: (clientId) => dropKeys(byClient.take(clientId)),
    clear() {
      generation += 1;
      active.clear();
      inactive.clear();
      byGrant.clear();
      bySubject.clear();
      byClient.clear();
    },
    bound(seconds) {
      cap = seconds;
    },
    trustWhile(check, seconds) {
      heard = check;
      unheardMaxAgeMs = seconds * 1000;
    },
  };
}
