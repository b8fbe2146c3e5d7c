/**
 * Copying tables from a SQLite file into PostgreSQL, column by column: the stores' tables have the
 * same names and columns (each part's SQLite and PostgreSQL files keep them so). Used by
 * `gatehouse migrate-store` (migrate-store.ts) and by the directory's import on upgrade
 * (admin/import-local-directory.ts). Table and column names come from the databases' own
 * catalogues, quoted: no input reaches the SQL.
 */
import type { DatabaseSync, SQLOutputValue } from 'node:sqlite';
import type { Queryable } from './postgres/connection.ts';

const BATCH_ROWS = 500;

/** A table that cannot be copied as it is (the SQLite file's schema is older). */
export class TableCopyError extends Error {
  override name = 'TableCopyError';
}

export interface TargetColumn {
  name: string;
  type: string;
  identity: boolean;
  required: boolean;
}

export function sqliteTables(db: DatabaseSync): Map<string, number> {
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

export async function targetColumns(db: Queryable, table: string): Promise<TargetColumn[]> {
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

export async function copyTable(
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
    throw new TableCopyError(
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
