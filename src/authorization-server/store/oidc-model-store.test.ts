/**
 * One contract suite for oidc-model-store.ts, run against both implementations: SQLite (one machine)
 * and PostgreSQL (shared by every instance). Semantics must be identical, so every assertion runs on both.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, afterEach, beforeEach, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
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

// Awaited before any describe: a top-level await between suites would let the runner finish first.
const skip = await skipWithoutPostgres();

/** Opens a fresh, empty store (clockTolerance 0, so that a tiny expiresIn expires at once); close releases it. */
type OpenStore = () => Promise<{ store: OidcModelStore; close: () => Promise<void> }>;

function contract(open: OpenStore): void {
  let store: OidcModelStore;
  let close: () => Promise<void>;

  beforeEach(async () => {
    ({ store, close } = await open());
  });
  afterEach(async () => {
    await close();
  });

  test('upsert then find returns the payload', async () => {
    const tokens = store.adapter('AccessToken');
    await tokens.upsert('at1', { jti: 'at1', clientId: 'c1', scope: 'openid' }, 60);
    assert.deepEqual(await tokens.find('at1'), { jti: 'at1', clientId: 'c1', scope: 'openid' });
    assert.equal(await tokens.find('missing'), undefined);
    // One keyspace per model.
    assert.equal(await store.adapter('RefreshToken').find('at1'), undefined);
  });

  test('re-upsert replaces the payload and keeps created_at', async () => {
    const clients = store.adapter('Client');
    await clients.upsert('c1', { client_id: 'c1', client_name: 'one' }, undefined);
    const [first] = await store.listStoredClients();
    assert.ok(first);
    await sleep(10);
    await clients.upsert('c1', { client_id: 'c1', client_name: 'two' }, undefined);
    const listed = await store.listStoredClients();
    assert.equal(listed.length, 1);
    assert.equal(listed[0]?.createdAt, first.createdAt);
    assert.deepEqual(listed[0]?.metadata, { client_id: 'c1', client_name: 'two' });
    assert.deepEqual(await clients.find('c1'), { client_id: 'c1', client_name: 'two' });
  });

  test('expired rows are invisible to find, findByUid and findByUserCode', async () => {
    await store.adapter('Session').upsert('s1', { uid: 'u1', accountId: 'alice' }, 0.001);
    await store.adapter('DeviceCode').upsert('d1', { userCode: 'ABCD-EFGH' }, 0.001);
    await sleep(20);
    assert.equal(await store.adapter('Session').find('s1'), undefined);
    assert.equal(await store.adapter('Session').findByUid('u1'), undefined);
    assert.equal(await store.adapter('DeviceCode').findByUserCode('ABCD-EFGH'), undefined);
  });

  test('findByUid finds Session rows only', async () => {
    await store.adapter('Session').upsert('s1', { uid: 'u1', accountId: 'alice' }, 60);
    await store.adapter('Interaction').upsert('i1', { uid: 'u2' }, 60);
    assert.deepEqual(await store.adapter('Session').findByUid('u1'), { uid: 'u1', accountId: 'alice' });
    assert.equal(await store.adapter('Interaction').findByUid('u2'), undefined);
    assert.equal(await store.adapter('Session').findByUid('nope'), undefined);
  });

  test('findByUserCode finds the model’s row by its user code', async () => {
    await store.adapter('DeviceCode').upsert('d1', { userCode: 'ABCD-EFGH', clientId: 'c1' }, 60);
    assert.deepEqual(await store.adapter('DeviceCode').findByUserCode('ABCD-EFGH'), {
      userCode: 'ABCD-EFGH',
      clientId: 'c1',
    });
    assert.equal(await store.adapter('DeviceCode').findByUserCode('WXYZ-WXYZ'), undefined);
  });

  test('consume stamps consumed in integer epoch seconds', async () => {
    const codes = store.adapter('AuthorizationCode');
    await codes.upsert('code1', { grantId: 'g1', clientId: 'c1' }, 60);
    const before = Math.floor(Date.now() / 1000);
    await codes.consume('code1');
    const after = Math.floor(Date.now() / 1000);
    const found = await codes.find('code1');
    assert.ok(found);
    assert.equal(typeof found.consumed, 'number');
    assert.ok(Number.isInteger(found.consumed));
    assert.ok((found.consumed as number) >= before && (found.consumed as number) <= after);
    assert.equal(found.grantId, 'g1');
  });

  test('destroy removes the row', async () => {
    const tokens = store.adapter('AccessToken');
    await tokens.upsert('at1', { clientId: 'c1' }, 60);
    await tokens.upsert('at2', { clientId: 'c1' }, 60);
    await tokens.destroy('at1');
    assert.equal(await tokens.find('at1'), undefined);
    assert.deepEqual(await tokens.find('at2'), { clientId: 'c1' });
  });

  test('revokeByGrantId removes the grant’s rows in every grantable model, nothing else', async () => {
    const grantable = [
      'AccessToken',
      'AuthorizationCode',
      'RefreshToken',
      'DeviceCode',
      'BackchannelAuthenticationRequest',
    ];
    for (const model of grantable) {
      await store.adapter(model).upsert(`${model}-g1`, { grantId: 'g1' }, 60);
      await store.adapter(model).upsert(`${model}-g2`, { grantId: 'g2' }, 60);
    }
    await store.adapter('Grant').upsert('g1', { jti: 'g1', accountId: 'alice' }, 60);
    await store.adapter('AccessToken').revokeByGrantId('g1');
    for (const model of grantable) {
      assert.equal(await store.adapter(model).find(`${model}-g1`), undefined, model);
      assert.deepEqual(await store.adapter(model).find(`${model}-g2`), { grantId: 'g2' }, model);
    }
    assert.deepEqual(await store.adapter('Grant').find('g1'), { jti: 'g1', accountId: 'alice' });
  });

  test('removeClientRows removes the client row and every row of its', async () => {
    await store.adapter('Client').upsert('c1', { client_id: 'c1' }, undefined);
    await store.adapter('Client').upsert('c2', { client_id: 'c2' }, undefined);
    await store.adapter('AccessToken').upsert('at1', { clientId: 'c1' }, 60);
    await store.adapter('Grant').upsert('g1', { clientId: 'c1' }, 60);
    await store.adapter('RegistrationAccessToken').upsert('rat1', { clientId: 'c1' }, undefined);
    await store.adapter('AccessToken').upsert('at2', { clientId: 'c2' }, 60);
    assert.equal(await store.removeClientRows('c1'), 4);
    assert.equal(await store.adapter('Client').find('c1'), undefined);
    assert.equal(await store.adapter('AccessToken').find('at1'), undefined);
    assert.equal(await store.adapter('Grant').find('g1'), undefined);
    assert.equal(await store.adapter('RegistrationAccessToken').find('rat1'), undefined);
    assert.deepEqual(await store.adapter('Client').find('c2'), { client_id: 'c2' });
    assert.deepEqual(await store.adapter('AccessToken').find('at2'), { clientId: 'c2' });
  });

  test('removeClientTokens keeps the Client and Session rows', async () => {
    await store.adapter('Client').upsert('c1', { client_id: 'c1' }, undefined);
    await store.adapter('Session').upsert('s1', { uid: 'u1', clientId: 'c1' }, 60);
    await store.adapter('AccessToken').upsert('at1', { clientId: 'c1' }, 60);
    await store.adapter('RefreshToken').upsert('rt1', { clientId: 'c1' }, 60);
    await store.adapter('AccessToken').upsert('at2', { clientId: 'c2' }, 60);
    assert.equal(await store.removeClientTokens('c1'), 2);
    assert.deepEqual(await store.adapter('Client').find('c1'), { client_id: 'c1' });
    assert.deepEqual(await store.adapter('Session').find('s1'), { uid: 'u1', clientId: 'c1' });
    assert.equal(await store.adapter('AccessToken').find('at1'), undefined);
    assert.equal(await store.adapter('RefreshToken').find('rt1'), undefined);
    assert.deepEqual(await store.adapter('AccessToken').find('at2'), { clientId: 'c2' });
  });

  test('removeSessionsOf ends the sessions of that account only', async () => {
    const sessions = store.adapter('Session');
    await sessions.upsert('s1', { uid: 'u1', accountId: 'alice' }, 60);
    await sessions.upsert('s2', { uid: 'u2', accountId: 'alice' }, 60);
    await sessions.upsert('s3', { uid: 'u3', accountId: 'bob' }, 60);
    assert.equal(await store.removeSessionsOf('alice'), 2);
    assert.equal(await sessions.find('s1'), undefined);
    assert.equal(await sessions.find('s2'), undefined);
    assert.deepEqual(await sessions.find('s3'), { uid: 'u3', accountId: 'bob' });
    assert.equal(await store.removeSessionsOf('nobody'), 0);
  });

  test('listStoredClients lists Client rows newest first', async () => {
    await store.adapter('Client').upsert('old', { client_id: 'old' }, undefined);
    await sleep(5);
    await store.adapter('Client').upsert('mid', { client_id: 'mid' }, undefined);
    await sleep(5);
    await store.adapter('Client').upsert('new', { client_id: 'new' }, undefined);
    await store.adapter('AccessToken').upsert('at1', { clientId: 'new' }, 60);
    const listed = await store.listStoredClients();
    assert.deepEqual(
      listed.map((client) => client.metadata.client_id),
      ['new', 'mid', 'old'],
    );
    assert.ok(listed[0]!.createdAt > listed[2]!.createdAt);
    assert.equal(listed[0]?.lastUsedAt, undefined);
  });

  test('countLiveRows counts unexpired rows per model, 0 for none', async () => {
    await store.adapter('AccessToken').upsert('at1', {}, 60);
    await store.adapter('AccessToken').upsert('at2', {}, 60);
    await store.adapter('AccessToken').upsert('gone', {}, 0.001);
    await store.adapter('Client').upsert('c1', { client_id: 'c1' }, undefined);
    await sleep(20);
    assert.deepEqual(await store.countLiveRows(['AccessToken', 'Client', 'RefreshToken']), {
      AccessToken: 2,
      Client: 1,
      RefreshToken: 0,
    });
  });

  test('purgeExpired deletes expired rows and returns how many', async () => {
    await store.adapter('AccessToken').upsert('gone1', {}, 0.001);
    await store.adapter('Session').upsert('gone2', { uid: 'u' }, 0.001);
    await store.adapter('AccessToken').upsert('kept', {}, 60);
    await store.adapter('Client').upsert('c1', { client_id: 'c1' }, undefined);
    await sleep(20);
    assert.equal(await store.purgeExpired(), 2);
    assert.equal(await store.purgeExpired(), 0);
    assert.deepEqual(await store.adapter('AccessToken').find('kept'), {});
    assert.deepEqual(await store.countLiveRows(['AccessToken', 'Client']), { AccessToken: 1, Client: 1 });
  });

  test('removeUnusedClients removes clients unused for that long, with their rows', async () => {
    await store.adapter('Client').upsert('stale', { client_id: 'stale' }, undefined);
    await store.adapter('AccessToken').upsert('at1', { clientId: 'stale' }, 60);
    await sleep(1100);
    await store.adapter('Client').upsert('fresh', { client_id: 'fresh' }, undefined);
    assert.deepEqual(await store.removeUnusedClients(1), ['stale']);
    assert.equal(await store.adapter('Client').find('stale'), undefined);
    assert.equal(await store.adapter('AccessToken').find('at1'), undefined);
    assert.deepEqual(await store.adapter('Client').find('fresh'), { client_id: 'fresh' });
    assert.deepEqual(await store.removeUnusedClients(1), []);
  });

  test('recordClientUse stamps lastUsedAt, and a use keeps a client from removeUnusedClients', async () => {
    await store.adapter('Client').upsert('c1', { client_id: 'c1' }, undefined);
    await sleep(1100);
    const before = Date.now();
    await store.recordClientUse('c1');
    const [client] = await store.listStoredClients();
    assert.ok(client?.lastUsedAt !== undefined);
    assert.ok(client.lastUsedAt >= before && client.lastUsedAt <= Date.now());
    assert.ok(client.lastUsedAt > client.createdAt);
    assert.deepEqual(await store.removeUnusedClients(1), []);
  });

  test('the replay check: of concurrent checks of one jti exactly one passes; seen after; free again once expired', async () => {
    const replay = store.adapter('ReplayDetection');
    // oidc-provider's ReplayDetection.unique: find, then save when nothing was found.
    const unique = async (id: string, expiresIn = 60) => {
      if (await replay.find(id)) return false;
      await replay.upsert(id, { jti: id, iss: 'client-1' }, expiresIn);
      return true;
    };
    const results = await Promise.all(Array.from({ length: 6 }, () => unique('jti-1')));
    assert.equal(results.filter(Boolean).length, 1, 'one of the concurrent checks passes');
    assert.equal(await unique('jti-1'), false, 'a later check sees it');
    assert.equal(await unique('jti-2', 0.001), true);
    // PostgreSQL writes a save's shorter expiry within a second (postgres-oidc-store.ts); until
    // then the claim keeps the jti, which is only stricter.
    await sleep(1200);
    assert.equal(await unique('jti-2'), true, 'an expired jti may be used again');
  });

  test('recordClientUse is a no-op for a client with no row', async () => {
    await store.recordClientUse('static-client');
    assert.deepEqual(await store.listStoredClients(), []);
    assert.equal(await store.adapter('Client').find('static-client'), undefined);
  });
}

