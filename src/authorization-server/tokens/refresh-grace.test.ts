import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { createSqliteAdapterFactory, openDatabase } from '../store/sqlite-store.ts';
import { withRefreshTokenGrace } from './refresh-grace.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'gatehouse-grace-'));
const db = openDatabase(dir);
after(() => {
  db.close();
  rmSync(dir, { recursive: true, force: true });
});

// The store stamps `consumed` with the real clock; the wrapper's clock starts there and moves ahead.
let clock = Math.floor(Date.now() / 1000);
const adapter = withRefreshTokenGrace(createSqliteAdapterFactory(db)('RefreshToken'), 10, {
  now: () => clock,
});

async function freshToken(id: string) {
  await adapter.upsert(id, { jti: id, kind: 'RefreshToken', exp: clock + 3600, grantId: 'g' }, 3600);
}

test('a consumed token reads unconsumed once inside the window, measured from its first use', async () => {
  await freshToken('a');
  await adapter.consume('a');
  const consumedAt = (await adapter.find('a'))?.consumed;
  assert.equal(consumedAt, undefined, 'within the window it reads unconsumed');
  clock += 6;
  await adapter.consume('a'); // the grace use
  clock += 1;
  const after = await adapter.find('a');
  assert.equal(typeof after?.consumed, 'number', 'after its one grace use it reads consumed');
});

test('the grace use does not move the consumption time (no sliding window)', async () => {
  await freshToken('b');
  const first = clock;
  await adapter.consume('b');
  clock += 9;
  await adapter.consume('b');
  const stored = await createSqliteAdapterFactory(db)('RefreshToken').find('b');
  assert.ok(Number(stored?.consumed) <= first + 1, 'still the first consumption time');
  assert.equal(stored?.graceUsedAt, first + 9);
});

test('past the window a consumed token reads consumed, used or not', async () => {
  await freshToken('c');
  await adapter.consume('c');
  clock += 11;
  assert.equal(typeof (await adapter.find('c'))?.consumed, 'number');
});

test('an unconsumed token is returned as stored', async () => {
  await freshToken('d');
  const found = await adapter.find('d');
  assert.equal(found?.consumed, undefined);
  assert.equal(found?.jti, 'd');
});
