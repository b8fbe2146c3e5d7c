import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createDpopReplayCache } from './dpop-replay-cache.ts';

function clock(start = 1_700_000_000_000) {
  let now = start;
  return { now: () => now, advance: (ms: number) => (now += ms) };
}

test('a jti is fresh once per key, until it lapses; forget removes it again', () => {
  const time = clock();
  const cache = createDpopReplayCache({ maxEntries: 10, maxEntriesPerKey: 5, now: time.now });
  const until = time.now() + 60_000;
  assert.equal(cache.record('k1', 'a', until), 'fresh');
  assert.equal(cache.record('k1', 'a', until), 'replayed');
  assert.equal(cache.record('k2', 'a', until), 'fresh', 'another key: another bucket');
  cache.forget('k2', 'a');
  assert.equal(cache.record('k2', 'a', until), 'fresh', 'forgotten: its request was refused');
  time.advance(60_001);
  assert.equal(cache.record('k1', 'a', until), 'fresh', 'lapsed');
});

test("a full bucket refuses its own key's next proofs; a full cache refuses everyone; nothing unexpired is dropped", () => {
  const time = clock();
  const cache = createDpopReplayCache({ maxEntries: 8, maxEntriesPerKey: 5, now: time.now });
  const until = time.now() + 60_000;
  for (let i = 0; i < 5; i += 1) assert.equal(cache.record('busy', `j${i}`, until), 'fresh');
  assert.equal(cache.record('busy', 'j5', until), 'key-busy');
  for (let i = 0; i < 3; i += 1) assert.equal(cache.record(`other${i}`, 'x', until), 'fresh');
  assert.equal(cache.size, 8);
  assert.equal(cache.record('late', 'x', until), 'full');
  for (let i = 0; i < 5; i += 1) assert.equal(cache.record('busy', `j${i}`, until), 'replayed');
  time.advance(60_001);
  assert.equal(cache.record('late', 'x', time.now() + 60_000), 'fresh', 'room again once old proofs lapse');
  assert.equal(cache.size, 1, 'every lapsed bucket was swept');
});
