/**
 * One instance's connections to the shared PostgreSQL database (the `pg` driver's pool), with the
 * two rules every PostgreSQL store relies on:
 *
 * - a database that cannot answer (down, restarting, every connection busy past
 *   `storage.pool.acquireTimeoutMs`, a statement past `statementTimeoutMs`) raises
 *   StoreUnavailableError, which the HTTP layer answers with 503 and Retry-After: fail closed,
 *   never a token issued or accepted on a guess;
 * - LISTEN runs on a connection of its own that reconnects by itself, and tells its listener when it
 *   did, so that whoever relies on notifications can catch up on what it missed.
 */
import { LRUCache } from 'lru-cache';
import pg from 'pg';
import type { StorageConfig } from '../../../shared/config/schema.ts';
import type { Check } from '../../../shared/health.ts';

/** The database cannot answer now; the request may be retried (HTTP 503 with Retry-After). */
export class StoreUnavailableError extends Error {
  override name = 'StoreUnavailableError';
}

/** What a query or a transaction's statement runs on. */
export interface Queryable {
  query<Row = Record<string, unknown>>(text: string, values?: readonly unknown[]): Promise<Row[]>;
}

export interface Postgres extends Queryable {
  /** Runs fn in BEGIN … COMMIT on one connection (ROLLBACK if it throws). */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  /**
   * LISTENs to `channel` on a dedicated connection; `onReconnect` runs after the connection came
   * back (notifications sent meanwhile are lost). Returns a function that stops listening.
   */
  listen(
    channel: string,
    onPayload: (payload: string) => void,
    onReconnect?: () => void,
  ): Promise<() => Promise<void>>;
  /** Sends a notification (payloads are at most 8000 bytes in PostgreSQL). */
  notify(channel: string, payload: string): Promise<void>;
  /** For /readyz: the database answers a query. */
  check(): Promise<Check>;
  close(): Promise<void>;
  readonly pool: pg.Pool;
}

/** SQLSTATE classes and codes that mean "not now" rather than "wrong" (PostgreSQL Appendix A). */
const UNAVAILABLE_SQLSTATE = /^(08|53|57P0[1-4]|57014|40001|40P01|55P03)/;
const UNAVAILABLE_NODE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENOTFOUND',
]);
const UNAVAILABLE_MESSAGES =
  /timeout exceeded when trying to connect|Connection terminated|not queryable|Cannot use a pool after calling end/i;

/**
 * For `.catch()` of a lookup whose failure means "not found" (a client that cannot be loaded):
 * undefined, unless the store could not answer, which is rethrown, so that the request gets 503
 * rather than an answer made without the store (an active token reported inactive, say).
 */
export function notFoundUnlessUnavailable(error: unknown): undefined {
  if (isUnavailable(error)) throw error;
  return undefined;
}

/** True when the error says the database could not answer, not that the statement was wrong. */
export function isUnavailable(error: unknown): boolean {
  if (error instanceof StoreUnavailableError) return true;
  const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown };
  if (typeof code === 'string' && (UNAVAILABLE_SQLSTATE.test(code) || UNAVAILABLE_NODE_CODES.has(code)))
    return true;
  return typeof message === 'string' && UNAVAILABLE_MESSAGES.test(message);
}

function translated(error: unknown): unknown {
  return isUnavailable(error) ? unavailable(error) : error;
}

/** int8 (epoch milliseconds, counts) as numbers: every value Gatehouse stores fits in 2^53. */
const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === 20
      ? (value: string) => Number(value)
      : pg.types.getTypeParser(oid, format as 'text')) as typeof pg.types.getTypeParser,
};

function unavailable(error: unknown): StoreUnavailableError {
  if (error instanceof StoreUnavailableError) return error;
  const reason = (error as Error).message || 'unknown';
  return new StoreUnavailableError(`the PostgreSQL store cannot answer: ${reason}`, { cause: error });
}

