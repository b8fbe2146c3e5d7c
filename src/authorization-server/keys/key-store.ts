/**
 * Where the key set (key-file.ts: both signing-key rings and the cookie keys) is kept, behind one
 * interface so the key manager works the same on either:
 *
 * - `keys.json` in the data directory (SQLite, one instance): this file;
 * - one row of the shared PostgreSQL database, sealed (postgres-key-store.ts), so every instance
 *   signs with the same keys and publishes the same JWKS.
 *
 * Writes are compare-and-set on a version: a write based on a key set another instance has since
 * replaced is refused (`conflict`), and the writer reads again and decides anew (the overlap rule
 * may now say "too soon"). Version 0 means "no key set yet": writing at version 0 is the first
 * start's insert-if-absent, so two instances starting together end up with one key set.
 */
import path from 'node:path';
import {
  KEY_FILE,
  type ParsedKeys,
  type ReadOptions,
  readKeyFile,
  type StoredKeys,
  writeKeyFile,
} from './key-file.ts';

export interface VersionedKeys extends ParsedKeys {
  /** What write() must be given to replace exactly this key set. */
  version: number;
}

export type KeyWrite = { ok: true; version: number } | { ok: false; conflict: true };

export interface KeyStore {
  /** For logs and errors: where the keys are. */
  readonly description: string;
  /** Whether other instances write it too (then the manager reads it again every tick). */
  readonly shared: boolean;
  /** The key set now, or undefined before the first start. */
  read(options: ReadOptions): Promise<VersionedKeys | undefined>;
  /** Replaces the key set if it is still at `expectedVersion` (0: there is none yet). */
  write(keys: StoredKeys, expectedVersion: number): Promise<KeyWrite>;
  /**
   * Calls `onChange` when another instance may have changed the key set (it reads again). Returns
   * the function that stops watching.
   */
  watch(onChange: () => void): Promise<() => Promise<void>>;
}

/**
 * `<dataDir>/keys.json`: today's behaviour. One instance per data directory, so the version is this
 * process's count of writes, and nobody else changes the file.
 */
export function fileKeyStore(dataDir: string): KeyStore {
  const file = path.join(dataDir, KEY_FILE);
  let version = 0;
  return {
    description: file,
    shared: false,
    async read(options) {
      const read = readKeyFile(file, options);
      if (!read) return undefined;
      if (version === 0) version = 1;
      return { ...read, version };
    },
    async write(keys, expectedVersion) {
      if (expectedVersion !== version) return { ok: false, conflict: true };
      writeKeyFile(file, keys);
      version += 1;
      return { ok: true, version };
    },
    watch: async () => async () => {},
  };
}
