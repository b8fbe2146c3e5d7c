/**
 * A grant source (an authorization code) is consumed once, even when two redemptions race: in one
 * process on SQLite, and at two instances (two pools) on one PostgreSQL database. The loser gets
 * oidc-provider's InvalidGrant (RFC 6749 §5.2 invalid_grant). Refresh tokens keep their grace use,
 * once only however many uses race (tokens/refresh-grace.ts).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  createTestDatabase,
  skipWithoutPostgres,
  type TestDatabase,
} from '../../../test/helpers/postgres.ts';
import { withRefreshTokenGrace } from '../tokens/refresh-grace.ts';
import type { OidcModelStore } from './oidc-model-store.ts';
import { connectPostgres, type Postgres } from './postgres/connection.ts';
import { migrate } from './postgres/migrations.ts';
import { postgresOidcModelStore } from './postgres/postgres-oidc-store.ts';
import { POSTGRES_MIGRATIONS } from './postgres/schema.ts';
import { closeDatabase, openDatabase, sqliteOidcModelStore } from './sqlite-store.ts';

const POOL = { max: 4, acquireTimeoutMs: 2000, statementTimeoutMs: 5000 };
// Awaited before any describe: an await between suites would drop the later one silently.
const skipPostgres = await skipWithoutPostgres();

function contract(stores: () => [OidcModelStore, OidcModelStore]) {
  test('two redemptions of one authorization code at once: exactly one wins', async () => {
    const [first, second] = stores();
    await first.adapter('AuthorizationCode').upsert('code-1', { jti: 'code-1', grantId: 'g1' }, 60);
    const results = await Promise.allSettled([
      first.adapter('AuthorizationCode').consume('code-1'),
      second.adapter('AuthorizationCode').consume('code-1'),
    ]);
    assert.deepEqual(results.map((result) => result.status).sort(), ['fulfilled', 'rejected']);
    const lost = results.find((result) => result.status === 'rejected') as PromiseRejectedResult;
    assert.equal((lost.reason as { error?: string }).error, 'invalid_grant');
    const stored = await second.adapter('AuthorizationCode').find('code-1');
    assert.equal(typeof stored?.consumed, 'number');
  });

  test('a code already consumed, or gone, cannot be consumed again', async () => {
    const [store] = stores();
    const codes = store.adapter('AuthorizationCode');
    await codes.upsert('code-2', { jti: 'code-2' }, 60);
    await codes.consume('code-2');
    await assert.rejects(codes.consume('code-2'), { error: 'invalid_grant' });
    await assert.rejects(codes.consume('never-issued'), { error: 'invalid_grant' });
  });

  test('six uses of one refresh token at once, across both: its first use and one grace use pass, the rest revoke the grant', async () => {
    const [first, second] = stores();
    const graced = [first, second].map((store) => withRefreshTokenGrace(store.adapter('RefreshToken'), 10));
    await first.adapter('RefreshToken').upsert('rt-race', { jti: 'rt-race', grantId: 'g-race' }, 60);
    await first.adapter('AccessToken').upsert('at-race', { jti: 'at-race', grantId: 'g-race' }, 60);
    const results = await Promise.allSettled(
      Array.from({ length: 6 }, (_, i) => graced[i % 2]!.consume('rt-race')),
    );
    assert.equal(results.filter((result) => result.status === 'fulfilled').length, 2);
    for (const result of results.filter((r) => r.status === 'rejected') as PromiseRejectedResult[])
      assert.equal((result.reason as { error?: string }).error, 'invalid_grant');
    assert.equal(
      await second.adapter('AccessToken').find('at-race'),
      undefined,
      "the grant's tokens are gone",
    );
    assert.equal(await second.adapter('RefreshToken').find('rt-race'), undefined);
  });

  test('without a grace period, of two uses at once exactly one passes', async () => {
    const [first, second] = stores();
    const strict = [first, second].map((store) => withRefreshTokenGrace(store.adapter('RefreshToken'), 0));
    await first.adapter('RefreshToken').upsert('rt-strict', { jti: 'rt-strict', grantId: 'g-strict' }, 60);
    const results = await Promise.allSettled(strict.map((adapter) => adapter.consume('rt-strict')));
    assert.deepEqual(results.map((result) => result.status).sort(), ['fulfilled', 'rejected']);
  });

  test('a refresh token may be consumed again (its grace use is decided above the store)', async () => {
    const [store] = stores();
    const tokens = store.adapter('RefreshToken');
    await tokens.upsert('rt-1', { jti: 'rt-1' }, 60);
    await tokens.consume('rt-1');
    await tokens.consume('rt-1');
    assert.equal(typeof (await tokens.find('rt-1'))?.consumed, 'number');
  });
}

describe('SQLite', () => {
  let dir: string;
  let db: ReturnType<typeof openDatabase>;
  let store: OidcModelStore;
  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'gatehouse-consume-'));
    db = openDatabase(dir);
    store = sqliteOidcModelStore(db);
  });
  after(() => {
    closeDatabase(db);
    rmSync(dir, { recursive: true, force: true });
  });
  contract(() => [store, store]);
});

describe('PostgreSQL, two instances', { skip: skipPostgres }, () => {
  let database: TestDatabase;
  let pools: Postgres[] = [];
  let stores: [OidcModelStore, OidcModelStore];
  before(async () => {
    database = await createTestDatabase();
    pools = [connectPostgres(database.url, POOL), connectPostgres(database.url, POOL)];
    await migrate(pools[0]!, POSTGRES_MIGRATIONS);
    stores = [postgresOidcModelStore(pools[0]!), postgresOidcModelStore(pools[1]!)];
  });
  after(async () => {
    for (const pool of pools) await pool.close();
    await database?.drop();
  });
  contract(() => stores);
});
