/**
 * `gatehouse migrate-store`: where to copy from and to, by default the configuration's own data
 * directory and `storage.url` (so the file that will run the PostgreSQL instances names the target),
 * and what was copied, said in plain words.
 */
import { type LoadedConfig, loadConfig } from '../../shared/config/load.ts';
import { migrateStore } from './migrate-store.ts';
import { describeStorage, storageLocation } from './storage-location.ts';

export interface MigrateStoreArguments {
  config?: string | undefined;
  from?: string | undefined;
  to?: string | undefined;
}

/**
 * The target URL: --to, else the configuration's store. --to is checked as storage.url is (it may
 * be env:/file: too); GATEHOUSE_STORAGE_URL does not override what the command line says.
 */
function targetUrl(loaded: LoadedConfig, to: string | undefined): string {
  const location =
    to === undefined
      ? storageLocation(loaded)
      : storageLocation(
          { ...loaded, config: { ...loaded.config, storage: { ...loaded.config.storage, url: to } } },
          {},
        );
  if (location.kind !== 'postgres') {
    throw new Error(
      'no PostgreSQL database to copy into: set storage.url in the configuration file (or GATEHOUSE_STORAGE_URL), or give --to postgres://user@host:5432/database',
    );
  }
  return location.url;
}

export async function runMigrateStore(args: MigrateStoreArguments): Promise<number> {
  const loaded = loadConfig(args.config);
  const from = args.from ?? loaded.dataDir;
  const to = targetUrl(loaded, args.to);
  const pool = loaded.config.storage.pool;
  const target = describeStorage({ kind: 'postgres', url: to, pool });
  console.log(`Copying the SQLite store in ${from} to ${target}`);
  const report = await migrateStore({ from, to, pool, progress: (line) => console.log(line) });
  const total = report.copied.reduce((sum, entry) => sum + entry.rows, 0);
  console.log(`Done: ${total} rows in ${report.copied.length} tables.`);
  for (const { table, rows } of report.copied) console.log(`  ${table.padEnd(26)} ${rows}`);
  if (report.leftBehind.length > 0) {
    console.log('Not copied (PostgreSQL has no table for them):');
    for (const { table, rows } of report.leftBehind) console.log(`  ${table.padEnd(26)} ${rows}`);
  }
  console.log(
    'Next: start the authorization server with storage.url set to that database and storage.encryptionKey set, from the same data directory: its first start imports the keys and secrets there into the database.',
  );
  return 0;
}
