/**
 * The fixed-window limiter, in memory (one instance) and in PostgreSQL (shared by instances):
 * the same counts, peeks and window resets; in PostgreSQL two pools (two instances)
 * count against one window.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  createTestDatabase,
  skipWithoutPostgres,
  type TestDatabase,
} from '../../../test/helpers/postgres.ts';
import { connectPostgres, type Postgres } from '../store/postgres/connection.ts';
import { migrate } from '../store/postgres/migrations.ts';
import { POSTGRES_MIGRATIONS } from '../store/postgres/schema.ts';
import { postgresRateLimiter, purgeRateLimitWindows } from './postgres-rate-limit.ts';
import { memoryRateLimiters, type RateLimiterFactory } from './rate-limit.ts';

// Awaited before any describe: an await between suites would drop the later one silently.
const skipPostgres = await skipWithoutPostgres();

function contract(factories: () => [RateLimiterFactory, RateLimiterFactory]) {
  test('counts to the limit, then answers the seconds to wait', async () => {
    const [make] = factories();
    const limiter = make('count', { max: 2, windowSeconds: 60 });
    assert.equal(await limiter.hit('a'), 0);
    assert.equal(await limiter.peek('a'), 0, 'one more would still pass');
    assert.equal(await limiter.hit('a'), 0);
    const wait = await limiter.peek('a');
    assert.ok(wait > 0 && wait <= 60, `peek says wait ${wait}`);
    const over = await limiter.hit('a');
    assert.ok(over > 0 && over <= 60);
    assert.equal(await limiter.hit('b'), 0, 'another key has its own window');
  });

  test('a window that is over starts again', async () => {
    const [make] = factories();
    const limiter = make('reset', { max: 1, windowSeconds: 1 });
    assert.equal(await limiter.hit('a'), 0);
    assert.ok((await limiter.hit('a')) > 0);
    await sleep(1100);
    assert.equal(await limiter.peek('a'), 0);
    assert.equal(await limiter.hit('a'), 0);
  });
}

describe('in memory', () => {
  contract(() => [memoryRateLimiters, memoryRateLimiters]);
});

describe('in PostgreSQL', { skip: skipPostgres }, () => {
  let database: TestDatabase;
  let pools: Postgres[] = [];
  const settings = { max: 2, acquireTimeoutMs: 2000, statementTimeoutMs: 5000 };
  const factory =
    (db: Postgres): RateLimiterFactory =>
    (scope, limit) =>
      postgresRateLimiter(db, scope, limit);
  before(async () => {
    database = await createTestDatabase();
    pools = [connectPostgres(database.url, settings), connectPostgres(database.url, settings)];
    await migrate(pools[0]!, POSTGRES_MIGRATIONS);
  });
  after(async () => {
    for (const pool of pools) await pool.close();
    await database?.drop();
  });
  contract(() => [factory(pools[0]!), factory(pools[1]!)]);

  test('two instances count against one window, concurrently, without losing a count', async () => {
    const limit = { max: 10, windowSeconds: 60 };
    const [a, b] = [factory(pools[0]!)('shared', limit), factory(pools[1]!)('shared', limit)];
    const waits = await Promise.all(Array.from({ length: 14 }, (_, i) => (i % 2 ? a : b).hit('k')));
    assert.equal(waits.filter((wait) => wait === 0).length, 10, 'exactly the limit passed');
    assert.ok((await a.peek('k')) > 0 && (await b.peek('k')) > 0);
  });

  test('windows that are over are purged', async () => {
    const limiter = factory(pools[0]!)('purge', { max: 1, windowSeconds: 1 });
    await limiter.hit('x');
    await sleep(1100);
    assert.ok((await purgeRateLimitWindows(pools[1]!)) >= 1);
    const rows = await pools[0]!.query("SELECT 1 FROM rate_limit_windows WHERE scope = 'purge'");
    assert.equal(rows.length, 0);
  });
});
