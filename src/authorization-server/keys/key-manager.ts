/**
 * The running authorization server's keys: loads (or first makes) `keys.json`, gives the signers
 * the current keys and the JWKS endpoint the published ones, and rotates, prunes and schedules
 * rotations without a restart (key-ring.ts has the rules).
 *
 * Two rings rotate live, together, by one rotation: the ES256 keys that sign phantom and exchanged
 * access tokens (the signer asks for the current key on every token) and the RS256 keys that sign
 * ID tokens (oidc-provider asks for the current key on every ID token, through the slots of
 * id-token-signing.ts). The JWKS is built per request from both. The cookie keys do not rotate:
 * rotating them would end every browser session.
 *
 * Every change is written to disk before it takes effect, so a key never signs a token and is then
 * lost in a crash, and rotations are done one at a time.
 */
import { createPrivateKey, createPublicKey, type JsonWebKey, randomBytes } from 'node:crypto';
import path from 'node:path';
import { createLocalJWKSet, importJWK, type JWK, type JWTVerifyGetKey } from 'jose';
import type { Logger } from '../../shared/logging.ts';
import type { IdTokenKey } from './id-token-signing.ts';
import { KEY_FILE, KeyFileError, readKeyFile, type StoredKeys, writeKeyFile } from './key-file.ts';
import {
  currentKey,
  KeyRotationTooSoonError,
  type KeyState,
  nextKey,
  promotableAt,
  promotableFrom,
  pruneRing,
  publishedKeys,
  type RingKey,
  rotateRing,
  rotationDue,
  withNextKey,
} from './key-ring.ts';
import { ACCESS_TOKEN_ALG, generateSigningKey, ID_TOKEN_ALG, publicJwk } from './signing-key.ts';

/** One key as the admin console shows it: no private material. Times are ISO 8601. */
export interface KeyInfo {
  kid: string;
  alg: string;
  /** What the key signs. */
  use: 'access_token' | 'id_token';
  state: KeyState;
  /** Whether a rotation changes it: every signing key rotates now (kept for the API's clients). */
  rotates: boolean;
  created?: string;
  activated?: string;
  retired?: string;
  /** A retired key leaves the JWKS at this time. */
  retireAt?: string;
  /** A next key may become current from this time on (the overlap rule). */
  promotableFrom?: string;
}

/** What a rotation did to one ring. */
export interface RingRotation {
  /** The key that signs from now on (the former next key). */
  current: string;
  /** The key that stopped signing, published until `retireAt`. */
  retired: string;
  retireAt: string;
  /** The key published now, to sign at the following rotation. */
  next: string;
}

/** A rotation: the access-token ring's at the top level (as before ID-token keys rotated). */
export interface RotationResult extends RingRotation {
  idToken: RingRotation;
}

/** The handle an admin API uses. */
export interface KeyAdministration {
  list(): KeyInfo[];
  /** Throws KeyRotationTooSoonError (with `retryAt`) under the overlap rule. */
  rotate(actor: string): Promise<RotationResult>;
}

export interface KeyManager extends KeyAdministration {
  readonly cookieKeys: string[];
  /**
   * The ID-token keys that may have signed an ID token still verifiable: the current one first,
   * then the retired ones still published, newest first (for id-token-signing.ts).
   */
  idTokenKeys(): readonly IdTokenKey[];
  /** The JWKS to publish now (RFC 7517 §5): access-token keys, then ID-token keys. */
  jwks(): { keys: JWK[] };
  /** Resolves the key of a token signed with an access-token key still published (token exchange). */
  verificationKey: JWTVerifyGetKey;
  /** The key new access tokens are signed with. */
  signingKey(): { kid: string; key: CryptoKey };
  /** Removes retired keys past their time and rotates when the schedule says so. */
  maintain(): Promise<void>;
  /** Runs maintain() every `intervalMs` (unref'd); returns the stop function. */
  startSchedule(intervalMs?: number): () => void;
}

