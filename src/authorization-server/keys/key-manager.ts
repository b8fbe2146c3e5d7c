/**
 * The running authorization server's keys: loads (or first makes) `keys.json`, gives the signer the
 * current access-token key and the JWKS endpoint the published ones, and rotates, prunes and
 * schedules rotations without a restart (key-ring.ts has the rules).
 *
 * What rotates live is the ES256 key that signs phantom and exchanged access tokens: the signer
 * asks for the current key on every token, and the JWKS is built per request. The RS256 ID-token
 * key does not rotate: oidc-provider builds its keystore once, at construction (lib/helpers/
 * initialize_keystore.js), and a key it signs with must stay published while it signs. The cookie
 * keys do not rotate either: rotating them would end every browser session.
 *
 * Every change is written to disk before it takes effect, so a key never signs a token and is then
 * lost in a crash, and rotations are done one at a time.
 */
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { createLocalJWKSet, importJWK, type JWK, type JWTVerifyGetKey } from 'jose';
import type { Logger } from '../../shared/logging.ts';
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
  /** False for the ID-token key, which only a restart with a new key file changes. */
  rotates: boolean;
  created?: string;
  activated?: string;
  retired?: string;
  /** A retired key leaves the JWKS at this time. */
  retireAt?: string;
  /** A next key may become current from this time on (the overlap rule). */
  promotableFrom?: string;
}

export interface RotationResult {
  /** The key that signs from now on (the former next key). */
  current: string;
  /** The key that stopped signing, published until `retireAt`. */
  retired: string;
  retireAt: string;
  /** The key published now, to sign at the following rotation. */
  next: string;
}

/** The handle an admin API uses. */
export interface KeyAdministration {
  list(): KeyInfo[];
  /** Throws KeyRotationTooSoonError (with `retryAt`) under the overlap rule. */
  rotate(actor: string): Promise<RotationResult>;
}

export interface KeyManager extends KeyAdministration {
  readonly cookieKeys: string[];
  /** The private ID-token key, for oidc-provider's `jwks`. */
  readonly idTokenKey: JWK;
  /** The JWKS to publish now (RFC 7517 §5): access-token keys, then the ID-token key. */
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
  retireAfterSeconds: number;
  publishBeforeUseSeconds: number;
  /** Scheduled rotation, or undefined when it is off. */
  rotateEverySeconds: number | undefined;
  logger: Logger;
  /** Milliseconds since the epoch; tests move it. */
  now?: () => number;
}

const iso = (seconds: number | undefined) =>
  seconds === undefined ? undefined : new Date(seconds * 1000).toISOString();

async function importPrivate(key: RingKey, file: string): Promise<CryptoKey> {
  try {
    return (await importJWK(key.jwk, ACCESS_TOKEN_ALG)) as CryptoKey;
  } catch (error) {
    throw new KeyFileError(`${file} is damaged (key ${key.jwk.kid}: ${(error as Error).message})`);
  }
}

