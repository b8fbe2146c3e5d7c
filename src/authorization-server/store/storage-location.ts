/**
 * Which store the authorization server uses, decided once at start from `storage.url` (or the
 * environment variable GATEHOUSE_STORAGE_URL, which takes its place): absent, SQLite in the data
 * directory; a PostgreSQL URL, one database shared by every instance.
 */
import type { LoadedConfig } from '../../shared/config/load.ts';
import { ConfigError } from '../../shared/config/load.ts';
import type { StorageConfig } from '../../shared/config/schema.ts';
import { resolveSecret } from '../../shared/config/secrets.ts';

/** The environment variable that, when set, takes the place of `storage.url`. */
export const STORAGE_URL_VARIABLE = 'GATEHOUSE_STORAGE_URL';

export type StorageLocation =
  | { kind: 'sqlite'; dataDir: string }
  | { kind: 'postgres'; url: string; pool: StorageConfig['pool'] };

/** The store the configuration (and environment) names; a bad URL stops the start, naming where it came from. */
export function storageLocation(loaded: LoadedConfig, env: NodeJS.ProcessEnv = process.env): StorageLocation {
  const fromEnv = env[STORAGE_URL_VARIABLE];
  const setting = fromEnv ? STORAGE_URL_VARIABLE : 'storage.url';
  const reference = fromEnv || loaded.config.storage.url;
  if (!reference) return { kind: 'sqlite', dataDir: loaded.dataDir };
  const value =
    reference.startsWith('env:') || reference.startsWith('file:')
      ? resolveSecret(reference, loaded.dataDir)
      : reference;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ConfigError(`${setting} is not a URL: give postgres://user@host:5432/database`);
  }
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') {
    throw new ConfigError(
      `${setting} must be a postgres:// URL (${url.protocol} is not a store Gatehouse knows); leave it unset for SQLite`,
    );
  }
  if (url.pathname.length <= 1) {
    throw new ConfigError(
      `${setting} names no database: add it as the path, postgres://user@host:5432/gatehouse`,
    );
  }
  return { kind: 'postgres', url: value, pool: loaded.config.storage.pool };
}

/** The URL without its password, for logs and errors. */
export function describeStorage(location: StorageLocation): string {
  if (location.kind === 'sqlite') return `SQLite in ${location.dataDir}`;
  const url = new URL(location.url);
  if (url.password) url.password = '***';
  return `PostgreSQL at ${url.href}`;
}