/**
 * Statements that run again and again (a token's lookups and writes) become named prepared
 * statements from their second run on, each connection parsing and planning them once instead of at
 * every run (PostgreSQL: PREPARE; measured with pgbench on this machine, about a quarter less server
 * CPU per statement than pg's unnamed extended protocol). Only statements with parameters (one
 * command each) are named, a text at most 4 KiB long, at most MAX_PREPARED texts per process: a
 * statement built for one use (table-copy.ts's multi-row inserts) is seen once and stays unnamed.
 */
const MAX_PREPARED = 256;
const MAX_PREPARED_TEXT = 4096;
const preparedNames = new Map<string, string>();
const seenOnce = new LRUCache<string, true>({ max: 1024 });

function preparedName(text: string, values: readonly unknown[] | undefined): string | undefined {
  if (!values || values.length === 0 || text.length > MAX_PREPARED_TEXT) return undefined;
  const known = preparedNames.get(text);
  if (known !== undefined || preparedNames.size >= MAX_PREPARED) return known;
  if (!seenOnce.has(text)) {
    seenOnce.set(text, true);
    return undefined;
  }
  const name = `gatehouse_${preparedNames.size + 1}`;
  preparedNames.set(text, name);
  return name;
}

async function run<Row>(on: pg.PoolClient, text: string, values?: readonly unknown[]): Promise<Row[]> {
  try {
    const name = preparedName(text, values);
    const result = await on.query(
      name === undefined
        ? { text, values: values as unknown[] | undefined }
        : { name, text, values: values as unknown[] },
    );
    return result.rows as Row[];
  } catch (error) {
    throw translated(error);
  }
}

/**
 * A connection of the pool, or StoreUnavailableError: failing to get one (the database refuses
 * connections, is down, or every connection stayed busy past acquireTimeoutMs) is never the
 * statement's fault, whatever SQLSTATE it carries.
 */
/** Connections that have their checked-out error listener (clients are reused by the pool). */
const guarded = new WeakSet<pg.PoolClient>();

async function acquire(pool: pg.Pool): Promise<pg.PoolClient> {
  const busy = pool.totalCount >= (pool.options.max ?? 10);
  try {
    const client = await pool.connect();
    if (!guarded.has(client)) {
      // The pool listens for errors only while a connection is idle. One that breaks while checked
      // out (a database crash between two statements of a transaction) emits 'error', which
      // unheard would end the process; its next statement fails and is answered with a 503.
      client.on('error', () => {});
      guarded.add(client);
    }
    return client;
  } catch (error) {
    // Every connection stayed busy: say so, and what to change, rather than pg's bare timeout.
    if (busy && /timeout exceeded when trying to connect/i.test((error as Error).message ?? '')) {
      throw new StoreUnavailableError(
        `the PostgreSQL store cannot answer: all ${pool.options.max} connections of the pool stayed busy for ${pool.options.connectionTimeoutMillis} ms (storage.pool.max, storage.pool.acquireTimeoutMs); look for slow statements or locks, or raise storage.pool.max within the server's max_connections`,
        { cause: error },
      );
    }
    throw unavailable(error);
  }
}

/**
 * A connection's prepared statement that no longer fits the schema: another instance migrated
 * (`0A000` cached plan must not change result type), or the statement is gone (`26000`). Such a
 * connection is discarded, not given back, and the statement runs once more on another one.
 */
const STALE_PREPARED = new Set(['0A000', '26000']);
const isStalePrepared = (error: unknown) => STALE_PREPARED.has(String((error as { code?: unknown })?.code));

/** One statement on a pooled connection; a connection that failed is not given back to the pool. */
async function runPooled<Row>(
  pool: pg.Pool,
  text: string,
  values?: readonly unknown[],
  retried = false,
): Promise<Row[]> {
  const client = await acquire(pool);
  try {
    const rows = await run<Row>(client, text, values);
    client.release();
    return rows;
  } catch (error) {
    const stale = isStalePrepared(error);
    client.release(error instanceof StoreUnavailableError || stale ? (error as Error) : undefined);
    if (stale && !retried) return runPooled<Row>(pool, text, values, true);
    throw error;
  }
}

