/**
 * The key store's contract (key-store.ts), on keys.json and on PostgreSQL, and the key manager on a
 * shared store: instances starting together agree on one key set, a rotation at one is signed with
 * and published by the other once notified, and a write based on a stale set is retried on the
 * latest one rather than overwriting it.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  createTestDatabase,
  skipWithoutPostgres,
  type TestDatabase,
} from '../../../test/helpers/postgres.ts';
import { createLogger } from '../../shared/logging.ts';
import { connectPostgres, type Postgres } from '../store/postgres/connection.ts';
import { migrate } from '../store/postgres/migrations.ts';
import { POSTGRES_MIGRATIONS } from '../store/postgres/schema.ts';
import { SealedBoxError, sealedBox } from '../store/sealed-box.ts';
import { KeyFileError, type StoredKeys, writeKeyFile } from './key-file.ts';
import { createKeyManager, type KeyManager, type KeyManagerOptions } from './key-manager.ts';
import type { RingKey } from './key-ring.ts';
import { fileKeyStore, type KeyStore } from './key-store.ts';
import { postgresKeyStore } from './postgres-key-store.ts';
import { generateSigningKey } from './signing-key.ts';

// Before any test is declared: the runner starts the file's tests once its first ones are in.
const skipPostgres = await skipWithoutPostgres();
const POOL = { max: 4, acquireTimeoutMs: 2000, statementTimeoutMs: 5000 };
const READ = { now: 1000, retireAfterSeconds: 60 };

const root = mkdtempSync(path.join(tmpdir(), 'gatehouse-key-store-'));
after(() => rmSync(root, { recursive: true, force: true }));
let dirs = 0;
const freshDir = () => path.join(root, `d${++dirs}`);

async function keySet(cookie = 'cookie-key'): Promise<StoredKeys> {
  const jwk = async (alg: 'ES256' | 'RS256') => (await generateSigningKey(alg)) as RingKey['jwk'];
  return {
    accessTokenRing: [{ jwk: await jwk('ES256'), state: 'current', createdAt: 1, activatedAt: 1 }],
    idTokenRing: [{ jwk: await jwk('RS256'), state: 'current', createdAt: 1, activatedAt: 1 }],
    cookieKeys: [cookie],
  };
}

/** Each call opens the same store again (another instance, on a pool of its own). */
type StoreFactory = () => Promise<KeyStore>;

function contract(
  name: string,
  setup: () => Promise<{ open: StoreFactory; close: () => Promise<void> }>,
  skip: false | string,
) {
  describe(`key store: ${name}`, { skip }, () => {
    let open: StoreFactory;
    let close: () => Promise<void>;
    before(async () => {
      ({ open, close } = await setup());
    });
    after(() => close?.());

    test('empty at first; a write at version 0 creates it; a stale version is a conflict', async () => {
      const store = await open();
      assert.equal(await store.read(READ), undefined);
      const keys = await keySet('first');
      const created = await store.write(keys, 0);
      assert.ok(created.ok);
      const read = await store.read(READ);
      assert.equal(read?.version, created.version);
      assert.deepEqual(read?.keys.cookieKeys, ['first']);
      assert.equal(read?.keys.accessTokenRing[0]?.jwk.kid, keys.accessTokenRing[0]?.jwk.kid);
      assert.deepEqual(await store.write(await keySet('again'), 0), { ok: false, conflict: true });
      const replaced = await store.write(await keySet('second'), read!.version);
      assert.ok(replaced.ok && replaced.version > read!.version);
      assert.deepEqual(await store.write(await keySet('stale'), read!.version), {
        ok: false,
        conflict: true,
      });
      assert.deepEqual((await store.read(READ))?.keys.cookieKeys, ['second']);
    });
  });
}

contract(
  'keys.json',
  async () => {
    const dir = freshDir();
    const store = fileKeyStore(dir);
    return { open: async () => store, close: async () => {} };
  },
  false,
);

let database: TestDatabase | undefined;
const pools: Postgres[] = [];
const box = sealedBox(randomBytes(32));
async function pool(): Promise<Postgres> {
  const next = connectPostgres(database!.url, POOL);
  pools.push(next);
  return next;
}
const closePools = async () => {
  for (const open of pools.splice(0)) await open.close();
  await database?.drop();
  database = undefined;
};

contract(
  'PostgreSQL',
  async () => {
    database = await createTestDatabase();
    await migrate(await pool(), POSTGRES_MIGRATIONS);
    return { open: async () => postgresKeyStore(await pool(), box), close: closePools };
  },
  skipPostgres,
);