export interface KeyManagerOptions {
  dataDir: string;
  /** How long a retired access-token key stays published (retire-after.ts). */
  retireAfterSeconds: number;
  /** How long a retired ID-token key stays published (retire-after.ts). */
  idTokenRetireAfterSeconds: number;
  publishBeforeUseSeconds: number;
  /** Scheduled rotation, or undefined when it is off. */
  rotateEverySeconds: number | undefined;
  logger: Logger;
  /** Milliseconds since the epoch; tests move it. */
  now?: () => number;
}

const iso = (seconds: number | undefined) =>
  seconds === undefined ? undefined : new Date(seconds * 1000).toISOString();

const damaged = (file: string, key: RingKey, error: unknown) =>
  new KeyFileError(`${file} is damaged (key ${key.jwk.kid}: ${(error as Error).message})`);

async function importPrivate(key: RingKey, file: string): Promise<CryptoKey> {
  try {
    return (await importJWK(key.jwk, ACCESS_TOKEN_ALG)) as CryptoKey;
  } catch (error) {
    throw damaged(file, key, error);
  }
}

function idTokenKeyOf(key: RingKey, file: string): IdTokenKey {
  try {
    const privateKey = createPrivateKey({ key: key.jwk as JsonWebKey, format: 'jwk' });
    const { n, e } = key.jwk;
    if (privateKey.asymmetricKeyType !== 'rsa' || typeof n !== 'string' || typeof e !== 'string')
      throw new Error('not an RSA key');
    return { kid: key.jwk.kid, n, e, privateKey, publicKey: createPublicKey(privateKey) };
  } catch (error) {
    throw damaged(file, key, error);
  }
}

