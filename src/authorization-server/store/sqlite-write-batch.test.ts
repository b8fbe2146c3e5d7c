import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { afterEach, beforeEach, describe, test } from 'node:test';
import {
  closeDatabase,
  createSqliteAdapterFactory,
  DATABASE_FILE,
  openDatabase,
  purgeExpired,
  removeClientRows,
} from './sqlite-store.ts';
import {
  flushPendingWrites,
  MAX_BATCH_ROWS,
  requestWritesDurable,
  withRequestWrites,
  writeBatch,
} from './sqlite-write-batch.ts';

let dir: string;
let db: DatabaseSync;
/** A second connection to the same file: what another process, or a restart, would see. */
let other: DatabaseSync;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-batch-'));
  db = openDatabase(dir);
  other = new DatabaseSync(path.join(dir, DATABASE_FILE));
});

afterEach(() => {
  if (db.isOpen) db.close();
  other.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

function committed(model: string, id: string): boolean {
  return (
    other.prepare('SELECT 1 AS one FROM oidc_models WHERE model = ? AND id = ?').get(model, id) !== undefined
  );
}

/** Counts the COMMITs db runs from now on. */
function countCommits(): { readonly count: number } {
  const exec = db.exec.bind(db);
  const counter = { count: 0 };
  db.exec = (sql: string) => {
    if (sql === 'COMMIT') counter.count++;
    return exec(sql);
  };
  return counter;
}

describe('group commit of upserts', () => {
  test('the upserts of one turn are one transaction, and each promise settles only once its row is committed', async () => {
    const adapter = createSqliteAdapterFactory(db)('ClientCredentials');
    const commits = countCommits();
    const settled: string[] = [];
    const writes = ['t1', 't2', 't3'].map((id) =>
      adapter.upsert(id, { jti: id, clientId: 'w', kind: 'ClientCredentials' }, 60).then(() => {
        // Durable before oidc-provider may answer with it: another connection already sees it.
        assert.ok(committed('ClientCredentials', id), `${id} is committed when its upsert resolves`);
        settled.push(id);
      }),
    );
    // Nothing is written while the turn that asked for it is still running.
    assert.equal(committed('ClientCredentials', 't1'), false);
    await Promise.all(writes);
    assert.deepEqual(settled, ['t1', 't2', 't3']);
    assert.equal(commits.count, 1);
  });

  test("this process reads its own pending writes (a replayed jti is refused before the first one's row is written)", async () => {
    const adapter = createSqliteAdapterFactory(db)('ReplayDetection');
    const write = adapter.upsert('jti-1', { jti: 'jti-1', kind: 'ReplayDetection' }, 60);
    assert.equal(committed('ReplayDetection', 'jti-1'), false);
    assert.deepEqual(await adapter.find('jti-1'), { jti: 'jti-1', kind: 'ReplayDetection' });
    // Another model with the same id is another row.
    assert.equal(await createSqliteAdapterFactory(db)('AccessToken').find('jti-1'), undefined);
    await write;
  });

  test("a replay-detection jti does not wait for its commit: it joins the token's, and the request's answer waits for both", async () => {
    const factory = createSqliteAdapterFactory(db);
    const commits = countCommits();
    await withRequestWrites(async () => {
      // Resolves at once, like a write nobody waits for, so the request goes on to its token.
      await factory('ReplayDetection').upsert('jti-2', { jti: 'jti-2' }, 60);
      assert.equal(committed('ReplayDetection', 'jti-2'), false);
      const token = factory('ClientCredentials').upsert('tok', { jti: 'tok' }, 60);
      let durable = false;
      const answer = requestWritesDurable().then(() => {
        durable = true;
      });
      assert.equal(durable, false);
      await token;
      await answer;
    });
    assert.ok(committed('ReplayDetection', 'jti-2'));
    assert.ok(committed('ClientCredentials', 'tok'));
    assert.equal(commits.count, 1);
    // A request that wrote nothing: resolves at once.
    await withRequestWrites(() => requestWritesDurable());
  });

  test('a request fails on its own failed writes only, even one written in an earlier batch', async () => {
    // A second connection holds the write lock, so the first batch fails as a whole (busy).
    db.exec('PRAGMA busy_timeout = 50');
    const locker = new DatabaseSync(path.join(dir, DATABASE_FILE));
    const factory = createSqliteAdapterFactory(db);
    const mine = withRequestWrites(async () => {
      await factory('ReplayDetection').upsert('jti-locked', { jti: 'jti-locked' }, 60);
      locker.exec('BEGIN IMMEDIATE');
      // The jti's batch is written now, while the lock is held: it fails.
      flushPendingWrites(db);
      locker.exec('COMMIT');
      // The token's own batch succeeds, but the answer must not: its jti is not stored.
      await factory('ClientCredentials').upsert('tok-locked', { jti: 'tok-locked' }, 60);
      return requestWritesDurable();
    });
    await assert.rejects(mine, /locked|busy/i);
    assert.equal(committed('ReplayDetection', 'jti-locked'), false);
    // Another request, whose rows were fine, is not touched by that failure.
    await withRequestWrites(async () => {
      await factory('ClientCredentials').upsert('tok-fine', { jti: 'tok-fine' }, 60);
      await requestWritesDurable();
    });
    assert.ok(committed('ClientCredentials', 'tok-fine'));
    locker.close();
    db.exec('PRAGMA busy_timeout = 5000');
  });

  test("a row at fault fails its own request's answer, not the answer of a request sharing its batch", async () => {
    const writer = new DatabaseSync(path.join(dir, DATABASE_FILE));
    const batch = writeBatch(
      writer,
      writer.prepare('INSERT INTO oidc_models (model, id, payload, created_at) VALUES (?, ?, ?, ?)'),
    );
    const bad = withRequestWrites(() => {
      batch.add('m\0bad', ['M', 'bad', '{}', 'not a number'], '{}', null);
      return requestWritesDurable();
    });
    const good = withRequestWrites(() => {
      batch.add('m\0good', ['M', 'good', '{}', 1], '{}', null);
      return requestWritesDurable();
    });
    await assert.rejects(bad);
    await good;
    assert.ok(committed('M', 'good'));
    writer.close();
  });

  test('a pending row that has already expired is not found', async () => {
    const adapter = createSqliteAdapterFactory(db, { clockTolerance: 0 })('ReplayDetection');
    const write = adapter.upsert('old', { jti: 'old' }, -1);
    assert.equal(await adapter.find('old'), undefined);
    await write;
  });

  test('destroy, consume and revokeByGrantId write the batch first, so they act on an upsert made before them', async () => {
    const factory = createSqliteAdapterFactory(db);
    const tokens = factory('AccessToken');
    const codes = factory('AuthorizationCode');
    const writes = [
      tokens.upsert('a1', { jti: 'a1', grantId: 'g1' }, 60),
      tokens.upsert('a2', { jti: 'a2' }, 60),
      codes.upsert('c1', { jti: 'c1' }, 60),
    ];
    await tokens.destroy('a2');
    await codes.consume('c1');
    await tokens.revokeByGrantId('g1');
    await Promise.all(writes);
    assert.equal(committed('AccessToken', 'a1'), false, 'revoked with its grant');
    assert.equal(committed('AccessToken', 'a2'), false, 'destroyed');
    assert.equal(typeof (await codes.find('c1'))?.consumed, 'number', 'consumed');
  });

  test('removing a client and purging write the batch first', async () => {
    const tokens = createSqliteAdapterFactory(db)('AccessToken');
    const writes = [
      tokens.upsert('mine', { jti: 'mine', clientId: 'gone' }, 60),
      tokens.upsert('stale', { jti: 'stale' }, -60),
    ];
    removeClientRows(db, 'gone');
    assert.equal(purgeExpired(db), 1);
    await Promise.all(writes);
    assert.equal(committed('AccessToken', 'mine'), false);
    assert.equal(committed('AccessToken', 'stale'), false);
  });

  test('one row that cannot be written fails its own upsert only', async () => {
    // created_at is STRICT INTEGER: a text value is refused by SQLite.
    const writer = new DatabaseSync(path.join(dir, DATABASE_FILE));
    const batch = writeBatch(
      writer,
      writer.prepare('INSERT INTO oidc_models (model, id, payload, created_at) VALUES (?, ?, ?, ?)'),
    );
    const good = batch.add('m\0good', ['M', 'good', '{}', 1], '{}', null);
    const bad = batch.add('m\0bad', ['M', 'bad', '{}', 'not a number'], '{}', null);
    const alsoGood = batch.add('m\0also', ['M', 'also', '{}', 2], '{}', null);
    await good;
    await alsoGood;
    await assert.rejects(bad);
    assert.ok(committed('M', 'good'));
    assert.ok(committed('M', 'also'));
    assert.equal(committed('M', 'bad'), false);
    writer.close();
  });

  test('a batch is written at once when it reaches its bound', async () => {
    const adapter = createSqliteAdapterFactory(db)('ReplayDetection');
    const writes = Array.from({ length: MAX_BATCH_ROWS }, (_, i) =>
      adapter.upsert(`j${i}`, { jti: `j${i}` }, 60),
    );
    // Written synchronously by the last add, before this turn ends.
    assert.ok(committed('ReplayDetection', `j${MAX_BATCH_ROWS - 1}`));
    await Promise.all(writes);
  });

  test('closeDatabase writes what is pending; an upsert after close is refused, not lost silently', async () => {
    const adapter = createSqliteAdapterFactory(db)('Session');
    const write = adapter.upsert('s1', { jti: 's1', uid: 'u1' }, 60);
    closeDatabase(db);
    await write;
    assert.ok(committed('Session', 's1'));
    await assert.rejects(adapter.upsert('s2', { jti: 's2' }, 60), /closed/);
  });
});
