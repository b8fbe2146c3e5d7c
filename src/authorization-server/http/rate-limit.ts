/**
 * Fixed-window request limits per key (a source address), in a bounded in-memory map: brute force
 * against registration and the token endpoint is bounded (design §3) without a shared store. Behind
 * several replicas each keeps its own count; docs/deployment.md says so.
 */
import { LRUCache } from 'lru-cache';

export interface RateLimiter {
  /** Counts one request; returns the seconds to wait when over the limit, else 0. */
  hit(key: string): number;
}

export function createRateLimiter(
  limit: { max: number; windowSeconds: number },
  maxKeys = 50_000,
): RateLimiter {
  const windows = new LRUCache<string, { count: number; resetAt: number }>({ max: maxKeys });
  return {
    hit(key) {
      const now = Date.now();
      let window = windows.get(key);
      if (!window || window.resetAt <= now) {
        window = { count: 0, resetAt: now + limit.windowSeconds * 1000 };
        windows.set(key, window);
      }
      window.count += 1;
      return window.count > limit.max ? Math.max(1, Math.ceil((window.resetAt - now) / 1000)) : 0;
    },
  };
}
