/**
 * The accounts contract (accounts.ts), one suite run against each store: SQLite and PostgreSQL
 * must remember the same accounts and consents and answer the same. PostgreSQL runs where a server
 * is reachable (test/helpers/postgres.ts); in CI it must be.
 */
import assert from 'node:assert/strict';
import { DatabaseSync } from 'node:sqlite';
import { after, before, beforeEach, describe, test } from 'node:test';
import {
  createTestDatabase,
  skipWithoutPostgres,
  type TestDatabase,
} from '../../../test/helpers/postgres.ts';
import { connectPostgres, type Postgres } from '../store/postgres/connection.ts';
import { migrate } from '../store/postgres/migrations.ts';
import { POSTGRES_MIGRATIONS } from '../store/postgres/schema.ts';
import { type Accounts, GRANT_USE_WRITE_INTERVAL_MS, grantUseThrottle } from './accounts.ts';
import { postgresAccounts } from './postgres-accounts.ts';
import { createSqliteAccounts } from './sqlite-accounts.ts';

// Before any test is declared: the runner starts the file's tests once its first ones are in.
const skipPostgres = await skipWithoutPostgres();

function accountsContract(fresh: () => Promise<Accounts>): void {
  test('an account is remembered with its address and last sign-in, and updated on the next', async () => {
    const accounts = await fresh();
    assert.equal(await accounts.emailOf('sub-a'), undefined);
    assert.equal(await accounts.lastLoginAt('sub-a'), undefined);
    const before = Date.now();
    await accounts.remember('sub-a', 'alice@example.com');
    assert.equal(await accounts.emailOf('sub-a'), 'alice@example.com');
    const first = await accounts.lastLoginAt('sub-a');
    assert.ok(first !== undefined && first >= before && first <= Date.now());
    await accounts.remember('sub-a', 'alice@new.example.com');
    assert.equal(await accounts.emailOf('sub-a'), 'alice@new.example.com');
    assert.deepEqual(await accounts.subjects(), ['sub-a']);
  });

  test('emailsOf answers the known subjects only, each once', async () => {
    const accounts = await fresh();
    await accounts.remember('sub-a', 'alice@example.com');
    await accounts.remember('sub-b', 'bob@example.com');
    const found = await accounts.emailsOf(['sub-b', 'nobody', 'sub-a', 'sub-b']);
    assert.deepEqual([...found].sort(), [
      ['sub-a', 'alice@example.com'],
      ['sub-b', 'bob@example.com'],
    ]);
    assert.equal((await accounts.emailsOf([])).size, 0);
  });

  test('one consent per user and client: the latest grant replaces the earlier one', async () => {
    const accounts = await fresh();
    await accounts.rememberGrant('sub-a', 'client-1', 'grant-1');
    await accounts.rememberGrant('sub-a', 'client-1', 'grant-2');
    await accounts.rememberGrant('sub-a', 'client-2', 'grant-3');
    await accounts.rememberGrant('sub-b', 'client-1', 'grant-4');
    assert.equal(await accounts.grantFor('sub-a', 'client-1'), 'grant-2');
    assert.equal(await accounts.grantFor('sub-b', 'client-2'), undefined);
    const ids = (grants: Array<{ grantId: string }>) => grants.map((grant) => grant.grantId);
    assert.deepEqual(ids(await accounts.grants({ sub: 'sub-a' })), ['grant-2', 'grant-3']);
    assert.deepEqual(ids(await accounts.grants({ clientId: 'client-1' })), ['grant-2', 'grant-4']);
    assert.deepEqual(ids(await accounts.grants({ sub: 'sub-b', clientId: 'client-1' })), ['grant-4']);
    assert.deepEqual(ids(await accounts.grants({})), ['grant-2', 'grant-3', 'grant-4']);
    assert.deepEqual(await accounts.grants({ sub: 'sub-a', clientId: 'client-1' }), [
      { sub: 'sub-a', clientId: 'client-1', grantId: 'grant-2', lastUsedAt: undefined },
    ]);
  });

  test('a forgotten grant is found no more, and its last use goes with it', async () => {
    const accounts = await fresh();
    await accounts.rememberGrant('sub-a', 'client-1', 'grant-1');
    await accounts.rememberGrant('sub-a', 'client-2', 'grant-2');
    await accounts.touchGrant('grant-1');
    await accounts.forgetGrant('grant-1');
    assert.equal(await accounts.grantFor('sub-a', 'client-1'), undefined);
    assert.deepEqual(
      (await accounts.grants({ sub: 'sub-a' })).map((grant) => grant.grantId),
      ['grant-2'],
    );
    // Given again under the same id (as after a restore): no stale "last used" comes back.
    await accounts.rememberGrant('sub-a', 'client-1', 'grant-1');
    assert.equal((await accounts.grants({ clientId: 'client-1' }))[0]?.lastUsedAt, undefined);
  });

  test('touchGrant stamps the last use of a grant', async () => {
    const accounts = await fresh();
    await accounts.rememberGrant('sub-a', 'client-1', 'grant-1');
    const before = Date.now();
    await accounts.touchGrant('grant-1');
    const [grant] = await accounts.grants({ sub: 'sub-a' });
    assert.ok(grant?.lastUsedAt !== undefined && grant.lastUsedAt >= before);
  });
}

