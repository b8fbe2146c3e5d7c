/**
 * Group commit for the token store's upserts.
 *
 * Every token, code, session and assertion `jti` oidc-provider saves is an upsert, and in SQLite
 * each was a transaction of its own: the commit appends every page it touched to the WAL (the
 * table, its primary key and index pages, 4 KiB each) and takes and releases the WAL locks, which
 * cost as much as the rest of a client-credentials token. Here the upserts that arrive during one
 * turn of the event loop are written in one transaction right after it (`setImmediate`).
 *
 * Nothing is acknowledged before it is durable:
 * - an upsert's promise settles only once its row is committed, and oidc-provider awaits it before
 *   it answers;
 * - a _deferred_ upsert (the replay-detection `jti` of an assertion or a DPoP proof, saved half-way
 *   through a request that goes on to save a token) returns at once, so that it joins the token's
 *   batch instead of being a commit of its own; the request's answer waits for it.
 * Each request's writes are tracked in its own scope (`withRequestWrites`, an AsyncLocalStorage set
 * up by the `durableWrites` middleware), and its answer waits for exactly those (`requestWritesDurable`):
 * a row of another request that fails fails that request only. A crash loses only writes nobody was
 * told about.
 *
 * Until the batch is written, `pending` lets this process's reads see its own writes (a replayed
 * `jti` is refused even while the first one's row is on its way), and every other statement on the
 * models' table first writes the batch (`flushPendingWrites`), so a delete, a consume or a purge
 * never runs before an upsert that came earlier.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import type { DatabaseSync, SQLInputValue, StatementSync } from 'node:sqlite';

/** A batch is written at once when it reaches this many rows (bounds the memory and the commit). */
export const MAX_BATCH_ROWS = 256;

/**
 * SQLite primary result codes that belong to one row (a constraint, a type mismatch, a value too
 * big or out of range): a batch that fails with one of these is retried row by row, so the other
 * rows are written. Anything else (busy, locked, full, I/O) would fail every row alike, and retrying
 * each would only wait out the busy timeout again per row: the batch fails as a whole.
 */
const ROW_ERRORS = new Set([18, 19, 20, 25]);

function isRowError(error: unknown): boolean {
  const code = (error as { errcode?: unknown }).errcode;
  return typeof code === 'number' && ROW_ERRORS.has(code & 0xff);
}

interface PendingRow {
  values: SQLInputValue[];
  payload: string;
  expiresAt: number | null;
  resolve: () => void;
  reject: (error: unknown) => void;
}

/** The rows of one transaction. */
interface Batch {
  rows: PendingRow[];
  /** The latest pending row per key (a key may be upserted twice in one turn). */
  latest: Map<string, PendingRow>;
}

const newBatch = (): Batch => ({ rows: [], latest: new Map() });

/** The writes of the request being served: every upsert it made, until its answer. */
const requestWrites = new AsyncLocalStorage<Promise<void>[]>();

/** Runs `fn` (a request's handling) with a scope of its own for the writes it makes. */
export function withRequestWrites<T>(fn: () => T): T {
  return requestWrites.run([], fn);
}

/**
 * Makes the current request's answer wait for `written` too: a write with a group commit of its own
 * (the audit trail's). `written` should settle once committed; a rejection fails the request's
 * answer like a failed upsert does, so a write that must never cost the answer resolves either way.
 */
export function answerWaitsFor(written: Promise<void>): void {
  requestWrites.getStore()?.push(written);
}

/** Settles once every write of the current request is committed; rejects if one could not be. */
export async function requestWritesDurable(): Promise<void> {
  const writes = requestWrites.getStore();
  if (writes === undefined || writes.length === 0) return;
  await Promise.all(writes);
}

class WriteBatch {
  private readonly db: DatabaseSync;
  private readonly statement: StatementSync;
  private current: Batch = newBatch();
  private scheduled: NodeJS.Immediate | undefined;

  constructor(db: DatabaseSync, statement: StatementSync) {
    this.db = db;
    this.statement = statement;
  }

  /** Queues a row; the promise settles once it is committed (or could not be). */
  add(key: string, values: SQLInputValue[], payload: string, expiresAt: number | null): Promise<void> {
    const written = new Promise<void>((resolve, reject) => {
      const row = { values, payload, expiresAt, resolve, reject };
      this.current.rows.push(row);
      this.current.latest.set(key, row);
    });
    // The request's answer waits for it (durableWrites); a failure is reported there, or by the
    // caller that awaits it, never as an unhandled rejection.
    written.catch(() => {});
    requestWrites.getStore()?.push(written);
    if (this.current.rows.length >= MAX_BATCH_ROWS) this.flush();
    else this.scheduled ??= setImmediate(() => this.flush());
    return written;
  }

  /** The JSON of a row upserted but not yet committed, unless it has expired. */
  pending(key: string, now: number): string | undefined {
    const row = this.current.latest.get(key);
    if (row === undefined || (row.expiresAt !== null && row.expiresAt <= now)) return undefined;
    return row.payload;
  }

  /** Writes every pending row now: one transaction, or one per row when a row was at fault. */
  flush(): void {
    if (this.scheduled !== undefined) clearImmediate(this.scheduled);
    this.scheduled = undefined;
    const batch = this.current;
    if (batch.rows.length === 0) return;
    this.current = newBatch();
    if (!this.db.isOpen) {
      const closed = new Error('the token store is closed');
      for (const row of batch.rows) row.reject(closed);
      return;
    }
    try {
      this.commit(batch.rows);
      for (const row of batch.rows) row.resolve();
    } catch (error) {
      if (!isRowError(error) || batch.rows.length === 1) {
        for (const row of batch.rows) row.reject(error);
        return;
      }
      // One bad row must not fail the others' writes: retry each alone, as before batching.
      for (const row of batch.rows) {
        try {
          this.commit([row]);
          row.resolve();
        } catch (rowError) {
          row.reject(rowError);
        }
      }
    }
  }

  private commit(rows: PendingRow[]): void {
    if (this.db.isTransaction) {
      for (const row of rows) this.statement.run(...row.values);
      return;
    }
    this.db.exec('BEGIN IMMEDIATE');
    try {
      for (const row of rows) this.statement.run(...row.values);
      this.db.exec('COMMIT');
    } catch (error) {
      if (this.db.isTransaction) this.db.exec('ROLLBACK');
      throw error;
    }
  }
}

const batches = new WeakMap<DatabaseSync, WriteBatch>();

/** The database's write batch, created with the upsert statement it runs. */
export function writeBatch(db: DatabaseSync, upsert: StatementSync): WriteBatch {
  let batch = batches.get(db);
  if (batch === undefined) {
    batch = new WriteBatch(db, upsert);
    batches.set(db, batch);
  }
  return batch;
}

/** Commits the pending upserts of `db`, if any; call before any other statement on the models' table. */
export function flushPendingWrites(db: DatabaseSync): void {
  batches.get(db)?.flush();
}
