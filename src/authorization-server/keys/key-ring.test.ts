import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  checkRing,
  currentKey,
  KeyRingError,
  KeyRotationTooSoonError,
  nextKey,
  promotableAt,
  pruneRing,
  publishedKeys,
  type RingKey,
  rotateRing,
  rotationDue,
  withNextKey,
} from './key-ring.ts';

const jwk = (kid: string): RingKey['jwk'] => ({
  kty: 'EC',
  crv: 'P-256',
  x: 'x',
  y: 'y',
  d: 'd',
  kid,
  alg: 'ES256',
});
const timing = (now: number) => ({ now, retireAfterSeconds: 1000, publishBeforeUseSeconds: 99 });
const kids = (ring: readonly RingKey[]) => ring.map((key) => `${key.jwk.kid}:${key.state}`);

const start: RingKey[] = [
  { jwk: jwk('k1'), state: 'current', createdAt: 0, activatedAt: 0 },
  { jwk: jwk('k2'), state: 'next', createdAt: 0 },
];

describe('the key ring', () => {
  test('a rotation promotes next, retires current until now + retireAfter, and publishes a new next', () => {
    const rotated = rotateRing(start, jwk('k3'), timing(500));
    assert.deepEqual(kids(rotated.ring), ['k1:retired', 'k2:current', 'k3:next']);
    assert.equal(rotated.promoted.activatedAt, 500);
    assert.equal(rotated.retired.retiredAt, 500);
    assert.equal(rotated.retired.retireAt, 1500);
    assert.equal(rotated.next.createdAt, 500);
    assert.equal(currentKey(rotated.ring).jwk.kid, 'k2');
    assert.equal(nextKey(rotated.ring)?.jwk.kid, 'k3');
    assert.doesNotThrow(() => checkRing(rotated.ring, 'ES256'));
    // The input is not changed: the running server swaps rings only once the new one is on disk.
    assert.deepEqual(kids(start), ['k1:current', 'k2:next']);
  });

  test('the overlap rule: the next key signs only once published for publishBeforeUseSeconds', () => {
    assert.equal(
      promotableAt(start, 99),
      100,
      'published for 99 s whatever the fraction of its first second',
    );
    assert.throws(
      () => rotateRing(start, jwk('k3'), timing(99)),
      (error: unknown) => error instanceof KeyRotationTooSoonError && error.retryAt === 100,
    );
    const first = rotateRing(start, jwk('k3'), timing(100)).ring;
    // A second rotation right after the first must wait for k3, published only now.
    assert.throws(() => rotateRing(first, jwk('k4'), timing(150)), KeyRotationTooSoonError);
    const second = rotateRing(first, jwk('k4'), timing(200)).ring;
    assert.deepEqual(kids(second), ['k1:retired', 'k2:retired', 'k3:current', 'k4:next']);
  });

  test('the JWKS order is current, next, then retired keys newest first; past retireAt they are gone', () => {
    const first = rotateRing(start, jwk('k3'), timing(100)).ring;
    const second = rotateRing(first, jwk('k4'), timing(200)).ring;
    assert.deepEqual(kids(publishedKeys(second, 1099)), [
      'k3:current',
      'k4:next',
      'k2:retired',
      'k1:retired',
    ]);
    // k1 retired at 100 until 1100; k2 at 200 until 1200.
    assert.deepEqual(kids(publishedKeys(second, 1100)), ['k3:current', 'k4:next', 'k2:retired']);
    const pruned = pruneRing(second, 1200);
    assert.deepEqual(kids(pruned.ring), ['k3:current', 'k4:next']);
    assert.deepEqual(kids(pruned.removed), ['k1:retired', 'k2:retired']);
  });

  test('a rotation also drops retired keys already past their time', () => {
    const first = rotateRing(start, jwk('k3'), timing(100)).ring;
    const late = rotateRing(first, jwk('k4'), timing(5000));
    assert.deepEqual(kids(late.removed), ['k1:retired']);
    assert.deepEqual(kids(late.ring), ['k2:retired', 'k3:current', 'k4:next']);
  });

  test('a next key is added only when there is none', () => {
    const lone = [start[0]!];
    assert.deepEqual(kids(withNextKey(lone, jwk('k9'), 7)), ['k1:current', 'k9:next']);
    assert.deepEqual(kids(withNextKey(start, jwk('k9'), 7)), ['k1:current', 'k2:next']);
    assert.throws(() => rotateRing(lone, jwk('k3'), timing(500)), KeyRingError);
  });

  test('scheduled rotation is due rotateEverySeconds after the current key started signing', () => {
    assert.equal(rotationDue(start, 999, 1000), false);
    assert.equal(rotationDue(start, 1000, 1000), true);
    assert.equal(rotationDue(start, 10 ** 9, undefined), false, 'off');
  });

  test('checkRing refuses what this module never makes', () => {
    const bad: Array<[string, RingKey[]]> = [
      ['no current key', [{ ...start[1]! }]],
      ['two current keys', [start[0]!, { ...start[1]!, state: 'current' }]],
      ['two next keys', [...start, { jwk: jwk('k3'), state: 'next', createdAt: 0 }]],
      ['a repeated kid', [start[0]!, { ...start[1]!, jwk: jwk('k1') }]],
      ['a retired key with no retireAt', [...start, { jwk: jwk('k3'), state: 'retired', createdAt: 0 }]],
      ['another algorithm', [start[0]!, { ...start[1]!, jwk: { ...jwk('k2'), alg: 'RS256' } }]],
    ];
    for (const [what, ring] of bad) assert.throws(() => checkRing(ring, 'ES256'), KeyRingError, what);
  });
});