describe('grant use throttle', () => {
  test('a grant is written at most once per interval, per process', () => {
    let now = 1_000_000;
    const throttle = grantUseThrottle(() => now);
    assert.equal(throttle.due('g'), now);
    now += GRANT_USE_WRITE_INTERVAL_MS - 1;
    assert.equal(throttle.due('g'), undefined);
    assert.equal(throttle.due('other'), now);
    now += 1;
    assert.equal(throttle.due('g'), now);
    throttle.forget('g');
    assert.equal(throttle.due('g'), now);
  });
});

describe('the SQLite accounts', () => {
  accountsContract(async () => createSqliteAccounts(new DatabaseSync(':memory:')));
});

describe('the PostgreSQL accounts', { skip: skipPostgres }, () => {
  let database: TestDatabase;
  let postgres: Postgres;
  before(async () => {
    database = await createTestDatabase();
    postgres = connectPostgres(database.url, { max: 4, acquireTimeoutMs: 2000, statementTimeoutMs: 10_000 });
    await migrate(postgres, POSTGRES_MIGRATIONS);
  });
  after(async () => {
    await postgres?.close();
    await database?.drop();
  });
  beforeEach(async () => {
    await postgres.query('TRUNCATE accounts, consent_grants, grant_use');
  });

  accountsContract(async () => postgresAccounts(postgres));

  test('two instances on one database: a sign-in and a consent at one are known at the other', async () => {
    const other = connectPostgres(database.url, {
      max: 2,
      acquireTimeoutMs: 2000,
      statementTimeoutMs: 10_000,
    });
    try {
      const first = postgresAccounts(postgres);
      const second = postgresAccounts(other);
      await first.remember('sub-a', 'alice@example.com');
      await first.rememberGrant('sub-a', 'client-1', 'grant-1');
      assert.equal(await second.emailOf('sub-a'), 'alice@example.com');
      assert.equal(await second.grantFor('sub-a', 'client-1'), 'grant-1');
      await second.forgetGrant('grant-1');
      assert.equal(await first.grantFor('sub-a', 'client-1'), undefined);
    } finally {
      await other.close();
    }
  });

  test('a stamp never moves the last use back', async () => {
    const accounts = postgresAccounts(postgres);
    await accounts.rememberGrant('sub-a', 'client-1', 'grant-1');
    const later = Date.now() + 3_600_000;
    await postgres.query('INSERT INTO grant_use (grant_id, last_used_at) VALUES ($1, $2)', [
      'grant-1',
      later,
    ]);
    await accounts.touchGrant('grant-1');
    assert.equal((await accounts.grants({ sub: 'sub-a' }))[0]?.lastUsedAt, later);
  });
});
