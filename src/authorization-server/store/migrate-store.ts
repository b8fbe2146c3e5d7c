/**
 * `gatehouse migrate-store`: copies one instance's SQLite store into an empty PostgreSQL database,
 * so that a deployment that outgrew one machine keeps its clients, grants, tokens, accounts,
 * consents, audit trail and revocation log (docs/deployment.md, "From SQLite to PostgreSQL").
 *
 * The tables of both stores have the same names and columns (each part's SQLite and PostgreSQL
 * files keep them so), so the copy is table by table, column by column, in one PostgreSQL
 * transaction: a failure leaves the target as empty as it was. It reads SQLite in one read
 * transaction, so a server left running would be copied at one instant; stop it anyway, or what
 * it writes after that instant stays behind.
 *
 * Not copied, on purpose: one-time codes and login throttles, rate-limit windows and the
 * development inbox (minutes of life; a sign-in in progress starts again). Keys, generated secrets
 * and the subject key are files of the data directory: the first start on PostgreSQL imports them
 * into the database (sealed with storage.encryptionKey), so the command need not touch them.
 */
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { DatabaseSync, type SQLOutputValue } from 'node:sqlite';
import type { StorageConfig } from '../../shared/config/schema.ts';
import { connectPostgres, type Queryable } from './postgres/connection.ts';
import { migrate } from './postgres/migrations.ts';
import { POSTGRES_MIGRATIONS } from './postgres/schema.ts';
import { DATABASE_FILE } from './sqlite-store.ts';

/**
 * What is copied, in this order. A table the target does not have (a part not yet in PostgreSQL)
 * is reported as left behind when SQLite holds rows of it.
 */
export const TRANSFERRED_TABLES = [
  'oidc_models',
  'accounts',
  'consent_grants',
  'grant_use',
  'audit_records',
  'revocation_events',
  'directory_users',
  'directory_domains',
  'directory_trusted_domains',
  'directory_removed_seeds',
  'client_states',
  'seen_clients',
  'registered_clients',
  'client_approvals',
] as const;

/** Short-lived state that is deliberately not copied (see the header). */
const TRANSIENT_TABLES = new Set(['login_codes', 'login_throttle', 'rate_limit_windows', 'dev_inbox']);
/** Bookkeeping of the stores themselves, not data. */
const INTERNAL_TABLES = new Set(['gatehouse_meta', 'gatehouse_migrations', 'sqlite_sequence']);

const BATCH_ROWS = 500;

export class MigrateStoreError extends Error {
  override name = 'MigrateStoreError';
}

export interface MigrateStoreOptions {
  /** The SQLite file, or the data directory holding gatehouse.db. */
  from: string;
  /** postgres:// URL of the target database (created beforehand, empty). */
  to: string;
  pool: StorageConfig['pool'];
  /** A line of progress (a table started, rows copied). */
  progress?: (line: string) => void;
}

export interface MigrateStoreReport {
  copied: Array<{ table: string; rows: number }>;
  /** Tables of SQLite with rows that PostgreSQL has no table for (yet): they stay behind. */
  leftBehind: Array<{ table: string; rows: number }>;
}

interface TargetColumn {
  name: string;
  type: string;
  identity: boolean;
  required: boolean;
}

function sqliteFileOf(from: string): string {
  const file = existsSync(from) && statSync(from).isDirectory() ? path.join(from, DATABASE_FILE) : from;
  if (!existsSync(file)) {
    throw new MigrateStoreError(
      `no SQLite store at ${file}: give --from the data directory (holding ${DATABASE_FILE}) or the file itself`,
    );
  }
  return file;
}

function sqliteTables(db: DatabaseSync): Map<string, number> {
  const names = db
    .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
    .all()
    .map((row) => String(row.name));
  // Names come from sqlite_master itself, quoted: no input reaches this SQL.
  return new Map(
    names.map((name) => [
      name,
      Number((db.prepare(`SELECT count(*) AS n FROM "${name}"`).get() as { n: number }).n),
    ]),
  );
}

async function targetColumns(db: Queryable, table: string): Promise<TargetColumn[]> {
  const rows = await db.query<{
    column_name: string;
    data_type: string;
    is_identity: string;
    is_nullable: string;
    column_default: string | null;
  }>(
    `SELECT column_name, data_type, is_identity, is_nullable, column_default
       FROM information_schema.columns
      WHERE table_schema = current_schema() AND table_name = $1
      ORDER BY ordinal_position`,
    [table],
  );
  return rows.map((row) => ({
    name: row.column_name,
    type: row.data_type,
    identity: row.is_identity === 'YES',
    required: row.is_nullable === 'NO' && row.column_default === null && row.is_identity !== 'YES',
  }));
}

/** A SQLite value as the PostgreSQL column takes it. */
function converted(value: SQLOutputValue, type: string): unknown {
  if (value === null) return null;
  if (type === 'boolean') return value === 1 || value === 1n;
  if (type === 'bytea') return Buffer.from(value as Uint8Array);
  if (typeof value === 'bigint') return value.toString();
  return value;
}

