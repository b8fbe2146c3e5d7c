import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { DatabaseSync } from 'node:sqlite';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import Provider from 'oidc-provider';
import { startHousekeeping } from './housekeeping.ts';
import {
  createSqliteAdapterFactory,
  DATABASE_FILE,
  openDatabase,
  purgeExpired,
  recordClientUse,
  removeClientRows,
  removeUnusedClients,
  SCHEMA_VERSION,
  sqliteOidcModelStore,
} from './sqlite-store.ts';

let dir: string;
let dataDir: string;
let db: DatabaseSync;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-store-'));
  dataDir = path.join(dir, 'data');
  db = openDatabase(dataDir);
});

afterEach(() => {
  if (db.isOpen) db.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** Reads one bookkeeping column straight from the table, to check what the adapter wrote. */
function column(model: string, id: string, name: string): unknown {
  return db.prepare(`SELECT ${name} AS v FROM oidc_models WHERE model = ? AND id = ?`).get(model, id)?.v;
}

function rowCount(): number {
  return Number(db.prepare('SELECT count(*) AS n FROM oidc_models').get()?.n);
}

describe('openDatabase', () => {
  test('creates an owner-only directory and database, in WAL mode, at the current schema version', async () => {
    // Write something so the -wal file exists too.
    await createSqliteAdapterFactory(db)('Client').upsert('c1', { client_id: 'c1' });
    if (process.platform !== 'win32') {
      assert.equal(fs.statSync(dataDir).mode & 0o777, 0o700);
      assert.equal(fs.statSync(path.join(dataDir, DATABASE_FILE)).mode & 0o777, 0o600);
      assert.equal(fs.statSync(path.join(dataDir, `${DATABASE_FILE}-wal`)).mode & 0o777, 0o600);
    }
    assert.equal(db.prepare('PRAGMA journal_mode').get()?.journal_mode, 'wal');
    assert.equal(db.prepare('PRAGMA foreign_keys').get()?.foreign_keys, 1);
    assert.equal(db.prepare('PRAGMA busy_timeout').get()?.timeout, 5000);
    assert.equal(db.prepare('PRAGMA user_version').get()?.user_version, SCHEMA_VERSION);
    assert.ok(SCHEMA_VERSION >= 1);
  });

  test('tightens a pre-existing database file to 0600', { skip: process.platform === 'win32' }, () => {
    db.close();
    const file = path.join(dataDir, DATABASE_FILE);
    fs.chmodSync(file, 0o644);
    db = openDatabase(dataDir);
    assert.equal(fs.statSync(file).mode & 0o777, 0o600);
  });

  test('refuses a database from a newer schema version', () => {
    db.exec(`PRAGMA user_version = ${SCHEMA_VERSION + 1}`);
    db.close();
    assert.throws(() => openDatabase(dataDir), /newer than this Gatehouse supports/);
  });
});

describe('adapter', () => {
  test('upsert then find returns the payload; models are separate keyspaces; unknown ids are undefined', async () => {
    const factory = createSqliteAdapterFactory(db);
    const grants = factory('Grant');
    const payload = { accountId: 'alice', clientId: 'c1', exp: 2_000_000_000, openid: { scope: 'openid' } };
    await grants.upsert('g1', payload, 3600);
    assert.deepEqual(await grants.find('g1'), payload);
    assert.equal(await grants.find('g2'), undefined);
    assert.equal(await factory('Session').find('g1'), undefined);

    // A second upsert replaces the payload and keeps created_at.
    const created = column('Grant', 'g1', 'created_at');
    await grants.upsert('g1', { ...payload, accountId: 'bob' }, 3600);
    assert.equal((await grants.find('g1'))?.accountId, 'bob');
    assert.equal(column('Grant', 'g1', 'created_at'), created);
    assert.equal(column('Grant', 'g1', 'client_id'), 'c1');
    assert.equal(rowCount(), 1);

    await grants.destroy('g1');
    assert.equal(await grants.find('g1'), undefined);
    assert.equal(rowCount(), 0);
  });

  test('expiresIn sets expires_at; without it the row never expires', async () => {
    const adapter = createSqliteAdapterFactory(db, { clockTolerance: 0 })('AccessToken');
    const before = Date.now();
    await adapter.upsert('t1', { jti: 't1' }, 60);
    const expiresAt = Number(column('AccessToken', 't1', 'expires_at'));
    assert.ok(expiresAt >= before + 60_000 && expiresAt <= Date.now() + 60_000, String(expiresAt));
    await adapter.upsert('t2', { jti: 't2' });
    assert.equal(column('AccessToken', 't2', 'expires_at'), null);
  });

  test('find ignores expired rows before the purge, and purgeExpired removes only them', async () => {
    const adapter = createSqliteAdapterFactory(db, { clockTolerance: 0 })('AccessToken');
    await adapter.upsert('short', { jti: 'short' }, 0.05);
    await adapter.upsert('long', { jti: 'long' }, 3600);
    await adapter.upsert('forever', { jti: 'forever' });
    assert.deepEqual(await adapter.find('short'), { jti: 'short' });
    await sleep(80);
    assert.equal(await adapter.find('short'), undefined);
    assert.equal(rowCount(), 3, 'expired row is still stored until purged');
    assert.equal(purgeExpired(db), 1);
    assert.equal(rowCount(), 2);
    assert.deepEqual(await adapter.find('long'), { jti: 'long' });
    assert.deepEqual(await adapter.find('forever'), { jti: 'forever' });
    assert.equal(purgeExpired(db), 0);
  });

  test('rows outlive their TTL by the clock tolerance (15 s by default), as in the memory adapter', async () => {
    const adapter = createSqliteAdapterFactory(db)('ReplayDetection');
    await adapter.upsert('r1', { iss: 'c1' }, 0.01);
    await sleep(30);
    assert.deepEqual(await adapter.find('r1'), { iss: 'c1' });
    assert.equal(purgeExpired(db), 0);
  });

  test('consume stamps payload.consumed with epoch seconds and keeps the rest', async () => {
    const adapter = createSqliteAdapterFactory(db)('AuthorizationCode');
    await adapter.upsert('code1', { jti: 'code1', grantId: 'g1', scope: 'openid' }, 60);
    assert.equal((await adapter.find('code1'))?.consumed, undefined);
    const before = Math.floor(Date.now() / 1000);
    await adapter.consume('code1');
    const after = Math.floor(Date.now() / 1000);
    const found = await adapter.find('code1');
    assert.ok(Number.isInteger(found?.consumed), `consumed ${found?.consumed} is an integer`);
    assert.ok(found?.consumed >= before && found?.consumed <= after);
    assert.equal(found?.scope, 'openid');
    assert.equal(found?.grantId, 'g1');
    assert.equal(typeof column('AuthorizationCode', 'code1', 'consumed_at'), 'number');
    // Stored as a JSON integer (not 1.7e9 as a REAL), so other readers of the raw payload see what oidc-provider writes.
    assert.match(String(column('AuthorizationCode', 'code1', 'payload')), /"consumed":\d+[,}]/);
    // Consuming an unknown refresh token is a no-op; an unknown code is refused (consume-once.test.ts).
    await createSqliteAdapterFactory(db)('RefreshToken').consume('nope');
    await assert.rejects(adapter.consume('nope'), { error: 'invalid_grant' });
  });

  test('findByUid finds the Session by uid', async () => {
    const sessions = createSqliteAdapterFactory(db)('Session');
    await sessions.upsert('s1', { uid: 'u1', accountId: 'alice' }, 3600);
    await sessions.upsert('s2', { uid: 'u2', accountId: 'bob' }, 3600);
    assert.equal((await sessions.findByUid('u1'))?.accountId, 'alice');
    assert.equal((await sessions.findByUid('u2'))?.accountId, 'bob');
    assert.equal(await sessions.findByUid('u3'), undefined);
    // The index follows the payload: a new uid replaces the old one.
    await sessions.upsert('s1', { uid: 'u1b', accountId: 'alice' }, 3600);
    assert.equal(await sessions.findByUid('u1'), undefined);
    assert.equal((await sessions.findByUid('u1b'))?.accountId, 'alice');
    await sessions.destroy('s1');
    assert.equal(await sessions.findByUid('u1b'), undefined);
  });

  test('findByUid ignores an expired Session', async () => {
    const sessions = createSqliteAdapterFactory(db, { clockTolerance: 0 })('Session');
    await sessions.upsert('s1', { uid: 'u1' }, 0.02);
    await sleep(40);
    assert.equal(await sessions.findByUid('u1'), undefined);
  });

  test('findByUserCode finds the DeviceCode by userCode', async () => {
    const deviceCodes = createSqliteAdapterFactory(db)('DeviceCode');
    await deviceCodes.upsert('d1', { jti: 'd1', userCode: 'ABCD-EFGH', clientId: 'c1' }, 600);
    assert.equal((await deviceCodes.findByUserCode('ABCD-EFGH'))?.jti, 'd1');
    assert.equal(await deviceCodes.findByUserCode('ZZZZ-ZZZZ'), undefined);
    assert.equal(await createSqliteAdapterFactory(db)('AccessToken').findByUserCode('ABCD-EFGH'), undefined);
  });

  test("revokeByGrantId removes all of the grant's tokens in every grantable model, not another grant's", async () => {
    const factory = createSqliteAdapterFactory(db);
    const models = [
      'AccessToken',
      'RefreshToken',
      'AuthorizationCode',
      'DeviceCode',
      'BackchannelAuthenticationRequest',
    ];
    for (const model of models) {
      await factory(model).upsert(`${model}-g1`, { grantId: 'g1' }, 600);
      await factory(model).upsert(`${model}-g2`, { grantId: 'g2' }, 600);
    }
    await factory('Grant').upsert('g1', { accountId: 'alice' }, 600);

    // oidc-provider may skip models whose grant type the client lacks; one call must be enough.
    await factory('AccessToken').revokeByGrantId('g1');

    for (const model of models) {
      assert.equal(await factory(model).find(`${model}-g1`), undefined, `${model} of g1 removed`);
      assert.deepEqual(await factory(model).find(`${model}-g2`), { grantId: 'g2' }, `${model} of g2 kept`);
    }
    // The Grant row is oidc-provider's to destroy (revokeGrantPolicy).
    assert.deepEqual(await factory('Grant').find('g1'), { accountId: 'alice' });
    assert.equal(rowCount(), models.length + 1);
  });

  test('data survives closing and reopening the database', async () => {
    await createSqliteAdapterFactory(db)('RefreshToken').upsert(
      'rt1',
      { grantId: 'g1', accountId: 'alice' },
      3600,
    );
    await createSqliteAdapterFactory(db)('Session').upsert('s1', { uid: 'u1' }, 3600);
    db.close();

    db = openDatabase(dataDir);
    const factory = createSqliteAdapterFactory(db);
    assert.deepEqual(await factory('RefreshToken').find('rt1'), { grantId: 'g1', accountId: 'alice' });
    assert.deepEqual(await factory('Session').findByUid('u1'), { uid: 'u1' });
    assert.equal(db.prepare('PRAGMA user_version').get()?.user_version, SCHEMA_VERSION);
  });
});

describe('unused clients', () => {
  const DAY = 86_400;

  test('removeUnusedClients removes old unused clients with their grants and tokens, keeps used ones', async () => {
    const factory = createSqliteAdapterFactory(db);
    for (const id of ['old', 'recent', 'new']) {
      await factory('Client').upsert(id, { client_id: id, redirect_uris: ['https://app.example/cb'] });
      await factory('Grant').upsert(`grant-${id}`, { clientId: id, accountId: 'alice' }, 3600);
      await factory('AccessToken').upsert(`at-${id}`, { clientId: id, grantId: `grant-${id}` }, 3600);
      await factory('RegistrationAccessToken').upsert(`rat-${id}`, { clientId: id });
    }
    await factory('Session').upsert('s1', { uid: 'u1', accountId: 'alice' }, 3600);
    // Pretend "old" and "recent" were registered 40 days ago; "recent" was used just now.
    db.prepare(
      "UPDATE oidc_models SET created_at = ? WHERE model = 'Client' AND id IN ('old', 'recent')",
    ).run(Date.now() - 40 * DAY * 1000);
    recordClientUse(db, 'recent');

    assert.deepEqual(removeUnusedClients(db, 30 * DAY), ['old']);

    assert.equal(await factory('Client').find('old'), undefined);
    assert.equal(await factory('Grant').find('grant-old'), undefined);
    assert.equal(await factory('AccessToken').find('at-old'), undefined);
    assert.equal(await factory('RegistrationAccessToken').find('rat-old'), undefined);
    for (const id of ['recent', 'new']) {
      assert.equal((await factory('Client').find(id))?.client_id, id);
      assert.equal((await factory('Grant').find(`grant-${id}`))?.clientId, id);
      assert.equal((await factory('AccessToken').find(`at-${id}`))?.clientId, id);
      assert.equal((await factory('RegistrationAccessToken').find(`rat-${id}`))?.clientId, id);
    }
    assert.deepEqual(await factory('Session').findByUid('u1'), { uid: 'u1', accountId: 'alice' });
    assert.deepEqual(removeUnusedClients(db, 30 * DAY), []);
  });

  test("removeClientRows removes a deleted client's grants, tokens and codes, and nobody else's", async () => {
    const factory = createSqliteAdapterFactory(db);
    for (const id of ['gone', 'kept']) {
      await factory('Grant').upsert(`g-${id}`, { clientId: id, accountId: 'alice' }, 3600);
      await factory('AccessToken').upsert(`t-${id}`, { clientId: id, grantId: `g-${id}` }, 3600);
      await factory('AuthorizationCode').upsert(`c-${id}`, { clientId: id, grantId: `g-${id}` }, 60);
    }
    assert.equal(removeClientRows(db, 'gone'), 3);
    for (const [model, id] of [
      ['Grant', 'g-gone'],
      ['AccessToken', 't-gone'],
      ['AuthorizationCode', 'c-gone'],
    ] as const) {
      assert.equal(await factory(model).find(id), undefined, model);
    }
    assert.equal((await factory('AccessToken').find('t-kept'))?.clientId, 'kept');
  });

  test('recordClientUse writes last_used_at at most once a minute per client, and survives re-registration', async () => {
    const clients = createSqliteAdapterFactory(db)('Client');
    await clients.upsert('a', { client_id: 'a' });
    await clients.upsert('b', { client_id: 'b' });
    assert.equal(column('Client', 'a', 'last_used_at'), null);

    recordClientUse(db, 'a');
    const first = Number(column('Client', 'a', 'last_used_at'));
    assert.ok(Math.abs(first - Date.now()) < 5_000);

    db.prepare("UPDATE oidc_models SET last_used_at = 1 WHERE model = 'Client' AND id = 'a'").run();
    recordClientUse(db, 'a');
    assert.equal(column('Client', 'a', 'last_used_at'), 1, 'second use within a minute is not written');
    recordClientUse(db, 'b');
    assert.equal(typeof column('Client', 'b', 'last_used_at'), 'number', 'throttle is per client');

    await clients.upsert('a', { client_id: 'a', client_name: 'renamed' });
    assert.equal(column('Client', 'a', 'last_used_at'), 1, 'upsert keeps last_used_at');

    recordClientUse(db, 'static-client-without-row');
    assert.equal(rowCount(), 2);
  });
});

describe('startHousekeeping', () => {
  test('purges expired rows and unused clients on its interval until stopped', async () => {
    const factory = createSqliteAdapterFactory(db, { clockTolerance: 0 });
    await factory('AccessToken').upsert('t1', { jti: 't1' }, 0.01);
    await factory('Client').upsert('old', { client_id: 'old' });
    db.prepare("UPDATE oidc_models SET created_at = 0 WHERE model = 'Client'").run();

    const reports: { expired: number; clientIds: string[] }[] = [];
    const stop = startHousekeeping(sqliteOidcModelStore(db), {
      purgeIntervalMs: 20,
      unusedClientSeconds: 3600,
      onRemoved: (removed) => reports.push(removed),
    });
    await sleep(100);
    stop();
    assert.deepEqual(reports, [{ expired: 1, clientIds: ['old'] }]);
    assert.equal(rowCount(), 0);

    await factory('AccessToken').upsert('t2', { jti: 't2' }, 0.01);
    await sleep(60);
    assert.equal(rowCount(), 1, 'stopped: nothing purged any more');
  });

  test('reports a failing run through onError and keeps the process alive', async () => {
    const errors: unknown[] = [];
    const stop = startHousekeeping(sqliteOidcModelStore(db), {
      purgeIntervalMs: 10,
      onError: (error) => errors.push(error),
    });
    db.close();
    await sleep(50);
    stop();
    assert.ok(errors.length >= 1);
  });
});

describe('with oidc-provider', () => {
  test('the provider stores, finds and revokes tokens through the adapter', async () => {
    const signingKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({
      format: 'jwk',
    });
    const provider = new Provider('https://as.example', {
      adapter: createSqliteAdapterFactory(db),
      // Own keys, no dev interactions and explicit TTLs keep oidc-provider's quick-start warnings out of the output.
      jwks: { keys: [{ ...signingKey, kid: 'test', alg: 'RS256', use: 'sig' }] },
      features: { devInteractions: { enabled: false } },
      ttl: { Grant: 3600, AccessToken: 600, RefreshToken: 3600 },
      clients: [
        {
          client_id: 'c1',
          client_secret: 'a-secret-long-enough-for-tests',
          redirect_uris: ['https://app.example/cb'],
          grant_types: ['authorization_code', 'refresh_token'],
          response_types: ['code'],
        },
      ],
    });
    const client = await provider.Client.find('c1');
    assert.ok(client);

    const grant = new provider.Grant({ clientId: 'c1', accountId: 'alice' });
    grant.addOIDCScope('openid');
    const grantId = await grant.save();

    const accessToken = new provider.AccessToken({
      client,
      accountId: 'alice',
      grantId,
      gty: 'authorization_code',
      scope: 'openid',
    });
    const value = await accessToken.save();
    const refreshToken = new provider.RefreshToken({
      client,
      accountId: 'alice',
      grantId,
      gty: 'authorization_code',
      scope: 'openid',
    });
    const refreshValue = await refreshToken.save();

    assert.equal((await provider.AccessToken.find(value))?.accountId, 'alice');
    assert.equal((await provider.Grant.find(grantId))?.accountId, 'alice');
    assert.equal(column('AccessToken', value, 'grant_id'), grantId);

    await provider.AccessToken.revokeByGrantId(grantId);
    assert.equal(await provider.AccessToken.find(value), undefined);
    assert.equal(await provider.RefreshToken.find(refreshValue), undefined);
  });
});