/** Loads the keys, making them on first start, migrating older files, and publishing next keys. */
export async function createKeyManager(options: KeyManagerOptions): Promise<KeyManager> {
  const file = path.join(options.dataDir, KEY_FILE);
  const clock = options.now ?? (() => Date.now());
  const nowSeconds = () => Math.floor(clock() / 1000);
  const { logger } = options;

  let stored: StoredKeys;
  const read = readKeyFile(file, { now: nowSeconds(), retireAfterSeconds: options.retireAfterSeconds });
  if (!read) {
    const now = nowSeconds();
    stored = {
      accessTokenRing: [
        { jwk: await generateKey(ACCESS_TOKEN_ALG), state: 'current', createdAt: now, activatedAt: now },
        { jwk: await generateKey(ACCESS_TOKEN_ALG), state: 'next', createdAt: now },
      ],
      idTokenRing: [
        { jwk: await generateKey(ID_TOKEN_ALG), state: 'current', createdAt: now, activatedAt: now },
        { jwk: await generateKey(ID_TOKEN_ALG), state: 'next', createdAt: now },
      ],
      cookieKeys: [randomBytes(32).toString('base64url')],
    };
    writeKeyFile(file, stored);
  } else {
    stored = read.keys;
    if (read.migrated || !nextKey(stored.accessTokenRing) || !nextKey(stored.idTokenRing)) {
      // A next key in each ring from now on, so the first rotation has keys verifiers already know.
      const now = nowSeconds();
      stored = {
        ...stored,
        accessTokenRing: withNextKey(stored.accessTokenRing, await generateKey(ACCESS_TOKEN_ALG), now),
        idTokenRing: withNextKey(stored.idTokenRing, await generateKey(ID_TOKEN_ALG), now),
      };
      writeKeyFile(file, stored);
      if (read.migrated)
        logger.info('keys.json migrated: its access-token and ID-token keys sign on as the current keys', {
          kid: currentKey(stored.accessTokenRing).jwk.kid,
          next_kid: nextKey(stored.accessTokenRing)?.jwk.kid,
          id_token_kid: currentKey(stored.idTokenRing).jwk.kid,
          id_token_next_kid: nextKey(stored.idTokenRing)?.jwk.kid,
        });
    }
  }
  const firstCurrent = currentKey(stored.accessTokenRing);
  let signer = { kid: firstCurrent.jwk.kid, key: await importPrivate(firstCurrent, file) };
  // Import every key once now, so that a damaged one stops the start rather than a later rotation.
  for (const key of stored.accessTokenRing) await importPrivate(key, file);
  /** The ID-token keys as node:crypto keys, by kid: made once, when a key enters the ring. */
  const idTokenKeyObjects = new Map(stored.idTokenRing.map((key) => [key.jwk.kid, idTokenKeyOf(key, file)]));

  let verification: { kids: string; getKey: JWTVerifyGetKey } | undefined;
  const published = (ring: readonly RingKey[]) => publishedKeys(ring, nowSeconds());

  let queue: Promise<unknown> = Promise.resolve();
  /** One change to the rings at a time: a rotation and a scheduled one never interleave. */
  const serially = <T>(task: () => Promise<T>): Promise<T> => {
    const run = queue.then(task, task);
    queue = run.catch(() => {});
    return run;
  };

  const save = (next: StoredKeys) => {
    writeKeyFile(file, next);
    stored = next;
    for (const kid of idTokenKeyObjects.keys())
      if (!next.idTokenRing.some((key) => key.jwk.kid === kid)) idTokenKeyObjects.delete(kid);
  };

  const ringRotation = (rotated: ReturnType<typeof rotateRing>): RingRotation => ({
    current: rotated.promoted.jwk.kid,
    retired: rotated.retired.jwk.kid,
    retireAt: iso(rotated.retired.retireAt)!,
    next: rotated.next.jwk.kid,
  });

  async function rotateNow(actor: string): Promise<RotationResult> {
    const now = nowSeconds();
    const retiring = currentKey(stored.accessTokenRing).jwk.kid;
    const idRetiring = currentKey(stored.idTokenRing).jwk.kid;
    try {
      // The overlap rule for both rings before either changes: one rotation moves both or neither.
      const allowedAt = Math.max(
        promotableAt(stored.accessTokenRing, options.publishBeforeUseSeconds) ?? 0,
        promotableAt(stored.idTokenRing, options.publishBeforeUseSeconds) ?? 0,
      );
      if (allowedAt > now)
        throw new KeyRotationTooSoonError(
          `the next keys may sign only ${options.publishBeforeUseSeconds} s after they were published ` +
            '(keys.publishBeforeUseSeconds)',
          allowedAt,
        );
      const timing = { now, publishBeforeUseSeconds: options.publishBeforeUseSeconds };
      const access = rotateRing(stored.accessTokenRing, await generateKey(ACCESS_TOKEN_ALG), {
        ...timing,
        retireAfterSeconds: options.retireAfterSeconds,
      });
      const id = rotateRing(stored.idTokenRing, await generateKey(ID_TOKEN_ALG), {
        ...timing,
        retireAfterSeconds: options.idTokenRetireAfterSeconds,
      });
      const key = await importPrivate(access.promoted, file);
      const newIdKey = idTokenKeyOf(id.next, file);
      // On disk first: a promoted key must not sign a token that a crash could orphan.
      save({ ...stored, accessTokenRing: access.ring, idTokenRing: id.ring });
      idTokenKeyObjects.set(newIdKey.kid, newIdKey);
      signer = { kid: access.promoted.jwk.kid, key };
      const result: RotationResult = { ...ringRotation(access), idToken: ringRotation(id) };
      logger.audit('keys.rotated', {
        outcome: 'success',
        actor,
        kid_new: result.current,
        kid_retired: result.retired,
        kid_next: result.next,
        retire_at: result.retireAt,
        id_token_kid_new: result.idToken.current,
        id_token_kid_retired: result.idToken.retired,
        id_token_kid_next: result.idToken.next,
        id_token_retire_at: result.idToken.retireAt,
      });
      for (const removed of [...access.removed, ...id.removed]) logRemoved(removed);
      return result;
    } catch (error) {
      const tooSoon = error instanceof KeyRotationTooSoonError;
      logger.audit('keys.rotated', {
        outcome: tooSoon ? 'denied' : 'failure',
        actor,
        kid_retired: retiring,
        id_token_kid_retired: idRetiring,
        reason: tooSoon ? 'next key not published long enough' : (error as Error).message,
        ...(tooSoon ? { retry_at: iso(error.retryAt) } : {}),
      });
      throw error;
    }
  }

  function logRemoved(key: RingKey) {
    logger.audit('keys.removed', { outcome: 'success', kid: key.jwk.kid, retire_at: iso(key.retireAt) });
  }

  async function maintainNow(): Promise<void> {
    const now = nowSeconds();
    const access = pruneRing(stored.accessTokenRing, now);
    const id = pruneRing(stored.idTokenRing, now);
    if (access.removed.length > 0 || id.removed.length > 0) {
      save({ ...stored, accessTokenRing: access.ring, idTokenRing: id.ring });
      for (const key of [...access.removed, ...id.removed]) logRemoved(key);
    }
    const due =
      rotationDue(stored.accessTokenRing, now, options.rotateEverySeconds) ||
      rotationDue(stored.idTokenRing, now, options.rotateEverySeconds);
    if (!due) return;
    // Due, but a next key is too young to sign (a manual rotation just before): wait for it.
    const promotable = [stored.accessTokenRing, stored.idTokenRing].map(
      (ring) => promotableAt(ring, options.publishBeforeUseSeconds) ?? Number.POSITIVE_INFINITY,
    );
    if (Math.max(...promotable) > now) return;
    await rotateNow('schedule');
  }

  const maintain = () => serially(maintainNow);

  const info =
    (use: KeyInfo['use'], alg: string) =>
    (key: RingKey): KeyInfo => ({
      kid: key.jwk.kid,
      alg,
      use,
      state: key.state,
      rotates: true,
      created: iso(key.createdAt)!,
      ...(key.activatedAt !== undefined ? { activated: iso(key.activatedAt)! } : {}),
      ...(key.retiredAt !== undefined ? { retired: iso(key.retiredAt)! } : {}),
      ...(key.retireAt !== undefined ? { retireAt: iso(key.retireAt)! } : {}),
      ...(key.state === 'next'
        ? { promotableFrom: iso(promotableFrom(key.createdAt, options.publishBeforeUseSeconds))! }
        : {}),
    });

  return {
    cookieKeys: stored.cookieKeys,
    idTokenKeys: () =>
      published(stored.idTokenRing)
        .filter((key) => key.state !== 'next')
        .map((key) => idTokenKeyObjects.get(key.jwk.kid)!),
    jwks: () => ({
      keys: [...published(stored.accessTokenRing), ...published(stored.idTokenRing)].map((key) =>
        publicJwk(key.jwk),
      ),
    }),
    verificationKey: (header, token) => {
      const keys = published(stored.accessTokenRing).map((key) => publicJwk(key.jwk));
      const kids = keys.map((key) => key.kid).join(' ');
      // One local key set per set of published keys: it keeps its imported keys between tokens.
      if (verification?.kids !== kids) verification = { kids, getKey: createLocalJWKSet({ keys }) };
      return verification.getKey(header, token);
    },
    signingKey: () => signer,
    list: () => [
      ...published(stored.accessTokenRing).map(info('access_token', ACCESS_TOKEN_ALG)),
      ...published(stored.idTokenRing).map(info('id_token', ID_TOKEN_ALG)),
    ],
    rotate: (actor) => serially(() => rotateNow(actor)),
    maintain,
    startSchedule(intervalMs = 60_000) {
      const timer = setInterval(() => {
        maintain().catch((error: unknown) => {
          if (error instanceof KeyRotationTooSoonError) return;
          logger.error('key maintenance failed', { error: (error as Error).message });
        });
      }, intervalMs);
      timer.unref();
      return () => clearInterval(timer);
    },
  };
}

async function generateKey(alg: typeof ACCESS_TOKEN_ALG | typeof ID_TOKEN_ALG): Promise<RingKey['jwk']> {
  return (await generateSigningKey(alg)) as RingKey['jwk'];
}
