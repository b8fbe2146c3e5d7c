/**
 * Fixed-window request limits per key: brute force against registration and the token endpoint is
 * bounded (design §3). With SQLite (one instance) the windows are a bounded in-memory map here;
 * with PostgreSQL every instance counts in the shared database (postgres-rate-limit.ts), so the
 * limit holds in total, not per instance.
 */
import { LRUCache } from 'lru-cache';

export interface RateLimiter {
  /** Counts one request; returns the seconds to wait when over the limit, else 0. */
  hit(key: string): Promise<number>;
  /** The seconds to wait if one more request came now (0: it would pass), without counting it. */
  peek(key: string): Promise<number>;
}

/** Makes the limiter named `scope` (`registration`, `token-address`, ...) for a limit. */
export type RateLimiterFactory = (
  scope: string,
  limit: { max: number; windowSeconds: number },
) => RateLimiter;

/** Each limiter in this process's memory (one instance). */
export const memoryRateLimiters: RateLimiterFactory = (_scope, limit) => createRateLimiter(limit);

export function createRateLimiter(
  limit: { max: number; windowSeconds: number },
  maxKeys = 50_000,
): RateLimiter {
  const windows = new LRUCache<string, { count: number; resetAt: number }>({ max: maxKeys });
  const current = (key: string, now: number) => {
    let window = windows.get(key);
    if (!window || window.resetAt <= now) {
      window = { count: 0, resetAt: now + limit.windowSeconds * 1000 };
      windows.set(key, window);
    }
    return window;
  };
  const wait = (window: { resetAt: number }, now: number) =>
    Math.max(1, Math.ceil((window.resetAt - now) / 1000));
  return {
    async hit(key) {
      const now = Date.now();
      const window = current(key, now);
      window.count += 1;
      return window.count > limit.max ? wait(window, now) : 0;
    },
    async peek(key) {
      const now = Date.now();
      const window = windows.get(key);
      if (!window || window.resetAt <= now) return 0;
      return window.count >= limit.max ? wait(window, now) : 0;
    },
  };
}
