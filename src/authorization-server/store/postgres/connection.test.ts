/** connection.ts: unavailability becomes StoreUnavailableError, transactions roll back, LISTEN reconnects. */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  createTestDatabase,
  skipWithoutPostgres,
  type TestDatabase,
} from '../../../../test/helpers/postgres.ts';
import { connectPostgres, isUnavailable, type Postgres, StoreUnavailableError } from './connection.ts';

// Awaited before any describe: a top-level await between suites would let the runner finish first.
const skip = await skipWithoutPostgres();

const POOL = { max: 4, acquireTimeoutMs: 2000, statementTimeoutMs: 5000 };

/** Resolves once check() is true, failing after `ms`. */
async function waitFor(check: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

describe('isUnavailable', () => {
  const pgError = (code: string) => Object.assign(new Error(`pg error ${code}`), { code });

  test('admin shutdown (57P01) and connection failure (08006) mean unavailable', () => {
    assert.equal(isUnavailable(pgError('57P01')), true);
    assert.equal(isUnavailable(pgError('08006')), true);
    assert.equal(isUnavailable(Object.assign(new Error('connect'), { code: 'ECONNREFUSED' })), true);
    assert.equal(isUnavailable(new StoreUnavailableError('down')), true);
  });

  test('a unique violation (23505) or a syntax error (42601) is not unavailability', () => {
    assert.equal(isUnavailable(pgError('23505')), false);
    assert.equal(isUnavailable(pgError('42601')), false);
    assert.equal(isUnavailable(new Error('something else')), false);
    assert.equal(isUnavailable(undefined), false);
  });
});

describe('a database that cannot be reached', () => {
  test('query rejects with StoreUnavailableError and check() says not ok', async () => {
    const db = connectPostgres('postgres://postgres@127.0.0.1:1/gatehouse', {
      max: 1,
      acquireTimeoutMs: 300,
      statementTimeoutMs: 1000,
    });
    try {
      await assert.rejects(db.query('SELECT 1'), StoreUnavailableError);
      await assert.rejects(
        db.transaction(async (tx) => tx.query('SELECT 1')),
        StoreUnavailableError,
      );
      const check = await db.check();
      assert.equal(check.ok, false);
    } finally {
      await db.close();
    }
  });
});

describe('connectPostgres', { skip }, () => {
  let database: TestDatabase;
  let db: Postgres;

  before(async () => {
    database = await createTestDatabase();
    db = connectPostgres(database.url, POOL);
    await db.query('CREATE TABLE items (id int PRIMARY KEY)');
  });
  after(async () => {
    await db.close();
    await database.drop();
  });

  test('check() is ok and int8 comes back as a number', async () => {
    assert.deepEqual(await db.check(), { ok: true });
    assert.deepEqual(await db.query('SELECT 9007199254740991::int8 AS n'), [{ n: 9007199254740991 }]);
  });

  test('a unique violation is passed through as it is, not as unavailability', async () => {
    await db.query('INSERT INTO items VALUES (100)');
    const error = await db.query('INSERT INTO items VALUES (100)').then(
      () => undefined,
      (caught: unknown) => caught,
    );
    assert.ok(error instanceof Error);
    assert.equal(error instanceof StoreUnavailableError, false);
    assert.equal((error as { code?: string }).code, '23505');
    assert.equal(isUnavailable(error), false);
  });

  test('transaction commits, and rolls back when fn throws', async () => {
    await db.transaction(async (tx) => {
      await tx.query('INSERT INTO items VALUES (1)');
    });
    await assert.rejects(
      db.transaction(async (tx) => {
        await tx.query('INSERT INTO items VALUES (2)');
        throw new Error('changed my mind');
      }),
      /changed my mind/,
    );
    assert.deepEqual(await db.query('SELECT id FROM items WHERE id IN (1, 2) ORDER BY id'), [{ id: 1 }]);
  });

  test('listen receives what notify sends; stop ends it', async () => {
    const received: string[] = [];
    const stop = await db.listen('test_channel', (payload) => received.push(payload));
    await db.notify('test_channel', 'hello');
    await db.notify('other_channel', 'not for us');
    await waitFor(() => received.length >= 1, 3000, 'the notification');
    await sleep(100);
    assert.deepEqual(received, ['hello']);
    await stop();
    await db.notify('test_channel', 'after stop');
    await sleep(200);
    assert.deepEqual(received, ['hello']);
  });

  test('a connection killed while a transaction holds it: the transaction fails as unavailable, the process lives on', async () => {
    const applicationName = `gatehouse_test_${randomBytes(4).toString('hex')}`;
    const own = connectPostgres(database.url, POOL, { applicationName });
    try {
      const failed = own.transaction(async (tx) => {
        await tx.query('SELECT 1');
        // Between two statements (the server doing other work), the backend goes away: the
        // connection emits 'error' while checked out. Unheard, that event ends the process (the
        // runner reports it as an uncaught exception).
        await db.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1', [
          applicationName,
        ]);
        await sleep(200);
        await tx.query('SELECT 2');
      });
      await assert.rejects(failed, StoreUnavailableError);
      assert.deepEqual(await own.query('SELECT 3 AS three'), [{ three: 3 }], 'a new connection serves');
    } finally {
      await own.close();
    }
  });

  test('listen refuses a channel name that is not an identifier', async () => {
    await assert.rejects(
      db.listen('bad; DROP TABLE items', () => {}),
      /bad channel name/,
    );
  });

  test('the listener reconnects by itself after its backend is killed', async () => {
    const applicationName = `gatehouse_test_${randomBytes(4).toString('hex')}`;
    const own = connectPostgres(database.url, POOL, { applicationName });
    try {
      const received: string[] = [];
      let reconnects = 0;
      await own.listen(
        'test_reconnect',
        (payload) => received.push(payload),
        () => reconnects++,
      );
      const killed = await db.query<{ killed: boolean }>(
        `SELECT pg_terminate_backend(pid) AS killed FROM pg_stat_activity
         WHERE application_name = $1 AND query LIKE 'LISTEN%'`,
        [applicationName],
      );
      assert.deepEqual(killed, [{ killed: true }]);
      await waitFor(() => reconnects === 1, 5000, 'the reconnection');
      await db.notify('test_reconnect', 'after the kill');
      await waitFor(() => received.length >= 1, 3000, 'the notification after reconnecting');
      assert.deepEqual(received, ['after the kill']);
      assert.equal(reconnects, 1);
    } finally {
      await own.close();
    }
  });

  test('an exhausted pool makes the next query fail with StoreUnavailableError', async () => {
    const small = connectPostgres(database.url, { max: 1, acquireTimeoutMs: 200, statementTimeoutMs: 5000 });
    let release: () => void = () => {};
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    let entered = false;
    try {
      const holding = small.transaction(async (tx) => {
        await tx.query('SELECT 1');
        entered = true;
        await held;
      });
      await waitFor(() => entered, 3000, 'the held connection');
      const started = Date.now();
      await assert.rejects(small.query('SELECT 1'), (error: Error) => {
        assert.ok(error instanceof StoreUnavailableError);
        // What happened and what to change, in the operator's words.
        assert.match(
          error.message,
          /all 1 connections of the pool stayed busy for 200 ms \(storage.pool.max/,
        );
        return true;
      });
      assert.ok(Date.now() - started < 3000, 'the wait is bounded by acquireTimeoutMs');
      release();
      await holding;
      // Once the connection is back, the pool answers again.
      assert.deepEqual(await small.query('SELECT 1 AS one'), [{ one: 1 }]);
    } finally {
      release();
      await small.close();
    }
  });

  test('a prepared statement the schema outgrew (another instance migrated): retried on a fresh connection, a transaction gets 503', async () => {
    const one = connectPostgres(database.url, { ...POOL, max: 1 });
    const other = connectPostgres(database.url, POOL);
    try {
      await other.query('CREATE TABLE prepared_shape (id int PRIMARY KEY, name text)');
      await other.query("INSERT INTO prepared_shape VALUES (1, 'a')");
      const read = () => one.query('SELECT * FROM prepared_shape WHERE id = $1', [1]);
      for (let i = 0; i < 3; i += 1) await read(); // named and prepared from the second run on
      await other.query('ALTER TABLE prepared_shape ADD COLUMN extra text');
      assert.deepEqual(await read(), [{ id: 1, name: 'a', extra: null }], 'answered, with the new column');
      assert.deepEqual(await read(), [{ id: 1, name: 'a', extra: null }], 'and from then on');
      await other.query('ALTER TABLE prepared_shape ADD COLUMN more text');
      await assert.rejects(
        one.transaction((tx) => tx.query('SELECT * FROM prepared_shape WHERE id = $1', [1])),
        (error: Error) => error instanceof StoreUnavailableError,
      );
      assert.equal((await read()).length, 1, 'the next statement runs on a connection that fits');
    } finally {
      await one.close();
      await other.close();
    }
  });
});
