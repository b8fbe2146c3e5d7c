import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { tokenHash } from '../shared/jwt.ts';
import { cacheLifetimeMs, createIntrospectionCache } from './introspection-cache.ts';
import type { Introspection } from './introspection-client.ts';

/** A clock the test moves by hand (milliseconds). */
function fakeClock(start = 1_700_000_000_000) {
  let now = start;
  return { now: () => now, advance: (ms: number) => (now += ms) };
}

const active = (expInSeconds: number, clock: { now: () => number }): Introspection => ({
  active: true,
  jwt: 'header.payload.signature',
  exp: Math.floor(clock.now() / 1000) + expInSeconds,
});

/** An introspection that counts its calls. */
function counted(result: () => Introspection | Promise<Introspection>) {
  const calls = { count: 0 };
  return {
    calls,
    introspect: async () => {
      calls.count += 1;
      return result();
    },
  };
}

describe('introspection cache', () => {
  test('a second lookup of the same token is a hit; the introspection runs once', async () => {
    const clock = fakeClock();
    const cache = createIntrospectionCache({ maxSeconds: 30, maxEntries: 10, now: clock.now });
    const source = counted(() => active(600, clock));
    assert.equal((await cache.lookup('token-a', source.introspect)).source, 'miss');
    const second = await cache.lookup('token-a', source.introspect);
    assert.equal(second.source, 'hit');
    assert.equal(second.result.active, true);
    assert.equal(source.calls.count, 1);
    assert.equal(cache.hits, 1);
  });

  test('entries are keyed by the SHA-256 hash of the token, never the token', async () => {
    const clock = fakeClock();
    const cache = createIntrospectionCache({ maxSeconds: 30, maxEntries: 10, now: clock.now });
    const token = 'opaque-token-value-0123456789abcdefghijklmnop';
    await cache.lookup(token, async () => active(600, clock));
    assert.deepEqual(cache.keys(), [tokenHash(token)]);
    assert.ok(!cache.keys().some((key) => key.includes(token)));
    assert.notEqual(tokenHash(token), token);
  });

  test('an entry lives no longer than maxSeconds', async () => {
    const clock = fakeClock();
    const cache = createIntrospectionCache({ maxSeconds: 5, maxEntries: 10, now: clock.now });
    const source = counted(() => active(3600, clock));
    await cache.lookup('t', source.introspect);
    assert.equal(cache.remainingMs('t'), 5000);
    clock.advance(4999);
    assert.equal((await cache.lookup('t', source.introspect)).source, 'hit');
    clock.advance(1);
    assert.equal((await cache.lookup('t', source.introspect)).source, 'miss', 'lapsed after maxSeconds');
    assert.equal(source.calls.count, 2);
  });

  test("an entry never outlives the token's exp", async () => {
    const clock = fakeClock();
    const cache = createIntrospectionCache({ maxSeconds: 30, maxEntries: 10, now: clock.now });
    const source = counted(() => active(10, clock));
    await cache.lookup('t', source.introspect);
    assert.ok(cache.remainingMs('t') <= 10_000, `TTL ${cache.remainingMs('t')} ms exceeds exp`);
    assert.ok(cache.remainingMs('t') > 9_000);
    clock.advance(10_000);
    assert.equal(cache.remainingMs('t'), 0);
    assert.equal((await cache.lookup('t', source.introspect)).source, 'miss');
  });

  test('a token that is already expired by the clock here is not cached', async () => {
    const clock = fakeClock();
    const cache = createIntrospectionCache({ maxSeconds: 30, maxEntries: 10, now: clock.now });
    await cache.lookup('t', async () => active(-1, clock));
    assert.equal(cache.size, 0);
  });

  test('inactive answers are cached for maxSeconds', async () => {
    const clock = fakeClock();
    const cache = createIntrospectionCache({ maxSeconds: 7, maxEntries: 10, now: clock.now });
    const source = counted(() => ({ active: false }));
    await cache.lookup('dead', source.introspect);
    assert.equal(cache.remainingMs('dead'), 7000);
    const again = await cache.lookup('dead', source.introspect);
    assert.deepEqual(again, { result: { active: false }, source: 'hit' });
    assert.equal(source.calls.count, 1);
  });

  test('while revocations are not heard lately, an answer older than the bound is asked again', async () => {
    const clock = fakeClock();
    const cache = createIntrospectionCache({ maxSeconds: 30, maxEntries: 10, now: clock.now });
    let heard = true;
    cache.trustWhile(() => heard, 1);
    const source = counted(() => active(600, clock));
    await cache.lookup('token-a', source.introspect);
    clock.advance(5000);
    assert.equal((await cache.lookup('token-a', source.introspect)).source, 'hit', 'heard: reused');
    heard = false;
    assert.equal((await cache.lookup('token-a', source.introspect)).source, 'miss', 'unheard: asked again');
    clock.advance(500);
    assert.equal((await cache.lookup('token-a', source.introspect)).source, 'hit', 'an answer under 1 s old');
    clock.advance(600);
    assert.equal((await cache.lookup('token-a', source.introspect)).source, 'miss');
    assert.equal(source.calls.count, 3);
  });

  test('the cache is bounded: the least recently used entry goes first', async () => {
    const clock = fakeClock();
    const cache = createIntrospectionCache({ maxSeconds: 30, maxEntries: 2, now: clock.now });
    const source = counted(() => active(600, clock));
    await cache.lookup('one', source.introspect);
    await cache.lookup('two', source.introspect);
    await cache.lookup('one', source.introspect); // "one" is now the most recently used
    await cache.lookup('three', source.introspect);
    assert.equal(cache.size, 2);
    assert.deepEqual(new Set(cache.keys()), new Set([tokenHash('one'), tokenHash('three')]));
    assert.equal((await cache.lookup('two', source.introspect)).source, 'miss');
  });

  test('failures are not cached: the next lookup asks again', async () => {
    const clock = fakeClock();
    const cache = createIntrospectionCache({ maxSeconds: 30, maxEntries: 10, now: clock.now });
    let fail = true;
    const source = counted(() => {
      if (fail) throw new Error('authorization server down');
      return active(600, clock);
    });
    await assert.rejects(cache.lookup('t', source.introspect), /down/);
    assert.equal(cache.size, 0);
    fail = false;
    assert.equal((await cache.lookup('t', source.introspect)).source, 'miss');
    assert.equal(source.calls.count, 2);
  });

  test('concurrent lookups of one uncached token share a single introspection', async () => {
    const clock = fakeClock();
    const cache = createIntrospectionCache({ maxSeconds: 30, maxEntries: 10, now: clock.now });
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const source = counted(async () => {
      await gate;
      return active(600, clock);
    });
    const lookups = Array.from({ length: 5 }, () => cache.lookup('t', source.introspect));
    const other = cache.lookup('other', source.introspect);
    release();
    const results = await Promise.all(lookups);
    await other;
    assert.equal(source.calls.count, 2, 'one for "t", one for "other"');
    assert.deepEqual(results.map((r) => r.source).sort(), ['miss', 'shared', 'shared', 'shared', 'shared']);
  });

  test('a shared introspection that fails fails every waiting request', async () => {
    const cache = createIntrospectionCache({ maxSeconds: 30, maxEntries: 10 });
    const source = counted(async () => {
      await new Promise((resolve) => setTimeout(resolve, 10));
      throw new Error('timeout');
    });
    const results = await Promise.allSettled([
      cache.lookup('t', source.introspect),
      cache.lookup('t', source.introspect),
    ]);
    assert.deepEqual(
      results.map((r) => r.status),
      ['rejected', 'rejected'],
    );
    assert.equal(source.calls.count, 1);
  });
});

describe('cacheLifetimeMs', () => {
  test('min(maxSeconds, exp - now) for active tokens, maxSeconds for inactive ones', () => {
    const now = 1_000_000_000;
    assert.equal(cacheLifetimeMs({ active: true, jwt: 'x', exp: now / 1000 + 100 }, now, 30), 30_000);
    assert.equal(cacheLifetimeMs({ active: true, jwt: 'x', exp: now / 1000 + 12 }, now, 30), 12_000);
    assert.ok(cacheLifetimeMs({ active: true, jwt: 'x', exp: now / 1000 - 1 }, now, 30) <= 0);
    assert.equal(cacheLifetimeMs({ active: false }, now, 30), 30_000);
  });
});
