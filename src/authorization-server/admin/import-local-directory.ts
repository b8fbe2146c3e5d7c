/**
 * An upgrade from a version that kept the admin directory in each instance's SQLite file while the
 * rest of the state was in PostgreSQL: at the first start on this version, the local directory
 * (users, domains, trusted domains, disabled clients, approvals, administrator-registered clients,
 * and the configuration entries an administrator removed) is copied into the shared database,
 * before the configuration file seeds it. Without this, a disabled client would come back enabled
 * and a removed user would be seeded back from the file: fail open.
 *
 * Only into an empty directory, under the directory's own advisory lock and re-checked inside it,
 * so two instances starting together import once, and an instance with another data directory
 * never overwrites what is there.
 */
import type { DatabaseSync } from 'node:sqlite';
import type { Logger } from '../../shared/logging.ts';
import { DIRECTORY_TABLES } from '../store/migrate-store.ts';
import type { Postgres } from '../store/postgres/connection.ts';
import { copyTable, sqliteTables, targetColumns } from '../store/table-copy.ts';
import { DIRECTORY_LOCK } from './postgres-directory.ts';

export async function importLocalDirectory(
  sqlite: DatabaseSync,
  postgres: Postgres,
  logger: Logger,
): Promise<number> {
  const local = sqliteTables(sqlite);
  const withRows = DIRECTORY_TABLES.filter((table) => (local.get(table) ?? 0) > 0);
  if (withRows.length === 0) return 0;
  return postgres.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock($1)', [DIRECTORY_LOCK]);
    for (const table of DIRECTORY_TABLES) {
      const [row] = await tx.query<{ used: boolean }>(`SELECT EXISTS (SELECT 1 FROM "${table}") AS used`);
      if (row?.used) return 0;
    }
    let rows = 0;
    for (const table of withRows) {
      rows += await copyTable(sqlite, tx, table, await targetColumns(tx, table), () => {});
    }
    logger.warn('the directory of this data directory was copied into PostgreSQL (an upgrade)', {
      tables: withRows,
      rows,
    });
    return rows;
  });
}
