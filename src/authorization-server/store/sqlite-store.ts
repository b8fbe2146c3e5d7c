/**
 * Persistence for the authorization server: an oidc-provider Adapter backed by SQLite through Node's
 * built-in `node:sqlite` (no native addon), plus housekeeping (expiry purge, removal of unused
 * dynamically registered clients).
 *
 * Semantics follow oidc-provider's reference adapter (node_modules/oidc-provider/lib/adapters/memory_adapter.js):
 * one keyspace per model name, Session rows indexed by `uid`, rows indexed by `userCode`, the
 * grantable models indexed by `grantId`, `consume` stamping `payload.consumed` in epoch seconds.
 *
 * All `*_at` columns hold epoch milliseconds. The payload column is the JSON oidc-provider gave us,
 * verbatim; the other columns are derived from it (or are our own bookkeeping) so lookups are indexed.
 */

import * as fs from 'node:fs';
import * as path from 'node:path';
import { DatabaseSync, type StatementSync } from 'node:sqlite';
import type { Adapter, AdapterPayload } from 'oidc-provider';
import {
  alreadyConsumed,
  CLIENT_USE_WRITE_INTERVAL_MS,
  CONSUMED_ONCE,
  DEFAULT_CLOCK_TOLERANCE_SECONDS,
  GRACE_USED,
  GRANTABLE_MODELS,
  type GraceConsumable,
  indexedColumns,
  type OidcModelStore,
  REPLAY_CLAIM_MS,
  REPLAY_MODEL,
  type StoredClient,
} from './oidc-model-store.ts';
import { type Checkpointer, startCheckpointer } from './sqlite-checkpointer.ts';
import { flushPendingWrites, writeBatch } from './sqlite-write-batch.ts';

export { CLIENT_USE_WRITE_INTERVAL_MS, DEFAULT_CLOCK_TOLERANCE_SECONDS, type StoredClient };

/** File name of the database inside the data directory. */
export const DATABASE_FILE = 'gatehouse.db';

/**
 * Models whose upsert does not wait for its commit (sqlite-write-batch.ts): replay-detection
 * `jti`s, saved while oidc-provider authenticates a client or checks a DPoP proof, half-way through
 * a request that goes on to save its token. Not waiting puts both rows in one commit; the request's
 * answer still waits for both (http/middleware.ts, durableWrites), and until then this process's
 * `find` sees the `jti`, so a replay is refused at once.
 */
const DEFERRED = new Set<string>(['ReplayDetection']);

/**
 * Schema migrations; migration i brings `PRAGMA user_version` from i to i + 1. Append, never edit.
 *
 * Beyond the columns the brief lists: `client_id` (payload.clientId, indexed, so removing a client also
 * removes its grants, tokens and registration access token without scanning JSON), `created_at` and
 * `last_used_at` (Client bookkeeping). The secondary indexes are partial: most rows have no uid,
 * userCode or grantId, and SQLite still uses a partial `x IS NOT NULL` index for `x = ?` lookups.
 * uid and user_code lead with `model` because the lookups are per model. STRICT rejects mistyped values.
 */
const MIGRATIONS: readonly string[] = [
  `CREATE TABLE oidc_models (
     model        TEXT    NOT NULL,
     id           TEXT    NOT NULL,
     payload      TEXT    NOT NULL,
     grant_id     TEXT,
     uid          TEXT,
     user_code    TEXT,
     client_id    TEXT,
     expires_at   INTEGER,
     consumed_at  INTEGER,
     created_at   INTEGER NOT NULL,
     last_used_at INTEGER,
     PRIMARY KEY (model, id)
   ) STRICT;
   CREATE INDEX oidc_models_grant_id ON oidc_models (grant_id) WHERE grant_id IS NOT NULL;
   CREATE INDEX oidc_models_uid ON oidc_models (model, uid) WHERE uid IS NOT NULL;
   CREATE INDEX oidc_models_user_code ON oidc_models (model, user_code) WHERE user_code IS NOT NULL;
   CREATE INDEX oidc_models_client_id ON oidc_models (client_id) WHERE client_id IS NOT NULL;
   CREATE INDEX oidc_models_expires_at ON oidc_models (expires_at) WHERE expires_at IS NOT NULL;`,
];

/** Latest schema version this code knows (the value of `PRAGMA user_version` after openDatabase). */
export const SCHEMA_VERSION = MIGRATIONS.length;

/**
 * Runs fn inside BEGIN IMMEDIATE … COMMIT (rolled back if it throws). IMMEDIATE takes the write lock
 * up front, so another process sharing the file cannot read a row between our read and our write.
 * Inside a caller's transaction, that one already covers fn.
 */
