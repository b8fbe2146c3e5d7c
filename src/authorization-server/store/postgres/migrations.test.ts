/** migrations.ts against a real PostgreSQL: applied once, safe when two instances start together, transactional. */
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, test } from 'node:test';
import {
  createTestDatabase,
  skipWithoutPostgres,
  type TestDatabase,
} from '../../../../test/helpers/postgres.ts';
import { connectPostgres, type Postgres } from './connection.ts';
import { type Migration, migrate } from './migrations.ts';
import { POSTGRES_MIGRATIONS } from './schema.ts';

const POOL = { max: 2, acquireTimeoutMs: 5000, statementTimeoutMs: 10_000 };

const TWO: readonly Migration[] = [
  { id: 'test-1', sql: 'CREATE TABLE test_one (id int PRIMARY KEY)' },
  { id: 'test-2', sql: 'CREATE TABLE test_two (id int PRIMARY KEY); INSERT INTO test_two VALUES (1)' },
];

describe('migrate', { skip: await skipWithoutPostgres() }, () => {
  let database: TestDatabase;
  let pools: Postgres[];
  const pool = (): Postgres => {
    const db = connectPostgres(database.url, POOL);
    pools.push(db);
    return db;
  };
  const migrationIds = async (db: Postgres) =>
    (await db.query<{ id: string }>('SELECT id FROM gatehouse_migrations ORDER BY id')).map((row) => row.id);
  const tableExists = async (db: Postgres, name: string) =>
    (await db.query<{ t: string | null }>('SELECT to_regclass($1)::text AS t', [name]))[0]?.t === name;

  beforeEach(async () => {
    database = await createTestDatabase();
    pools = [];
  });
  afterEach(async () => {
    for (const db of pools) await db.close();
    await database.drop();
  });

  test('applies each migration once and returns its id; a second run returns []', async () => {
    const db = pool();
    assert.deepEqual(
      await migrate(db, POSTGRES_MIGRATIONS),
      POSTGRES_MIGRATIONS.map((migration) => migration.id),
    );
    assert.equal(await tableExists(db, 'oidc_models'), true);
    assert.deepEqual(await migrate(db, POSTGRES_MIGRATIONS), []);
    assert.deepEqual(await migrationIds(db), POSTGRES_MIGRATIONS.map((migration) => migration.id).sort());
  });

  test('only the new migrations of a longer list run', async () => {
    const db = pool();
    assert.deepEqual(await migrate(db, TWO.slice(0, 1)), ['test-1']);
    assert.deepEqual(await migrate(db, TWO), ['test-2']);
    assert.deepEqual(await migrationIds(db), ['test-1', 'test-2']);
  });

  test('two instances migrating together both succeed and each migration is recorded once', async () => {
    const [first, second] = await Promise.all([migrate(pool(), TWO), migrate(pool(), TWO)]);
    // One of them ran both migrations, the other waited on the lock and found nothing to do.
    assert.deepEqual([first, second].map((ran) => ran.length).sort(), [0, 2]);
    const db = pool();
    const rows = await db.query<{ id: string; n: number }>(
      'SELECT id, count(*)::int8 AS n FROM gatehouse_migrations GROUP BY id ORDER BY id',
    );
    assert.deepEqual(rows, [
      { id: 'test-1', n: 1 },
      { id: 'test-2', n: 1 },
    ]);
    assert.deepEqual(await db.query('SELECT id FROM test_two'), [{ id: 1 }]);
  });

  test('refuses a database holding a migration this version does not know, naming it', async () => {
    const db = pool();
    await migrate(db, TWO);
    await db.query("INSERT INTO gatehouse_migrations (id) VALUES ('future-7')");
    await assert.rejects(migrate(db, TWO), /future-7/);
  });

  test('refuses duplicate migration ids', async () => {
    await assert.rejects(migrate(pool(), [TWO[0]!, TWO[0]!]), /duplicate migration ids/);
  });

  test('a failing migration leaves no table and no migration row behind', async () => {
    const db = pool();
    const failing: Migration[] = [
      TWO[0]!,
      { id: 'test-bad', sql: 'CREATE TABLE test_bad (id int); SELECT * FROM no_such_table' },
    ];
    await assert.rejects(migrate(db, failing), /no_such_table/);
    // The whole run is one transaction: even the migration before the failing one is undone.
    assert.equal(await tableExists(db, 'test_bad'), false);
    assert.equal(await tableExists(db, 'test_one'), false);
    assert.equal(await tableExists(db, 'gatehouse_migrations'), false);
    // And the database is still usable for a correct list.
    assert.deepEqual(await migrate(db, TWO), ['test-1', 'test-2']);
  });
});