/** Loads the keys, making them on first start, migrating format 1, and publishing a next key. */
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
      ring: [
        { jwk: await generateAccessKey(), state: 'current', createdAt: now, activatedAt: now },
        { jwk: await generateAccessKey(), state: 'next', createdAt: now },
      ],
      idTokenKey: (await generateSigningKey(ID_TOKEN_ALG)) as StoredKeys['idTokenKey'],
      cookieKeys: [randomBytes(32).toString('base64url')],
    };
    writeKeyFile(file, stored);
  } else {
    stored = read.keys;
    if (read.migrated || !nextKey(stored.ring)) {
      // A next key from now on, so the first rotation has a key that verifiers already know.
      stored = { ...stored, ring: withNextKey(stored.ring, await generateAccessKey(), nowSeconds()) };
      writeKeyFile(file, stored);
      if (read.migrated)
        logger.info('keys.json moved to format 2: its access-token key signs on as the current key', {
          kid: currentKey(stored.ring).jwk.kid,
          next_kid: nextKey(stored.ring)?.jwk.kid,
        });
    }
  }
  const firstCurrent = currentKey(stored.ring);
  let signer = { kid: firstCurrent.jwk.kid, key: await importPrivate(firstCurrent, file) };
  // Import every key once now, so that a damaged one stops the start rather than a later rotation.
  for (const key of stored.ring) await importPrivate(key, file);

  let verification: { kids: string; getKey: JWTVerifyGetKey } | undefined;
  const published = () => publishedKeys(stored.ring, nowSeconds());

  let queue: Promise<unknown> = Promise.resolve();
  /** One change to the ring at a time: a rotation and a scheduled one never interleave. */
  const serially = <T>(task: () => Promise<T>): Promise<T> => {
    const run = queue.then(task, task);
    queue = run.catch(() => {});
    return run;
  };

  const save = (ring: RingKey[]) => {
    const next = { ...stored, ring };
    writeKeyFile(file, next);
    stored = next;
  };

  async function rotateNow(actor: string): Promise<RotationResult> {
    const now = nowSeconds();
    const retiring = currentKey(stored.ring).jwk.kid;
    try {
      const rotated = rotateRing(stored.ring, await generateAccessKey(), {
        now,
        retireAfterSeconds: options.retireAfterSeconds,
        publishBeforeUseSeconds: options.publishBeforeUseSeconds,
      });
      const key = await importPrivate(rotated.promoted, file);
      // On disk first: the promoted key must not sign a token that a crash could orphan.
      save(rotated.ring);
      signer = { kid: rotated.promoted.jwk.kid, key };
      const result: RotationResult = {
        current: rotated.promoted.jwk.kid,
        retired: rotated.retired.jwk.kid,
        retireAt: iso(rotated.retired.retireAt)!,
        next: rotated.next.jwk.kid,
      };
      logger.audit('keys.rotated', {
        outcome: 'success',
        actor,
        kid_new: result.current,
        kid_retired: result.retired,
        kid_next: result.next,
        retire_at: result.retireAt,
      });
      for (const removed of rotated.removed) logRemoved(removed);
      return result;
    } catch (error) {
      const tooSoon = error instanceof KeyRotationTooSoonError;
      logger.audit('keys.rotated', {
        outcome: tooSoon ? 'denied' : 'failure',
        actor,
        kid_retired: retiring,
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
    const pruned = pruneRing(stored.ring, now);
    if (pruned.removed.length > 0) {
      save(pruned.ring);
      for (const key of pruned.removed) logRemoved(key);
    }
    if (!rotationDue(stored.ring, now, options.rotateEverySeconds)) return;
    // Due, but the next key is too young to sign (a manual rotation just before): wait for it.
    if ((promotableAt(stored.ring, options.publishBeforeUseSeconds) ?? Number.POSITIVE_INFINITY) > now)
      return;
    await rotateNow('schedule');
  }

  const maintain = () => serially(maintainNow);

  return {
    cookieKeys: stored.cookieKeys,
    idTokenKey: stored.idTokenKey,
    jwks: () => ({ keys: [...published().map((key) => publicJwk(key.jwk)), publicJwk(stored.idTokenKey)] }),
    verificationKey: (header, token) => {
      const keys = published().map((key) => publicJwk(key.jwk));
      const kids = keys.map((key) => key.kid).join(' ');
      // One local key set per set of published keys: it keeps its imported keys between tokens.
      if (verification?.kids !== kids) verification = { kids, getKey: createLocalJWKSet({ keys }) };
      return verification.getKey(header, token);
    },
    signingKey: () => signer,
    list: () => {
      const ringInfo = published().map(
        (key): KeyInfo => ({
          kid: key.jwk.kid,
          alg: ACCESS_TOKEN_ALG,
          use: 'access_token',
          state: key.state,
          rotates: true,
          created: iso(key.createdAt)!,
          ...(key.activatedAt !== undefined ? { activated: iso(key.activatedAt)! } : {}),
          ...(key.retiredAt !== undefined ? { retired: iso(key.retiredAt)! } : {}),
          ...(key.retireAt !== undefined ? { retireAt: iso(key.retireAt)! } : {}),
          ...(key.state === 'next'
            ? { promotableFrom: iso(promotableFrom(key.createdAt, options.publishBeforeUseSeconds))! }
            : {}),
        }),
      );
      return [
        ...ringInfo,
        { kid: stored.idTokenKey.kid, alg: ID_TOKEN_ALG, use: 'id_token', state: 'current', rotates: false },
      ];
    },
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

async function generateAccessKey(): Promise<RingKey['jwk']> {
  return (await generateSigningKey(ACCESS_TOKEN_ALG)) as RingKey['jwk'];
}