async function copyTable(
  source: DatabaseSync,
  target: Queryable,
  table: string,
  columns: TargetColumn[],
  progress: (line: string) => void,
): Promise<number> {
  const sourceColumns = new Set(
    source
      .prepare(`PRAGMA table_info("${table}")`)
      .all()
      .map((row) => String(row.name)),
  );
  const missing = columns.filter((column) => column.required && !sourceColumns.has(column.name));
  if (missing.length > 0) {
    throw new MigrateStoreError(
      `${table}: PostgreSQL needs ${missing.map((column) => column.name).join(', ')}, which the SQLite file lacks; start the server once on SQLite with this version (it upgrades its schema), then migrate`,
    );
  }
  const shared = columns.filter((column) => sourceColumns.has(column.name));
  const list = shared.map((column) => `"${column.name}"`).join(', ');
  const overriding = shared.some((column) => column.identity) ? ' OVERRIDING SYSTEM VALUE' : '';
  let batch: unknown[][] = [];
  let rows = 0;
  const flush = async () => {
    if (batch.length === 0) return;
    const values: unknown[] = [];
    const tuples = batch.map((row) => {
      const placeholders = row.map((value) => {
        values.push(value);
        return `$${values.length}`;
      });
      return `(${placeholders.join(', ')})`;
    });
    await target.query(`INSERT INTO "${table}" (${list})${overriding} VALUES ${tuples.join(', ')}`, values);
    rows += batch.length;
    batch = [];
    if (rows % (BATCH_ROWS * 20) === 0) progress(`  ${table}: ${rows} rows`);
  };
  for (const row of source.prepare(`SELECT ${list} FROM "${table}"`).iterate()) {
    batch.push(shared.map((column) => converted(row[column.name] as SQLOutputValue, column.type)));
    if (batch.length >= BATCH_ROWS) await flush();
  }
  await flush();
  for (const column of shared.filter((entry) => entry.identity)) {
    // The copied ids are taken: the next one generated follows the largest.
    await target.query(
      `SELECT setval(pg_get_serial_sequence($1, $2), (SELECT COALESCE(MAX("${column.name}"), 0) + 1 FROM "${table}"), false)`,
      [table, column.name],
    );
  }
  return rows;
}

/**
 * The revocation log goes on where it was: the same stream id and the same event ids, so a gateway
 * that reconnects with its Last-Event-ID hears what it missed rather than a reset.
 */
async function continueRevocationStream(source: DatabaseSync, target: Queryable): Promise<void> {
  const stream = source.prepare("SELECT value FROM gatehouse_meta WHERE key = 'revocation_stream'").get() as
    | { value: string }
    | undefined;
  const latest = source.prepare('SELECT COALESCE(MAX(id), 0) AS id FROM revocation_events').get() as {
    id: number;
  };
  await target.query(
    `UPDATE revocation_log_state SET latest = $1${stream ? ', stream_id = $2' : ''}`,
    stream ? [latest.id, stream.value] : [latest.id],
  );
}

async function assertEmpty(target: Queryable, tables: string[]): Promise<void> {
  for (const table of tables) {
    const [row] = await target.query<{ used: boolean }>(`SELECT EXISTS (SELECT 1 FROM "${table}") AS used`);
    if (row?.used) {
      throw new MigrateStoreError(
        `the PostgreSQL database already holds Gatehouse data (${table} has rows): migrate into a new, empty database`,
      );
    }
  }
  const [state] = await target.query<{ latest: number }>('SELECT latest FROM revocation_log_state');
  if ((state?.latest ?? 0) > 0) {
    throw new MigrateStoreError(
      'the PostgreSQL database already holds a revocation log: migrate into a new, empty database',
    );
  }
}

export async function migrateStore(options: MigrateStoreOptions): Promise<MigrateStoreReport> {
  const progress = options.progress ?? (() => {});
  const source = new DatabaseSync(sqliteFileOf(options.from), { readOnly: true });
  const postgres = connectPostgres(options.to, options.pool, { applicationName: 'gatehouse-migrate-store' });
  try {
    const ran = await migrate(postgres, POSTGRES_MIGRATIONS);
    if (ran.length > 0) progress(`PostgreSQL schema created (${ran.length} migrations)`);
    const counts = sqliteTables(source);
    const targets = new Map<string, TargetColumn[]>();
    for (const table of TRANSFERRED_TABLES) {
      const columns = await targetColumns(postgres, table);
      if (columns.length > 0 && counts.has(table)) targets.set(table, columns);
    }
    await assertEmpty(postgres, [...targets.keys()]);
    // One read transaction: every table as of one instant.
    source.exec('BEGIN');
    try {
      const copied = await postgres.transaction(async (tx) => {
        const done: MigrateStoreReport['copied'] = [];
        for (const [table, columns] of targets) {
          progress(`copying ${table} (${counts.get(table)} rows)`);
          done.push({ table, rows: await copyTable(source, tx, table, columns, progress) });
        }
        if (targets.has('revocation_events')) await continueRevocationStream(source, tx);
        return done;
      });
      const leftBehind = [...counts]
        .filter(
          ([table, rows]) =>
            rows > 0 && !targets.has(table) && !TRANSIENT_TABLES.has(table) && !INTERNAL_TABLES.has(table),
        )
        .map(([table, rows]) => ({ table, rows }));
      return { copied, leftBehind };
    } finally {
      source.exec('COMMIT');
    }
  } finally {
    source.close();
    await postgres.close();
  }
}