describe('sqlite', () => {
  const dirs: string[] = [];
  after(() => {
    for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
  });
  contract(async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-oidc-contract-'));
    dirs.push(dir);
    const db = openDatabase(dir);
    return {
      store: sqliteOidcModelStore(db, { clockTolerance: 0 }),
      close: async () => closeDatabase(db),
    };
  });
});

describe('postgres', { skip }, () => {
  const databases: TestDatabase[] = [];
  after(async () => {
    for (const database of databases) await database.drop();
  });
  contract(async () => {
    // A fresh database per test: the contract's counts assume an empty store.
    const database = await createTestDatabase();
    databases.push(database);
    const db: Postgres = connectPostgres(database.url, {
      max: 4,
      acquireTimeoutMs: 2000,
      statementTimeoutMs: 5000,
    });
    await migrate(db, POSTGRES_MIGRATIONS);
    return { store: postgresOidcModelStore(db, { clockTolerance: 0 }), close: () => db.close() };
  });

  test("a replay check's save is written later when it shortens the claim, at once when it lengthens it", async () => {
    const database = await createTestDatabase();
    databases.push(database);
    const db = connectPostgres(database.url, { max: 2, acquireTimeoutMs: 2000, statementTimeoutMs: 5000 });
    try {
      await migrate(db, POSTGRES_MIGRATIONS);
      const replay = postgresOidcModelStore(db, { clockTolerance: 0 }).adapter('ReplayDetection');
      const expiryOf = async (id: string) =>
        (
          await db.query<{ expires_at: number }>(
            "SELECT expires_at FROM oidc_models WHERE model = 'ReplayDetection' AND id = $1",
            [id],
          )
        )[0]?.expires_at;
      const start = Date.now();
      assert.equal(await replay.find('short'), undefined);
      await replay.upsert('short', { jti: 'short' }, 60);
      const claimed = await expiryOf('short');
      assert.ok(
        claimed !== undefined && claimed >= start + 3_599_000,
        'the claim holds it for an hour at first',
      );
      await sleep(1300);
      const saved = await expiryOf('short');
      assert.ok(
        saved !== undefined && saved >= start + 60_000 && saved <= Date.now() + 60_000,
        `then ${saved}`,
      );
      assert.ok(await replay.find('short'), 'still seen');

      assert.equal(await replay.find('long'), undefined);
      await replay.upsert('long', { jti: 'long' }, 7200);
      const long = await expiryOf('long');
      assert.ok(
        long !== undefined && long >= start + 7_200_000,
        'a save past the claim is written before it returns',
      );
    } finally {
      await db.close();
    }
  });
});