describe('the key manager on PostgreSQL: several instances', { skip: skipPostgres }, () => {
  const clock = { seconds: 1_000_000 };
  const managers: KeyManager[] = [];
  const options = (dataDir: string, store: KeyStore): KeyManagerOptions => ({
    dataDir,
    store,
    retireAfterSeconds: 960,
    idTokenRetireAfterSeconds: 1200,
    publishBeforeUseSeconds: 599,
    rotateEverySeconds: undefined,
    logger: createLogger('test', { level: 'error', write: () => {} }),
    now: () => clock.seconds * 1000,
  });
  const start = async (store: KeyStore, dataDir = freshDir()) => {
    const manager = await createKeyManager(options(dataDir, store));
    managers.push(manager);
    return manager;
  };
  /** Waits (3 s at most) for the manager to sign with `kid`: a notification takes a moment. */
  const signsWith = async (manager: KeyManager, kid: string) => {
    const deadline = Date.now() + 3000;
    while (manager.signingKey().kid !== kid && Date.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(manager.signingKey().kid, kid);
  };
  const kids = (manager: KeyManager) =>
    manager
      .jwks()
      .keys.map((key) => key.kid)
      .sort();

  before(async () => {
    database = await createTestDatabase();
    await migrate(await pool(), POSTGRES_MIGRATIONS);
  });
  after(async () => {
    for (const manager of managers) await manager.close();
    await closePools();
  });

  test('instances starting together agree on one key set, sealed in the database', async () => {
    const started = await Promise.all(
      Array.from({ length: 3 }, async () => start(postgresKeyStore(await pool(), box))),
    );
    const [a, ...others] = started;
    for (const other of others) {
      assert.deepEqual(kids(other), kids(a!));
      assert.equal(other.signingKey().kid, a!.signingKey().kid);
      assert.deepEqual(other.cookieKeys, a!.cookieKeys);
    }
    const [row] = await (await pool()).query<{ sealed: Buffer }>('SELECT sealed FROM signing_keys');
    assert.ok(!row!.sealed.includes(Buffer.from(a!.signingKey().kid)), 'no kid in the clear');
    assert.ok(!row!.sealed.includes(Buffer.from(a!.cookieKeys[0]!)), 'no cookie key in the clear');
    // Another storage.encryptionKey cannot open it, and says so.
    await assert.rejects(
      postgresKeyStore(await pool(), sealedBox(randomBytes(32))).read(READ),
      SealedBoxError,
    );
  });

  test('a rotation at one instance is signed with and published by the other once notified', async () => {
    const [a, b] = [managers[0]!, managers[1]!];
    clock.seconds += 600;
    const rotated = await a.rotate('test');
    await signsWith(b, rotated.current);
    assert.deepEqual(kids(b), kids(a));
    assert.ok(kids(b).includes(rotated.next), 'the new next key is published everywhere');
  });

  test('a change based on a stale key set is retried on the latest, never overwriting it', async () => {
    const a = managers[0]!;
    // An instance that hears no notification (its listener is down): its set is stale.
    const deaf: KeyStore = { ...postgresKeyStore(await pool(), box), watch: async () => async () => {} };
    const b = await start(deaf);
    clock.seconds += 600;
    const atA = await a.rotate('test');
    clock.seconds += 600;
    const atB = await b.rotate('test');
    // B rotated from A's rotation: A's new key is the one B retired, not lost.
    assert.equal(atB.retired, atA.current);
    assert.equal(atB.current, atA.next);
    await signsWith(a, atB.current);
  });

  test('the maintenance tick heals a missed notification', async () => {
    const a = managers[0]!;
    const deaf: KeyStore = { ...postgresKeyStore(await pool(), box), watch: async () => async () => {} };
    const b = await start(deaf);
    clock.seconds += 600;
    const rotated = await a.rotate('test');
    assert.notEqual(b.signingKey().kid, rotated.current);
    await b.maintain();
    assert.equal(b.signingKey().kid, rotated.current);
  });

  test('a listener that lost its connection reads the keys again when it is back', async () => {
    const [a, b] = [managers[0]!, managers[1]!];
    // Every listening connection cut: a notification sent now reaches nobody.
    await (await pool()).query(
      "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = 'LISTEN gatehouse_keys' AND datname = current_database()",
    );
    clock.seconds += 600;
    const rotated = await a.rotate('test');
    // No maintenance tick here: only the reconnect can bring it.
    await signsWith(b, rotated.current);
  });

  test('a key set deleted and made anew under a running instance: it signs with the new keys and reports not ready', async () => {
    const deaf: KeyStore = { ...postgresKeyStore(await pool(), box), watch: async () => async () => {} };
    const running = await start(deaf);
    assert.deepEqual(running.check(), { ok: true });
    await (await pool()).query('DELETE FROM signing_keys');
    const fresh = await start(postgresKeyStore(await pool(), box));
    assert.notDeepEqual(fresh.cookieKeys, running.cookieKeys, 'a new set, new cookie keys');
    await running.maintain();
    // Signing and publishing follow the set every other instance uses...
    assert.equal(running.signingKey().kid, fresh.signingKey().kid);
    assert.deepEqual(kids(running), kids(fresh));
    // ...but its cookie keys (and what derives from them) were taken at start: not ready until restarted.
    assert.equal(running.check().ok, false);
    assert.match(String(running.check().error), /replaced since this instance started: restart it/);
    assert.deepEqual(fresh.check(), { ok: true });
  });

  test('the first instance imports the data directory keys.json; the others ignore theirs', async () => {
    await closePools();
    database = await createTestDatabase();
    await migrate(await pool(), POSTGRES_MIGRATIONS);
    const dataDir = freshDir();
    const local = await keySet('local');
    writeKeyFile(path.join(dataDir, 'keys.json'), local);
    const first = await start(postgresKeyStore(await pool(), box), dataDir);
    assert.deepEqual(first.cookieKeys, ['local']);
    assert.equal(first.signingKey().kid, local.accessTokenRing[0]!.jwk.kid);
    const otherDir = freshDir();
    writeKeyFile(path.join(otherDir, 'keys.json'), await keySet('other'));
    const second = await start(postgresKeyStore(await pool(), box), otherDir);
    assert.deepEqual(second.cookieKeys, ['local']);
    assert.deepEqual(kids(second), kids(first));
    // Damage in the database stops the start (fail closed), like a damaged keys.json.
    await (await pool()).query('UPDATE signing_keys SET sealed = $1', [
      box.seal('signing_keys:authorization-server', '{}'),
    ]);
    await assert.rejects(start(postgresKeyStore(await pool(), box)), KeyFileError);
  });
});
