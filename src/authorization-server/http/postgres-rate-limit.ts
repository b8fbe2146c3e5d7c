/**
 * The fixed-window limits of rate-limit.ts counted in PostgreSQL, so that every
 * authorization-server instance on one database counts against the same windows: N requests per
 * window in total, not per instance (issue 10). Each count is one statement (`INSERT … ON
 * CONFLICT … RETURNING`), so concurrent requests at several instances neither lose nor double a
 * count. A database that cannot answer raises StoreUnavailableError: the request gets 503, it is
 * never let through uncounted.
 */
import type { Postgres } from '../store/postgres/connection.ts';
import type { Migration } from '../store/postgres/migrations.ts';
import type { RateLimiter } from './rate-limit.ts';

export const RATE_LIMIT_MIGRATIONS: readonly Migration[] = [
  {
    id: 'rate-limits-1',
    sql: `CREATE TABLE rate_limit_windows (
            scope    text    NOT NULL,
            key      text    NOT NULL,
            count    integer NOT NULL,
            reset_at bigint  NOT NULL,
            PRIMARY KEY (scope, key)
          );
          CREATE INDEX rate_limit_windows_reset_at ON rate_limit_windows (reset_at);`,
  },
];

const wait = (resetAt: number, now: number) => Math.max(1, Math.ceil((resetAt - now) / 1000));

/** A limiter named `scope` (e.g. `registration`), sharing its windows with every instance. */
export function postgresRateLimiter(
  db: Postgres,
  scope: string,
  limit: { max: number; windowSeconds: number },
): RateLimiter {
  const windowMs = limit.windowSeconds * 1000;
  return {
    async hit(key) {
      const now = Date.now();
      // A window past its reset starts over at 1; otherwise one more in the same window.
      const [row] = await db.query<{ count: number; reset_at: number }>(
        `INSERT INTO rate_limit_windows AS w (scope, key, count, reset_at) VALUES ($1, $2, 1, $3::bigint + $4::bigint)
         ON CONFLICT (scope, key) DO UPDATE SET
           count    = CASE WHEN w.reset_at <= $3::bigint THEN 1 ELSE w.count + 1 END,
           reset_at = CASE WHEN w.reset_at <= $3::bigint THEN $3::bigint + $4::bigint ELSE w.reset_at END
         RETURNING count, reset_at`,
        [scope, key, now, windowMs],
      );
      return row!.count > limit.max ? wait(row!.reset_at, now) : 0;
    },
    async peek(key) {
      const now = Date.now();
      const [row] = await db.query<{ count: number; reset_at: number }>(
        'SELECT count, reset_at FROM rate_limit_windows WHERE scope = $1 AND key = $2 AND reset_at > $3',
        [scope, key, now],
      );
      return row && row.count >= limit.max ? wait(row.reset_at, now) : 0;
    },
  };
}

/** Deletes windows that are over (the housekeeping timer calls it); returns how many. */
export async function purgeRateLimitWindows(db: Postgres): Promise<number> {
  const rows = await db.query('DELETE FROM rate_limit_windows WHERE reset_at <= $1 RETURNING 1', [
    Date.now(),
  ]);
  return rows.length;
}
