/**
 * How many tokens from one client address introspection may find inactive (unknown, expired,
 * revoked) per window, so that a flood of distinct bogus tokens does not cost one introspection
 * each.
 *
 * The introspection cache cannot help with that flood (every token is new) and the concurrency
 * limits only queue it (introspection-limiter.ts): an attacker who waits for each answer is never
 * over a queue, and the authorization server answers every token. A real client rarely presents a
 * dead token: its own expired or revoked one, once, after which the cache remembers the answer. So
 * each address (an IPv6 client by its /64, as the connection caps count it) may have `max` tokens
 * found inactive per `windowSeconds`; past that its uncached tokens are refused (429 with
 * Retry-After) without asking the authorization server until the window ends. Tokens already in the
 * cache are still answered, so a client with a valid, cached token keeps working even behind the
 * same address. Fixed windows in a bounded map: an attacker spreading over more addresses than it
 * holds only makes the oldest windows be forgotten.
 */
import { LRUCache } from 'lru-cache';
import { addressKey } from '../shared/connection-limits.ts';

export interface InactiveTokenBudget {
  /** Seconds until tokens from `address` may be introspected again; 0 while within the budget. */
  exhaustedFor(address: string): number;
  /** Counts one token from `address` that introspection found inactive. */
  spend(address: string): void;
}

export function createInactiveTokenBudget(
  limit: { max: number; windowSeconds: number },
  options: { maxAddresses?: number; now?: () => number } = {},
): InactiveTokenBudget {
  const now = options.now ?? Date.now;
  const windows = new LRUCache<string, { spent: number; resetAt: number }>({
    max: options.maxAddresses ?? 50_000,
  });
  const current = (address: string) => {
    const window = windows.get(addressKey(address));
    return window && window.resetAt > now() ? window : undefined;
  };
  return {
    exhaustedFor(address) {
      const window = current(address);
      if (!window || window.spent < limit.max) return 0;
      return Math.max(1, Math.ceil((window.resetAt - now()) / 1000));
    },
    spend(address) {
      const window = current(address);
      if (window) window.spent += 1;
      else windows.set(addressKey(address), { spent: 1, resetAt: now() + limit.windowSeconds * 1000 });
    },
  };
}