export function transaction<T>(db: DatabaseSync, fn: () => T): T {
  if (db.isTransaction) return fn();
  db.exec('BEGIN IMMEDIATE');
  try {
    const result = fn();
    db.exec('COMMIT');
    return result;
  } catch (error) {
    if (db.isTransaction) db.exec('ROLLBACK');
    throw error;
  }
}

/** An adapter that answers `find` itself and passes every other call to `adapter`. */
export function withFind(adapter: Adapter, find: Adapter['find']): Adapter {
  return {
    upsert: (id, payload, expiresIn) => adapter.upsert(id, payload, expiresIn),
    findByUid: (uid) => adapter.findByUid(uid),
    findByUserCode: (code) => adapter.findByUserCode(code),
    consume: (id) => adapter.consume(id),
    destroy: (id) => adapter.destroy(id),
    revokeByGrantId: (grantId) => adapter.revokeByGrantId(grantId),
    find,
  };
}

/** Applies the pending migrations; refuses a database written by a newer Gatehouse. */
function migrate(db: DatabaseSync): void {
  transaction(db, () => {
    const row = db.prepare('PRAGMA user_version').get();
    const current = Number(row?.user_version ?? 0);
    if (current > MIGRATIONS.length) {
      throw new Error(
        `database schema version ${current} is newer than this Gatehouse supports (${MIGRATIONS.length})`,
      );
    }
    for (let version = current; version < MIGRATIONS.length; version++) {
      db.exec(MIGRATIONS[version]!);
      // PRAGMA takes no bound parameters; version is our own integer.
      db.exec(`PRAGMA user_version = ${version + 1}`);
    }
  });
}

/** Options of openDatabase. */
export interface OpenDatabaseOptions {
  /**
   * Checkpoint the WAL in a worker thread rather than in the commit that crosses SQLite's
   * threshold (sqlite-checkpointer.ts). The server asks for it; a short-lived connection (a test,
   * a command) keeps SQLite's automatic checkpoint. Close such a database with closeDatabase.
   */
  backgroundCheckpoints?: boolean;
}

