/**
 * The secrets the authorization server generates at first start (the internal clients' secrets,
 * the example workload's key pair, the subject key), kept in the shared PostgreSQL database so that
 * instances with separate data directories use the same ones. One row per secret, named by its file
 * reference (`secrets/gatehouse-gateway.secret`), its value sealed with `storage.encryptionKey`
 * (sealed-box.ts) and the row's name, so no value opens under another name.
 *
 * Rows are only ever inserted, never changed: a generated secret is the deployment's for good.
 * Two instances inserting the same name at once both end up with the one that was first.
 */
import type { Postgres } from './postgres/connection.ts';
import type { Migration } from './postgres/migrations.ts';
import type { SealedBox } from './sealed-box.ts';

export const GENERATED_SECRET_MIGRATIONS: readonly Migration[] = [
  {
    id: 'generated-secrets-1',
    sql: `
      CREATE TABLE generated_secrets (
        name       text   PRIMARY KEY,
        sealed     bytea  NOT NULL,
        created_at bigint NOT NULL
      );
    `,
  },
];

export interface GeneratedSecrets {
  /** The value kept under `name`, or undefined. */
  get(name: string): Promise<string | undefined>;
  /** Keeps `value` under `name` unless a value is there already; answers the value kept now. */
  insertIfAbsent(name: string, value: string): Promise<string>;
}

const sealedAs = (name: string) => `generated_secrets:${name}`;

export function postgresGeneratedSecrets(db: Postgres, box: SealedBox): GeneratedSecrets {
  const get = async (name: string) => {
    const [row] = await db.query<{ sealed: Buffer }>('SELECT sealed FROM generated_secrets WHERE name = $1', [
      name,
    ]);
    return row ? box.open(sealedAs(name), row.sealed) : undefined;
  };
  return {
    get,
    async insertIfAbsent(name, value) {
      await db.query(
        `INSERT INTO generated_secrets (name, sealed, created_at) VALUES ($1, $2, $3)
         ON CONFLICT (name) DO NOTHING`,
        [name, box.seal(sealedAs(name), value), Date.now()],
      );
      const kept = await get(name);
      if (kept === undefined) throw new Error(`generated secret ${name} vanished right after it was kept`);
      return kept;
    },
  };
}
