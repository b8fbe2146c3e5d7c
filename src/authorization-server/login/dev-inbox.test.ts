/**
 * The development inbox's contract (dev-inbox.ts), run in memory and in PostgreSQL: newest first,
 * bounded, expiring, copies. PostgreSQL runs where a server is reachable (test/helpers/postgres.ts);
 * in CI it must be. Its own test: a message added at one instance is listed at another.
 */
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';
import {
  createTestDatabase,
  skipWithoutPostgres,
  type TestDatabase,
} from '../../../test/helpers/postgres.ts';
import { connectPostgres, type Postgres } from '../store/postgres/connection.ts';
import { migrate } from '../store/postgres/migrations.ts';
import { POSTGRES_MIGRATIONS } from '../store/postgres/schema.ts';
import { createMemoryDevInbox, type DevInbox, type DevInboxOptions } from './dev-inbox.ts';
import { postgresDevInbox } from './postgres-dev-inbox.ts';

// Before any test is declared: the runner starts the file's tests once its first ones are in.
const skipPostgres = await skipWithoutPostgres();

let clock = 0;
const message = (n: number) => ({ to: `user${n}@example.com`, subject: `Message ${n}`, text: `Body ${n}` });

function devInboxContract(fresh: (options: DevInboxOptions) => Promise<DevInbox>): void {
  beforeEach(() => {
    clock = 1_700_000_000_000;
  });

  test('lists newest first, with an id and the time each was sent, bounded', async () => {
    const inbox = await fresh({ maxMessages: 3, now: () => clock });
    for (let n = 1; n <= 5; n++) {
      await inbox.add(message(n));
      clock += 1000;
    }
    const listed = await inbox.list();
    assert.deepEqual(
      listed.map((m) => m.subject),
      ['Message 5', 'Message 4', 'Message 3'],
    );
    assert.deepEqual(
      { to: listed[0]?.to, text: listed[0]?.text, time: listed[0]?.time },
      { to: 'user5@example.com', text: 'Body 5', time: new Date(1_700_000_004_000).toISOString() },
    );
    assert.equal(new Set(listed.map((m) => m.id)).size, 3);
    // Copies: changing one changes nothing kept.
    listed[0]!.text = 'changed';
    assert.equal((await inbox.list())[0]?.text, 'Body 5');
  });

  test('forgets messages after the ttl', async () => {
    const inbox = await fresh({ ttlMs: 60_000, now: () => clock });
    await inbox.add(message(1));
    clock += 30_000;
    await inbox.add(message(2));
    clock += 29_999;
    assert.equal((await inbox.list()).length, 2);
    clock += 1;
    assert.deepEqual(
      (await inbox.list()).map((m) => m.subject),
      ['Message 2'],
    );
    clock += 30_000;
    assert.deepEqual(await inbox.list(), []);
  });

  test('refuses nonsensical bounds', async () => {
    await assert.rejects(async () => fresh({ maxMessages: 0 }), /maxMessages/);
    await assert.rejects(async () => fresh({ ttlMs: 0 }), /ttlMs/);
  });
}

describe('the development inbox in memory', () => {
  devInboxContract(async (options) => createMemoryDevInbox(options));
});

describe('the development inbox in PostgreSQL', { skip: skipPostgres }, () => {
  let database: TestDatabase;
  let postgres: Postgres;
  const pool = () =>
    connectPostgres(database.url, { max: 2, acquireTimeoutMs: 5000, statementTimeoutMs: 10_000 });
  before(async () => {
    database = await createTestDatabase();
    postgres = pool();
    await migrate(postgres, POSTGRES_MIGRATIONS);
  });
  after(async () => {
    await postgres?.close();
    await database?.drop();
  });
  beforeEach(async () => {
    await postgres.query('TRUNCATE dev_inbox');
  });

  devInboxContract(async (options) => postgresDevInbox(postgres, options));

  test('a message added at one instance is listed at the other; the table stays bounded', async () => {
    const other = pool();
    try {
      const first = postgresDevInbox(postgres, { maxMessages: 2 });
      const second = postgresDevInbox(other, { maxMessages: 2 });
      await first.add(message(1));
      assert.deepEqual(
        (await second.list()).map((m) => m.to),
        ['user1@example.com'],
      );
      await second.add(message(2));
      await first.add(message(3));
      assert.deepEqual(
        (await second.list()).map((m) => m.subject),
        ['Message 3', 'Message 2'],
      );
      const [row] = await postgres.query<{ n: number }>('SELECT count(*)::int AS n FROM dev_inbox');
      assert.equal(row?.n, 2, 'rows beyond the bound are deleted, not only hidden');
    } finally {
      await other.close();
    }
  });

  test('expired rows are deleted when a message is added', async () => {
    const inbox = postgresDevInbox(postgres, { ttlMs: 60_000, now: () => clock });
    await inbox.add(message(1));
    clock += 60_000;
    await inbox.add(message(2));
    const rows = await postgres.query<{ subject: string }>('SELECT subject FROM dev_inbox');
    assert.deepEqual(
      rows.map((row) => row.subject),
      ['Message 2'],
    );
  });
});
