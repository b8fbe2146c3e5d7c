/**
 * The store's periodic housekeeping, whichever store it is: rows past their expiry are deleted
 * (find already hides them; this reclaims space) and, when configured, dynamically registered
 * clients nobody used for a long time are removed with everything of theirs.
 */
import type { OidcModelStore } from './oidc-model-store.ts';

/** Options of startHousekeeping. */
export interface HousekeepingOptions {
  /** How often to run, in milliseconds. */
  purgeIntervalMs: number;
  /** When set, each run also removes clients unused for this many seconds (see removeUnusedClients). */
  unusedClientSeconds?: number;
  /** Called after a run that removed something. */
  onRemoved?: (removed: { expired: number; clientIds: string[] }) => void;
  /** Called when a run fails (e.g. the database is locked); defaults to console.error. The timer keeps going. */
  onError?: (error: unknown) => void;
}

/**
 * Runs purgeExpired (and removeUnusedClients) every purgeIntervalMs on an unref'd timer; returns a
 * stop function. A run never overlaps the previous one. With several instances on one database each
 * runs it: the deletes are idempotent, so the only cost is the repeated work.
 */
export function startHousekeeping(store: OidcModelStore, options: HousekeepingOptions): () => void {
  let running = false;
  const run = async (): Promise<void> => {
    if (running) return;
    running = true;
    try {
      const expired = await store.purgeExpired();
      const clientIds =
        options.unusedClientSeconds === undefined
          ? []
          : await store.removeUnusedClients(options.unusedClientSeconds);
      if (expired > 0 || clientIds.length > 0) options.onRemoved?.({ expired, clientIds });
    } catch (error) {
      // A throw from a timer callback would crash the process; a failed purge is retried next tick.
      (options.onError ?? ((e: unknown) => console.error('gatehouse: store housekeeping failed', e)))(error);
    } finally {
      running = false;
    }
  };
  const timer = setInterval(() => void run(), options.purgeIntervalMs);
  // Housekeeping must not keep the process alive on shutdown.
  timer.unref();
  return () => clearInterval(timer);
}