/** Opens (creating if needed) `<dataDir>/gatehouse.db` with WAL, busy timeout, foreign keys and the current schema. */
export function openDatabase(dataDir: string, options: OpenDatabaseOptions = {}): DatabaseSync {
  // The database holds refresh tokens, sessions and client secrets: owner-only directory and files.
  // mode only applies when mkdir creates the directory; an existing directory is the operator's choice.
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const file = path.join(dataDir, DATABASE_FILE);
  // Create the file ourselves so it never exists with umask-derived permissions, and tighten any
  // pre-existing files. SQLite gives the -wal/-shm files it creates the database file's mode.
  fs.closeSync(fs.openSync(file, 'a', 0o600));
  for (const suffix of ['', '-wal', '-shm']) {
    try {
      fs.chmodSync(file + suffix, 0o600);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
  }

  const db = new DatabaseSync(file);
  try {
    // busy_timeout first so the next statements wait for another connection (e.g. a CLI) instead of failing.
    db.exec('PRAGMA busy_timeout = 5000');
    // WAL: readers don't block the writer, and a commit is one sequential append.
    db.exec('PRAGMA journal_mode = WAL');
    // In WAL mode NORMAL is corruption-safe; a power loss can only lose the last commits, not break the file.
    db.exec('PRAGMA synchronous = NORMAL');
    db.exec('PRAGMA foreign_keys = ON');
    migrate(db);
    if (options.backgroundCheckpoints) {
      // No automatic checkpoint in the commit, on the server's thread: a worker runs them.
      db.exec('PRAGMA wal_autocheckpoint = 0');
      checkpointers.set(db, startCheckpointer(file));
    }
  } catch (error) {
    db.close();
    throw error;
  }
  return db;
}

/** Writes the pending upserts and closes the database: the last thing a server does with it. */
export function closeDatabase(db: DatabaseSync): void {
  if (!db.isOpen) return;
  flushPendingWrites(db);
  // The worker's connection closes first, so that this one is the last (sqlite-checkpointer.ts).
  checkpointers.get(db)?.stop();
  checkpointers.delete(db);
  // The last checkpoint here, so the file is whole without its WAL.
  try {
    db.exec('PRAGMA wal_checkpoint(TRUNCATE)');
  } catch {
    // A reader elsewhere (another process) holds the WAL: it is checkpointed later.
  }
  db.close();
}

const checkpointers = new WeakMap<DatabaseSync, Checkpointer>();

/** Options of createSqliteAdapterFactory. */
export interface SqliteAdapterOptions {
  /** Seconds rows outlive their TTL; pass the provider's `clockTolerance` (default 15, as oidc-provider's). */
  clockTolerance?: number;
}

interface PayloadRow {
  payload: string;
}

function parsePayload(row: Record<string, unknown> | undefined): AdapterPayload | undefined {
  if (row === undefined) return undefined;
  return JSON.parse((row as unknown as PayloadRow).payload) as AdapterPayload;
}

/** Returns an oidc-provider adapter factory (`adapter` in the provider configuration) storing every model in `db`. */
export function createSqliteAdapterFactory(
  db: DatabaseSync,
  options: SqliteAdapterOptions = {},
): (model: string) => Adapter {
  const toleranceMs = (options.clockTolerance ?? DEFAULT_CLOCK_TOLERANCE_SECONDS) * 1000;

  // Prepared once and shared by every model's adapter: these run on every request.
  // ON CONFLICT rather than INSERT OR REPLACE so created_at and last_used_at survive re-saves
  // (sessions and grants are upserted again and again; a Client on registration update).
  const upsert = db.prepare(
    `INSERT INTO oidc_models
       (model, id, payload, grant_id, uid, user_code, client_id, expires_at, consumed_at, created_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
     ON CONFLICT (model, id) DO UPDATE SET
       payload = excluded.payload, grant_id = excluded.grant_id, uid = excluded.uid,
       user_code = excluded.user_code, client_id = excluded.client_id,
       expires_at = excluded.expires_at, consumed_at = excluded.consumed_at`,
  );
  // Expired rows are invisible even before purgeExpired runs, as with the memory adapter's LRU maxAge.
  const live = '(expires_at IS NULL OR expires_at > ?)';
  const find = db.prepare(`SELECT payload FROM oidc_models WHERE model = ? AND id = ? AND ${live}`);
  const findByUid = db.prepare(
    `SELECT payload FROM oidc_models WHERE model = ? AND uid = ? AND ${live} LIMIT 1`,
  );
  const findByUserCode = db.prepare(
    `SELECT payload FROM oidc_models WHERE model = ? AND user_code = ? AND ${live} LIMIT 1`,
  );
  // One statement, so atomic. Numbers bind as REAL in node:sqlite; CAST keeps `consumed` a JSON integer.
  const consume = db.prepare(
    `UPDATE oidc_models
       SET payload = json_set(payload, '$.consumed', CAST(?1 AS INTEGER)), consumed_at = ?2
     WHERE model = ?3 AND id = ?4`,
  );
  // The same, only while unconsumed: the grant sources are consumed once (oidc-model-store.ts).
  const consumeOnce = db.prepare(
    `UPDATE oidc_models
       SET payload = json_set(payload, '$.consumed', CAST(?1 AS INTEGER)), consumed_at = ?2
     WHERE model = ?3 AND id = ?4 AND consumed_at IS NULL`,
  );
  // GraceConsumable (oidc-model-store.ts): a refresh token's first use, or its one grace use.
  const consumeWithGrace = db.prepare(
    `UPDATE oidc_models SET
       payload = CASE WHEN consumed_at IS NULL
                      THEN json_set(payload, '$.consumed', CAST(?1 AS INTEGER))
                      ELSE json_set(payload, '$.${GRACE_USED}', CAST(?1 AS INTEGER)) END,
       consumed_at = coalesce(consumed_at, ?2)
     WHERE model = 'RefreshToken' AND id = ?3 AND (expires_at IS NULL OR expires_at > ?2)
       AND (consumed_at IS NULL
            OR (json_extract(payload, '$.${GRACE_USED}') IS NULL
                AND json_extract(payload, '$.consumed') >= ?4))`,
  );
  const destroy = db.prepare('DELETE FROM oidc_models WHERE model = ? AND id = ?');
  // Upserts are group-committed (sqlite-write-batch.ts); every other statement writes the batch first.
  const batch = writeBatch(db, upsert);
  const flush = () => batch.flush();
  const revokeByGrantId = db.prepare(
    `DELETE FROM oidc_models
     WHERE grant_id = ? AND model IN (${GRANTABLE_MODELS.map(() => '?').join(', ')})`,
  );

  const graceConsumable: GraceConsumable = {
    async consumeWithGrace(id, firstUsedSince, now) {
      flush();
      return Number(consumeWithGrace.run(now, Date.now(), id, firstUsedSince).changes) > 0;
    },
  };

  return (model: string): Adapter & Partial<GraceConsumable> => ({
    ...(model === 'RefreshToken' ? graceConsumable : {}),
    async upsert(id, payload, expiresIn) {
      const now = Date.now();
      const columns = indexedColumns(model, payload, expiresIn, toleranceMs, now);
      const json = JSON.stringify(payload);
      const written = batch.add(
        `${model}\0${id}`,
        [
          model,
          id,
          json,
          columns.grantId,
          columns.uid,
          columns.userCode,
          columns.clientId,
          columns.expiresAt,
          columns.consumedAt,
          now,
        ],
        json,
        columns.expiresAt,
      );
      if (!DEFERRED.has(model)) return written;
      // Its failure reaches the request through durableWrites.
      written.catch(() => {});
    },

    async find(id) {
      const now = Date.now();
      const pending = batch.pending(`${model}\0${id}`, now);
      if (pending !== undefined) return JSON.parse(pending) as AdapterPayload;
      const found = parsePayload(find.get(model, id, now));
      if (found !== undefined || model !== REPLAY_MODEL) return found;
      // The replay check's claim (oidc-model-store.ts): pending from now on, in this same
      // synchronous step, so a second check of this jti finds it.
      const claim = JSON.stringify({ jti: id });
      const expiresAt = now + REPLAY_CLAIM_MS;
      batch
        .add(
          `${model}\0${id}`,
          [model, id, claim, null, null, null, null, expiresAt, null, now],
          claim,
          expiresAt,
        )
        .catch(() => {});
      return undefined;
    },

    async findByUid(uid) {
      flush();
      return parsePayload(findByUid.get(model, uid, Date.now()));
    },

    async findByUserCode(userCode) {
      flush();
      return parsePayload(findByUserCode.get(model, userCode, Date.now()));
    },

    async consume(id) {
      flush();
      const now = Date.now();
      // oidc-provider's epochTime(): whole seconds.
      if (!CONSUMED_ONCE.has(model)) {
        consume.run(Math.floor(now / 1000), now, model, id);
        return;
      }
      if (Number(consumeOnce.run(Math.floor(now / 1000), now, model, id).changes) === 0)
        throw alreadyConsumed(model);
    },

    async destroy(id) {
      flush();
      destroy.run(model, id);
    },

    async revokeByGrantId(grantId) {
      // oidc-provider calls this once per grantable model (lib/helpers/revoke.js) but skips models whose
      // grant type the client no longer has; like the memory adapter's shared `grant:` index, delete the
      // grant's rows in every grantable model at once so nothing of a revoked grant survives.
      flush();
      revokeByGrantId.run(grantId, ...GRANTABLE_MODELS);
    },
  });
}

/** Per-database statements and throttle state of the standalone helpers below. */
interface Housekeeping {
  touchClient: StatementSync;
  lastWrite: Map<string, number>;
  purge: StatementSync;
  staleClients: StatementSync;
  deleteClientRows: StatementSync;
}

const housekeepingByDb = new WeakMap<DatabaseSync, Housekeeping>();

function housekeeping(db: DatabaseSync): Housekeeping {
  let state = housekeepingByDb.get(db);
  if (state === undefined) {
    state = {
      touchClient: db.prepare("UPDATE oidc_models SET last_used_at = ? WHERE model = 'Client' AND id = ?"),
      lastWrite: new Map(),
      purge: db.prepare('DELETE FROM oidc_models WHERE expires_at < ?'),
      staleClients: db.prepare(
        "SELECT id FROM oidc_models WHERE model = 'Client' AND coalesce(last_used_at, created_at) < ?",
      ),
      // Client rows have no clientId in their payload (they have client_id), so match them by model and id.
      deleteClientRows: db.prepare(
        "DELETE FROM oidc_models WHERE client_id = ?1 OR (model = 'Client' AND id = ?1)",
      ),
    };
    housekeepingByDb.set(db, state);
  }
  return state;
}

/** Stamps a stored (dynamically registered) client's last_used_at; writes at most once a minute per client. */
export function recordClientUse(db: DatabaseSync, clientId: string): void {
  const state = housekeeping(db);
  const now = Date.now();
  const last = state.lastWrite.get(clientId);
  if (last !== undefined && now - last < CLIENT_USE_WRITE_INTERVAL_MS) return;
  // Bound the throttle's memory; forgetting it only costs one extra UPDATE per client.
  if (state.lastWrite.size >= 10_000) state.lastWrite.clear();
  state.lastWrite.set(clientId, now);
  flushPendingWrites(db);
  // A no-op for static clients from the configuration: they have no row.
  state.touchClient.run(now, clientId);
}

/**
 * Deletes stored clients not used (or, if never used, created) in the last `unusedForSeconds`, with every
 * row whose payload.clientId is theirs (grants, tokens, codes, registration access tokens); returns their ids.
 * last_used_at may lag up to CLIENT_USE_WRITE_INTERVAL_MS behind, so thresholds should be far larger.
 */
export function removeUnusedClients(db: DatabaseSync, unusedForSeconds: number): string[] {
  const state = housekeeping(db);
  const cutoff = Date.now() - unusedForSeconds * 1000;
  flushPendingWrites(db);
  return transaction(db, () => {
    const ids = state.staleClients.all(cutoff).map((row) => String(row.id));
    for (const id of ids) {
      state.deleteClientRows.run(id);
      state.lastWrite.delete(id);
    }
    return ids;
  });
}

/**
 * Deletes every row of a client that is gone (RFC 7592 deletion removes the Client row only): its
 * grants, tokens, codes and registration access tokens, so none of them outlives it.
 */
export function removeClientRows(db: DatabaseSync, clientId: string): number {
  const state = housekeeping(db);
  state.lastWrite.delete(clientId);
  flushPendingWrites(db);
  return Number(state.deleteClientRows.run(clientId).changes);
}

/** For metrics: the live (unexpired) rows of each model, e.g. `{ AccessToken: 12, Client: 3 }`. */
export function countLiveRows(db: DatabaseSync, models: readonly string[]): Record<string, number> {
  flushPendingWrites(db);
  const counts: Record<string, number> = Object.fromEntries(models.map((model) => [model, 0]));
  const rows = db
    .prepare(
      `SELECT model, count(*) AS n FROM oidc_models
       WHERE model IN (${models.map(() => '?').join(', ')}) AND (expires_at IS NULL OR expires_at > ?)
       GROUP BY model`,
    )
    .all(...models, Date.now());
  for (const row of rows) counts[String(row.model)] = Number(row.n);
  return counts;
}

/** Deletes rows whose expiry has passed and returns how many (find already hides them; this reclaims space). */
export function purgeExpired(db: DatabaseSync): number {
  flushPendingWrites(db);
  return Number(housekeeping(db).purge.run(Date.now()).changes);
}

/**
 * Deletes a client's grants, tokens and codes but keeps its registration: a client an administrator
 * disables keeps its identity, so enabling it again needs no new registration. Returns the rows gone.
 */
export function removeClientTokens(db: DatabaseSync, clientId: string): number {
  flushPendingWrites(db);
  return Number(
    db
      .prepare("DELETE FROM oidc_models WHERE client_id = ? AND model NOT IN ('Client', 'Session')")
      .run(clientId).changes,
  );
}

/** Ends every browser session of a subject ("sign out everywhere"); returns how many there were. */
export function removeSessionsOf(db: DatabaseSync, sub: string): number {
  flushPendingWrites(db);
  return Number(
    db
      .prepare("DELETE FROM oidc_models WHERE model = 'Session' AND json_extract(payload, '$.accountId') = ?")
      .run(sub).changes,
  );
}

/** Every client registered through DCR (RFC 7591) and kept in the store. */
export function listStoredClients(db: DatabaseSync): StoredClient[] {
  flushPendingWrites(db);
  return db
    .prepare(
      "SELECT payload, created_at, last_used_at FROM oidc_models WHERE model = 'Client' ORDER BY created_at DESC",
    )
    .all()
    .map((row) => ({
      metadata: JSON.parse(String(row.payload)) as Record<string, unknown>,
      createdAt: Number(row.created_at),
      lastUsedAt: row.last_used_at === null ? undefined : Number(row.last_used_at),
    }));
}

/** The SQLite store of oidc-provider's models (oidc-model-store.ts), on an open database. */
export function sqliteOidcModelStore(db: DatabaseSync, options: SqliteAdapterOptions = {}): OidcModelStore {
  const adapter = createSqliteAdapterFactory(db, options);
  return {
    adapter,
    recordClientUse: async (clientId) => recordClientUse(db, clientId),
    removeUnusedClients: async (seconds) => removeUnusedClients(db, seconds),
    removeClientRows: async (clientId) => removeClientRows(db, clientId),
    removeClientTokens: async (clientId) => removeClientTokens(db, clientId),
    removeSessionsOf: async (sub) => removeSessionsOf(db, sub),
    listStoredClients: async () => listStoredClients(db),
    countLiveRows: async (models) => countLiveRows(db, models),
    purgeExpired: async () => purgeExpired(db),
  };
}
