import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { openDatabase } from '../store/sqlite-store.ts';
import { createSqliteRevocationEventLog } from './event-log.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'gatehouse-revocations-'));
const db = openDatabase(dir);
after(() => {
  db.close();
  rmSync(dir, { recursive: true, force: true });
});

test('events get increasing ids; a listener hears each; since() replays what came after an id', () => {
  const log = createSqliteRevocationEventLog(db);
  const heard: number[] = [];
  const unsubscribe = log.subscribe((stored) => heard.push(stored.id));
  const now = Math.floor(Date.now() / 1000);
  const a = log.append({ type: 'grant', grant_id: 'a', at: now });
  const b = log.append({ type: 'subject', sub: 'b', at: now });
  unsubscribe();
  log.append({ type: 'client', client_id: 'c', at: now });
  assert.deepEqual(heard, [a.id, b.id]);
  assert.ok(b.id > a.id);
  assert.deepEqual(
    log.since(a.id)!.map((stored) => stored.event.type),
    ['subject', 'client'],
  );
  assert.deepEqual(log.since(log.latestId()), []);
  assert.equal(log.since(log.latestId() + 5), undefined, 'an id from the future means another log');
});

test('hasToken finds a token event by its hash, and only a token event', () => {
  const log = createSqliteRevocationEventLog(db);
  const now = Math.floor(Date.now() / 1000);
  log.append({ type: 'token', token_hash: 'revoked-hash', client_id: 'wl', at: now });
  log.append({ type: 'grant', grant_id: 'grant-hash', at: now });
  assert.equal(log.hasToken('revoked-hash'), true);
  assert.equal(log.hasToken('grant-hash'), false);
  assert.equal(log.hasToken('never'), false);
});

test('hasClientSince finds a client event at or after a time', () => {
  const log = createSqliteRevocationEventLog(db);
  log.append({ type: 'client', client_id: 'deleted-client', at: 1000 });
  assert.equal(log.hasClientSince('deleted-client', 999), true, 'a token issued before the deletion');
  assert.equal(log.hasClientSince('deleted-client', 1000), true);
  assert.equal(log.hasClientSince('deleted-client', 1001), false, 'issued after it');
  assert.equal(log.hasClientSince('another-client', 0), false);
});

test('the stream id is the same for the same database; pruned history cannot be replayed', () => {
  const first = createSqliteRevocationEventLog(db);
  const again = createSqliteRevocationEventLog(db);
  assert.equal(first.streamId, again.streamId);
  const now = Math.floor(Date.now() / 1000);
  const early = first.append({ type: 'grant', grant_id: 'old', at: now - 7200 });
  first.append({ type: 'grant', grant_id: 'new', at: now });
  assert.equal(first.prune(3600, 1000), 0, 'nothing young was capped away');
  assert.equal(first.since(early.id - 1), undefined, 'the old event is gone: a listener there must reset');
  assert.deepEqual(
    first.since(early.id)!.map((s) => s.event),
    [{ type: 'grant', grant_id: 'new', at: now }],
  );
  for (let i = 0; i < 5; i += 1) first.append({ type: 'grant', grant_id: `g${i}`, at: now });
  assert.ok(first.prune(3600, 2) >= 4, 'the cap says how many young events it removed');
  assert.equal(first.since(early.id), undefined, 'at most maxEvents are kept');
  assert.equal(first.since(first.latestId() - 2)!.length, 2);
  assert.deepEqual(
    first.retained().map((s) => s.event.type === 'grant' && s.event.grant_id),
    ['g3', 'g4'],
    'retained: every event kept, oldest first',
  );
});