export interface ConnectOptions {
  /** Shown in pg_stat_activity, so an operator can tell the instances' connections apart. */
  applicationName?: string;
  /** Called with errors the pool reports outside any request (an idle connection that broke). */
  onBackgroundError?: (error: Error) => void;
}

/** Opens the pool (lazily: the first query connects) for the database at `url`. */
export function connectPostgres(
  url: string,
  settings: StorageConfig['pool'],
  options: ConnectOptions = {},
): Postgres {
  const config: pg.PoolConfig = {
    connectionString: url,
    max: settings.max,
    connectionTimeoutMillis: settings.acquireTimeoutMs,
    statement_timeout: settings.statementTimeoutMs,
    idleTimeoutMillis: 30_000,
    application_name: options.applicationName ?? 'gatehouse',
    types,
  };
  const pool = new pg.Pool(config);
  const background = options.onBackgroundError ?? (() => {});
  // An idle connection that breaks (a database restart) emits here; unhandled, it would end the process.
  pool.on('error', (error) => background(error));
  const listeners = new Set<() => Promise<void>>();

  return {
    pool,
    query: (text, values) => runPooled(pool, text, values),
    async transaction(fn) {
      const client = await acquire(pool);
      let broken: unknown;
      try {
        await run(client, 'BEGIN');
        const result = await fn({ query: (text, values) => run(client, text, values) });
        await run(client, 'COMMIT');
        return result;
      } catch (error) {
        try {
          await client.query('ROLLBACK');
        } catch (rollbackError) {
          broken = rollbackError;
        }
        // Not retried here (the transaction's work may not be repeatable): the connection goes,
        // and the request gets 503, so that its retry runs on a connection that fits the schema.
        if (isStalePrepared(error)) {
          broken ??= error;
          throw unavailable(error);
        }
        throw error;
      } finally {
        // A connection whose ROLLBACK failed is not given back to the pool.
        client.release(broken instanceof Error ? broken : undefined);
      }
    },
    async listen(channel, onPayload, onReconnect) {
      if (!/^[a-z_][a-z0-9_]*$/.test(channel)) throw new Error(`bad channel name ${channel}`);
      let stopped = false;
      let client: pg.Client | undefined;
      let retry: NodeJS.Timeout | undefined;
      const connect = async (first: boolean): Promise<void> => {
        const next = new pg.Client({
          connectionString: url,
          application_name: config.application_name,
          types,
        });
        next.on('notification', (message) => {
          if (message.channel === channel) onPayload(message.payload ?? '');
        });
        next.on('error', (error) => {
          background(error);
          reconnectSoon();
        });
        next.on('end', () => reconnectSoon());
        try {
          await next.connect();
          // The channel name was checked above: LISTEN takes no bound parameter.
          await next.query(`LISTEN ${channel}`);
        } catch (error) {
          next.removeAllListeners('end');
          await next.end().catch(() => {});
          if (first) throw unavailable(error);
          reconnectSoon();
          return;
        }
        if (stopped) {
          await next.end().catch(() => {});
          return;
        }
        client = next;
        if (!first) onReconnect?.();
      };
      const reconnectSoon = (): void => {
        if (stopped || retry) return;
        const old = client;
        client = undefined;
        old?.removeAllListeners('end');
        old?.end().catch(() => {});
        retry = setTimeout(() => {
          retry = undefined;
          void connect(false);
        }, 500);
        retry.unref();
      };
      await connect(true);
      const stop = async (): Promise<void> => {
        stopped = true;
        listeners.delete(stop);
        if (retry) clearTimeout(retry);
        const current = client;
        client = undefined;
        current?.removeAllListeners('end');
        await current?.end().catch(() => {});
      };
      listeners.add(stop);
      return stop;
    },
    async notify(channel, payload) {
      await runPooled(pool, 'SELECT pg_notify($1, $2)', [channel, payload]);
    },
    async check() {
      try {
        await runPooled(pool, 'SELECT 1');
        return { ok: true };
      } catch (error) {
        return { ok: false, error: (error as Error).message };
      }
    },
    async close() {
      await Promise.all([...listeners].map((stop) => stop()));
      await pool.end();
    },
  };
}
