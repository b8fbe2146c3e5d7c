/**
 * A grant source (an authorization code) is consumed once, even when two redemptions race: in one
 * process on SQLite, and at two instances (two pools) on one PostgreSQL database. The loser gets
 * oidc-provider's InvalidGrant (RFC 6749 §5.2 invalid_grant). Refresh tokens keep their grace use.
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
