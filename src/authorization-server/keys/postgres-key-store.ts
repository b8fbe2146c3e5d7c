/**
 * The key set (key-store.ts) in the shared PostgreSQL database: one row of `signing_keys`, the
 * key file's JSON sealed with `storage.encryptionKey` (store/sealed-box.ts), so every instance signs
 * with the same keys, publishes the same JWKS and accepts the others' cookies, while the database
 * alone (a backup, a replica) yields no private key.
 *
 * A write is `UPDATE … WHERE version = expected` (or an insert that does nothing when the row
 * exists): of two instances rotating at once, one wins and the other is told `conflict`. After a
 * write, `NOTIFY gatehouse_keys` tells the other instances to read again; they also read on each
 * maintenance tick and when their listening connection comes back, so a missed notification only
 * delays them.
 */
import type { Postgres } from '../store/postgres/connection.ts';
import type { Migration } from '../store/postgres/migrations.ts';
import type { SealedBox } from '../store/sealed-box.ts';
import { parseKeySet, serializeKeySet } from './key-file.ts';
import type { KeyStore } from './key-store.ts';

export const SIGNING_KEY_MIGRATIONS: readonly Migration[] = [
  {
    id: 'signing-keys-1',
    sql: `
      CREATE TABLE signing_keys (
        id         text   PRIMARY KEY,
        version    bigint NOT NULL,
        sealed     bytea  NOT NULL,
        updated_at bigint NOT NULL
      );
    `,
  },
];

export const KEYS_CHANNEL = 'gatehouse_keys';
/** The one row; its name is sealed into the value, so no other row's value opens in its place. */
const ROW = 'authorization-server';
const SEALED_AS = `signing_keys:${ROW}`;

export function postgresKeyStore(db: Postgres, box: SealedBox): KeyStore {
  return {
    description: 'the signing_keys table of PostgreSQL',
    shared: true,
    async read(options) {
      const [row] = await db.query<{ version: number; sealed: Buffer }>(
        'SELECT version, sealed FROM signing_keys WHERE id = $1',
        [ROW],
      );
      if (!row) return undefined;
      const parsed = parseKeySet(box.open(SEALED_AS, row.sealed), options, 'the signing keys in PostgreSQL');
      return { ...parsed, version: Number(row.version) };
    },
    async write(keys, expectedVersion) {
      const sealed = box.seal(SEALED_AS, serializeKeySet(keys));
      const rows =
        expectedVersion === 0
          ? await db.query<{ version: number }>(
              `INSERT INTO signing_keys (id, version, sealed, updated_at) VALUES ($1, 1, $2, $3)
               ON CONFLICT (id) DO NOTHING RETURNING version`,
              [ROW, sealed, Date.now()],
            )
          : await db.query<{ version: number }>(
              `UPDATE signing_keys SET sealed = $2, version = version + 1, updated_at = $3
               WHERE id = $1 AND version = $4 RETURNING version`,
              [ROW, sealed, Date.now(), expectedVersion],
            );
      if (rows.length === 0) return { ok: false, conflict: true };
      // The others read again; one that misses this reads at its next tick (key-manager.ts).
      await db.notify(KEYS_CHANNEL, String(rows[0]!.version)).catch(() => {});
      return { ok: true, version: Number(rows[0]!.version) };
    },
    watch: (onChange) => db.listen(KEYS_CHANNEL, () => onChange(), onChange),
  };
}
