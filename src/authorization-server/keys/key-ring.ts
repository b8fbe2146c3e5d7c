/**
 * A ring of signing keys and its state transitions, as pure functions of the ring and the time
 * (seconds since the epoch). Two rings follow these rules, the ES256 access-token keys and the RS256
 * ID-token keys (`checkRing` takes the ring's algorithm); loading, saving and the running server's
 * switch-over live in key-file.ts and key-manager.ts, which rotates both rings together.
 *
 * A key goes `next` → `current` → `retired` → gone:
 *
 * - `next`: published in the JWKS (RFC 7517 §5, at the `jwks_uri` of RFC 8414 §2), signs nothing.
 *   Verifiers learn it while the current key still signs.
 * - `current`: signs every new phantom and exchanged token. Exactly one.
 * - `retired`: signs nothing, stays published until `retireAt`, by when every token it signed has
 *   expired (plus clock tolerance), then is removed.
 *
 * The overlap rule: a rotation promotes the `next` key only once it has been published for at
 * least `publishBeforeUseSeconds`, the longest time a verifier may go on using a JWKS fetched before
 * that key was in it; so no verifier meets a token signed with a key it has not been able to see.
 * Each rotation publishes a new `next` key, which waits its turn the same way.
 */
import type { JWK } from 'jose';

export type KeyState = 'next' | 'current' | 'retired';

export interface RingKey {
  /** The private key (kid, alg, use set). */
  jwk: JWK & { kid: string };
  state: KeyState;
  /** When the key was made and published (as `next`, or as `current` on first start). */
  createdAt: number;
  /** When it became `current`. */
  activatedAt?: number;
  /** When it stopped signing. */
  retiredAt?: number;
  /** When it leaves the JWKS: every token it signed has expired by then. */
  retireAt?: number;
}

export type KeyRing = readonly RingKey[];

export interface RotationTiming {
  now: number;
  /** Longest lifetime of a token the current key may have signed, plus clock tolerance. */
  retireAfterSeconds: number;
  /** The overlap rule: how long the `next` key must have been published before it may sign. */
  publishBeforeUseSeconds: number;
}

/** A rotation asked for before the `next` key has been published long enough (the overlap rule). */
export class KeyRotationTooSoonError extends Error {
  override name = 'KeyRotationTooSoonError';
  /** The earliest time (seconds since the epoch) the rotation is allowed. */
  readonly retryAt: number;
  constructor(message: string, retryAt: number) {
    super(message);
    this.retryAt = retryAt;
  }
}

/** The ring's state is not one this module makes (a hand-edited or damaged key file). */
export class KeyRingError extends Error {
  override name = 'KeyRingError';
}

export function currentKey(ring: KeyRing): RingKey {
  const current = ring.filter((key) => key.state === 'current');
  if (current.length !== 1) throw new KeyRingError(`${current.length} current keys, expected exactly one`);
  return current[0]!;
}

export function nextKey(ring: KeyRing): RingKey | undefined {
  return ring.find((key) => key.state === 'next');
}

/** Checks what every other function here relies on; throws KeyRingError. */
export function checkRing(ring: KeyRing, alg: string): void {
  currentKey(ring);
  if (ring.filter((key) => key.state === 'next').length > 1) throw new KeyRingError('more than one next key');
  const kids = new Set<string>();
  for (const key of ring) {
    if (kids.has(key.jwk.kid)) throw new KeyRingError(`kid ${key.jwk.kid} appears twice`);
    kids.add(key.jwk.kid);
    if (key.jwk.alg !== alg) throw new KeyRingError(`key ${key.jwk.kid} is not ${alg}`);
    if (key.state === 'retired' && typeof key.retireAt !== 'number')
      throw new KeyRingError(`retired key ${key.jwk.kid} has no retireAt`);
  }
}

/** Keys the JWKS carries at `now`: current, next, then retired ones not yet past `retireAt`. */
export function publishedKeys(ring: KeyRing, now: number): RingKey[] {
  const order: Record<KeyState, number> = { current: 0, next: 1, retired: 2 };
  return ring
    .filter((key) => key.state !== 'retired' || (key.retireAt ?? 0) > now)
    .sort((a, b) => order[a.state] - order[b.state] || (b.retiredAt ?? 0) - (a.retiredAt ?? 0));
}

/** Removes retired keys past their `retireAt`. */
export function pruneRing(ring: KeyRing, now: number): { ring: RingKey[]; removed: RingKey[] } {
  const kept = new Set(publishedKeys(ring, now));
  return { ring: ring.filter((key) => kept.has(key)), removed: ring.filter((key) => !kept.has(key)) };
}

/** Adds `jwk` as the `next` key when the ring has none. */
export function withNextKey(ring: KeyRing, jwk: RingKey['jwk'], now: number): RingKey[] {
  if (nextKey(ring)) return [...ring];
  return [...ring, { jwk, state: 'next', createdAt: now }];
}

/**
 * When a key published at `createdAt` may sign. Times are whole seconds rounded down, so one more
 * second makes sure it has been published for the full `publishBeforeUseSeconds`, however late in
 * its second it was made.
 */
export function promotableFrom(createdAt: number, publishBeforeUseSeconds: number): number {
  return createdAt + publishBeforeUseSeconds + 1;
}

/** When the `next` key may become current under the overlap rule (undefined: there is none). */
export function promotableAt(ring: KeyRing, publishBeforeUseSeconds: number): number | undefined {
  const next = nextKey(ring);
  return next ? promotableFrom(next.createdAt, publishBeforeUseSeconds) : undefined;
}

/**
 * The rotation: `next` becomes current, current becomes retired (published until
 * `now + retireAfterSeconds`), `newNext` is published as the next key, and retired keys past their
 * time are dropped. Throws KeyRotationTooSoonError under the overlap rule.
 */
export function rotateRing(
  ring: KeyRing,
  newNext: RingKey['jwk'],
  timing: RotationTiming,
): { ring: RingKey[]; promoted: RingKey; retired: RingKey; next: RingKey; removed: RingKey[] } {
  const { now } = timing;
  const next = nextKey(ring);
  if (!next) throw new KeyRingError('no next key to promote');
  const allowedAt = promotableFrom(next.createdAt, timing.publishBeforeUseSeconds);
  if (allowedAt > now) {
    throw new KeyRotationTooSoonError(
      `the next key ${next.jwk.kid} has been published for ${Math.max(0, now - next.createdAt)} s; ` +
        `it may sign only after ${timing.publishBeforeUseSeconds} s (keys.publishBeforeUseSeconds)`,
      allowedAt,
    );
  }
  const old = currentKey(ring);
  const promoted: RingKey = { ...next, state: 'current', activatedAt: now };
  const retired: RingKey = {
    ...old,
    state: 'retired',
    retiredAt: now,
    retireAt: now + timing.retireAfterSeconds,
  };
  const added: RingKey = { jwk: newNext, state: 'next', createdAt: now };
  const rotated = ring.map((key) => (key === next ? promoted : key === old ? retired : key));
  const pruned = pruneRing([...rotated, added], now);
  return { ring: pruned.ring, promoted, retired, next: added, removed: pruned.removed };
}

/** True when scheduled rotation is on and the current key has signed for `rotateEverySeconds`. */
export function rotationDue(ring: KeyRing, now: number, rotateEverySeconds: number | undefined): boolean {
  if (rotateEverySeconds === undefined) return false;
  const current = currentKey(ring);
  return (current.activatedAt ?? current.createdAt) + rotateEverySeconds <= now;
}
