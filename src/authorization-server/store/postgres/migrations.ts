/**
 * Versioned schema migrations of the PostgreSQL store, run at start by every instance.
 *
 * Each part of the store (oidc-provider's models, the audit trail, ...) owns a list of migrations
 * whose ids it never edits or reuses; schema.ts puts the lists in order. The run holds a
 * transaction-scoped advisory lock, so two instances starting together do not race: the second
 * waits, then finds nothing left to do. PostgreSQL's DDL is transactional, so a migration that
 * fails leaves the schema as it was.
 */
import type { Postgres, Queryable } from './connection.ts';

export interface Migration {
  /** Unique and permanent, e.g. `oidc-models-1`. */
  id: string;
  /** Statements, run in the migration's transaction. */
  sql: string;
}

/** pg_advisory_xact_lock's key for migrations: any constant no other lock of this database uses. */
const MIGRATION_LOCK = 7_401_221_337;

async function applied(tx: Queryable): Promise<Set<string>> {
  await tx.query(
    `CREATE TABLE IF NOT EXISTS gatehouse_migrations (
       id         text PRIMARY KEY,
       applied_at timestamptz NOT NULL DEFAULT now()
     )`,
  );
  const rows = await tx.query<{ id: string }>('SELECT id FROM gatehouse_migrations');
  return new Set(rows.map((row) => row.id));
}

/**
 * Applies the migrations not yet applied, in order; returns their ids. Refuses a database holding
 * migrations this version does not know: a newer Gatehouse wrote it.
 */
export async function migrate(db: Postgres, migrations: readonly Migration[]): Promise<string[]> {
  const known = new Set(migrations.map((migration) => migration.id));
  if (known.size !== migrations.length) throw new Error('duplicate migration ids');
  return db.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
    const done = await applied(tx);
    const unknown = [...done].filter((id) => !known.has(id));
    if (unknown.length > 0) {
      throw new Error(
        `the PostgreSQL store was migrated by a newer Gatehouse (${unknown.join(', ')}): run that version, or restore a backup`,
      );
    }
    const ran: string[] = [];
    for (const migration of migrations) {
      if (done.has(migration.id)) continue;
      await tx.query(migration.sql);
      await tx.query('INSERT INTO gatehouse_migrations (id) VALUES ($1)', [migration.id]);
      ran.push(migration.id);
    }
    return ran;
  });
}
