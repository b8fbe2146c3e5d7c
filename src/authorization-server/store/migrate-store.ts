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
import { DatabaseSync } from 'node:sqlite';
import type { StorageConfig } from '../../shared/config/schema.ts';
import { connectPostgres, type Queryable } from './postgres/connection.ts';
import { migrate } from './postgres/migrations.ts';
import { POSTGRES_MIGRATIONS } from './postgres/schema.ts';
import { DATABASE_FILE } from './sqlite-store.ts';
import { copyTable, sqliteTables, type TargetColumn, targetColumns } from './table-copy.ts';

/**
 * What is copied, in this order. A table the target does not have (a part not yet in PostgreSQL)
 * is reported as left behind when SQLite holds rows of it.
 */
/** The admin directory's tables (admin/sqlite-directory.ts, admin/postgres-directory.ts). */
export const DIRECTORY_TABLES = [
  'directory_users',
  'directory_domains',
  'directory_trusted_domains',
  'directory_removed_seeds',
  'client_states',
  'seen_clients',
  'registered_clients',
  'client_approvals',
] as const;

export const TRANSFERRED_TABLES = [
  'oidc_models',
  'accounts',
  'consent_grants',
  'grant_use',
  'audit_records',
  'revocation_events',
  ...DIRECTORY_TABLES,
] as const;

/** Short-lived state that is deliberately not copied (see the header). */
const TRANSIENT_TABLES = new Set(['login_codes', 'login_throttle', 'rate_limit_windows', 'dev_inbox']);
/** Bookkeeping of the stores themselves, not data. */
const INTERNAL_TABLES = new Set(['gatehouse_meta', 'gatehouse_migrations', 'sqlite_sequence']);

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

function sqliteFileOf(from: string): string {
  const file = existsSync(from) && statSync(from).isDirectory() ? path.join(from, DATABASE_FILE) : from;
  if (!existsSync(file)) {
    throw new MigrateStoreError(
      `no SQLite store at ${file}: give --from the data directory (holding ${DATABASE_FILE}) or the file itself`,
    );
  }
  return file;
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
