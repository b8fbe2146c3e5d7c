/**
 * The running authorization server's keys: loads (or first makes) the key set from its store
 * (key-store.ts: `keys.json`, or a sealed row of PostgreSQL shared by every instance), gives the signers
 * the current keys and the JWKS endpoint the published ones, and rotates, prunes and schedules
 * rotations without a restart (key-ring.ts has the rules).
 *
 * Two rings rotate live, together, by one rotation: the ES256 keys that sign phantom and exchanged
 * access tokens (the signer asks for the current key on every token) and the RS256 keys that sign
 * ID tokens (oidc-provider asks for the current key on every ID token, through the slots of
 * id-token-signing.ts). The JWKS is built per request from both. The cookie keys do not rotate:
 * rotating them would end every browser session.
 *
 * Every change is written to the store before it takes effect, so a key never signs a token and is
 * then lost in a crash, and rotations are done one at a time. With a shared store, a change is
 * compare-and-set on the set's version (another instance's change first: read again, decide again),
 * and every instance reloads the set when told (NOTIFY), on each maintenance tick and when its
 * listening connection comes back, so all of them sign with, and publish, the same keys.
 */
import { createPrivateKey, createPublicKey, type JsonWebKey, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { createLocalJWKSet, importJWK, type JWK, type JWTVerifyGetKey } from 'jose';
import type { Logger } from '../../shared/logging.ts';
import type { IdTokenKey } from './id-token-signing.ts';
import { KEY_FILE, KeyFileError, type StoredKeys } from './key-file.ts';
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
import { fileKeyStore, type KeyStore } from './key-store.ts';
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
  /** Stops the schedule and watching the store. */
  close(): Promise<void>;
  /**
   * For /readyz: false once the shared key set was replaced under this instance (its row deleted
   * and made anew): the new signing keys are taken at once, but the cookie keys, and the keys
   * derived from them at start, only at a restart, so until then this instance must not serve.
   */
  check(): { ok: boolean; error?: string };
}

export interface KeyManagerOptions {
  /** Where keys.json is: the store without `store`, the keys a shared store starts with otherwise. */
  dataDir: string;
  /** Where the keys live (key-store.ts); absent, keys.json in `dataDir`. */
  store?: KeyStore;
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

const damaged = (where: string, key: RingKey, error: unknown) =>
  new KeyFileError(`${where} is damaged (key ${key.jwk.kid}: ${(error as Error).message})`);

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

/** A first start's keys: a current and a next key in each ring, and a cookie key. */
async function freshKeys(now: number): Promise<StoredKeys> {
  return {
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
}

/** How often a write refused for a conflict (another instance wrote first) is tried again. */
const WRITE_ATTEMPTS = 5;

/**
 * Loads the keys, making them on first start, migrating older files, and publishing next keys.
 * With a shared store (PostgreSQL), the data directory's keys.json, if any, is what the first
 * instance puts there; every instance then follows the store.
 */
export async function createKeyManager(options: KeyManagerOptions): Promise<KeyManager> {
  const localStore = fileKeyStore(options.dataDir);
  const store = options.store ?? localStore;
  const where = store.description;
  const clock = options.now ?? (() => Date.now());
  const nowSeconds = () => Math.floor(clock() / 1000);
  const readOptions = () => ({ now: nowSeconds(), retireAfterSeconds: options.retireAfterSeconds });
  const { logger } = options;

  let first = await store.read(readOptions());
  if (!first) {
    // Insert-if-absent, then read what is there: of instances starting together, one key set wins.
    const imported = store === localStore ? undefined : await localStore.read(readOptions());
    const wrote = await store.write(imported?.keys ?? (await freshKeys(nowSeconds())), 0);
    first = await store.read(readOptions());
    if (!first) throw new KeyFileError(`${where}: the keys just written cannot be read back`);
    if (wrote.ok && imported)
      logger.info(`keys.json of the data directory imported into ${where}`, {
        kid: currentKey(first.keys.accessTokenRing).jwk.kid,
      });
  } else if (store !== localStore && existsSync(path.join(options.dataDir, KEY_FILE))) {
    logger.info(`keys.json of the data directory is not used: the keys are in ${where}`);
  }

  /** The key set this instance signs with, and the version it was read at. */
  let state = { keys: first.keys, version: first.version };
  /** The keys as CryptoKey / node:crypto objects, by kid: made once, when a key is first seen. */
  let accessKeyObjects = new Map<string, CryptoKey>();
  let idTokenKeyObjects = new Map<string, IdTokenKey>();
  let signer: { kid: string; key: CryptoKey };

  /**
   * Takes a key set as this instance's: every key imported first, so a damaged one stops the start
   * (or a reload) rather than a later rotation; then all of it at once, so nothing sees half.
   */
  async function adopt(next: { keys: StoredKeys; version: number }): Promise<void> {
    const access = new Map<string, CryptoKey>();
    for (const key of next.keys.accessTokenRing)
      access.set(key.jwk.kid, accessKeyObjects.get(key.jwk.kid) ?? (await importPrivate(key, where)));
    const id = new Map(
      next.keys.idTokenRing.map((key) => [
        key.jwk.kid,
        idTokenKeyObjects.get(key.jwk.kid) ?? idTokenKeyOf(key, where),
      ]),
    );
    const current = currentKey(next.keys.accessTokenRing).jwk.kid;
    state = next;
    accessKeyObjects = access;
    idTokenKeyObjects = id;
    signer = { kid: current, key: access.get(current)! };
  }
  await adopt(state);

  const startCookieKeys = JSON.stringify(state.keys.cookieKeys);
  let replaced = false;

  /** Reads the store again and takes what another instance wrote meanwhile. */
  async function reload(): Promise<void> {
    const latest = await store.read(readOptions());
    if (!latest) throw new KeyFileError(`${where}: the key set is gone; restore it from the backup`);
    // The version alone is not enough: a row deleted and made anew starts again at version 1.
    const sameKeys = JSON.stringify(latest.keys) === JSON.stringify(state.keys);
    if (latest.version === state.version && sameKeys) return;
    if (JSON.stringify(latest.keys.cookieKeys) !== startCookieKeys && !replaced) {
      replaced = true;
      logger.error(
        'the key set in the store was replaced (new cookie keys): this instance takes the new signing keys, reports not ready, and needs a restart for the rest',
        {},
      );
    }
    const before = signer.kid;
    await adopt(latest);
    logger.info('signing keys reloaded: another instance changed them', {
      kid: signer.kid,
      ...(before !== signer.kid ? { kid_before: before } : {}),
    });
  }

  /**
   * One change to the key set: `propose` makes it from the set now (undefined: nothing to do), the
   * store takes it if nobody changed the set meanwhile, and only then does it take effect (a key must
   * not sign a token that a crash could orphan). On a conflict, read again and propose again.
   */
  async function change<T>(
    propose: (keys: StoredKeys, now: number) => Promise<{ keys: StoredKeys; result: T } | undefined>,
  ): Promise<T | undefined> {
    for (let attempt = 1; ; attempt++) {
      const proposed = await propose(state.keys, nowSeconds());
      if (!proposed) return undefined;
      const wrote = await store.write(proposed.keys, state.version);
      if (wrote.ok) {
        await adopt({ keys: proposed.keys, version: wrote.version });
        return proposed.result;
      }
      if (attempt >= WRITE_ATTEMPTS)
        throw new Error(`${where}: the key set kept changing under this instance; try again`);
      await reload();
    }
  }

  let verification: { kids: string; getKey: JWTVerifyGetKey } | undefined;
  const published = (ring: readonly RingKey[]) => publishedKeys(ring, nowSeconds());

  let queue: Promise<unknown> = Promise.resolve();
  /** One change to the rings at a time: a rotation and a scheduled one never interleave. */
  const serially = <T>(task: () => Promise<T>): Promise<T> => {
    const run = queue.then(task, task);
    queue = run.catch(() => {});
    return run;
  };

  // A next key in each ring from now on, so the first rotation has keys verifiers already know.
  const needsNext = (keys: StoredKeys) => !nextKey(keys.accessTokenRing) || !nextKey(keys.idTokenRing);
  if (first.migrated || needsNext(state.keys)) {
    await change(async (keys, now) =>
      first.migrated || needsNext(keys)
        ? {
            keys: {
              ...keys,
              accessTokenRing: withNextKey(keys.accessTokenRing, await generateKey(ACCESS_TOKEN_ALG), now),
              idTokenRing: withNextKey(keys.idTokenRing, await generateKey(ID_TOKEN_ALG), now),
            },
            result: undefined,
          }
        : undefined,
    );
    if (first.migrated)
      logger.info('keys.json migrated: its access-token and ID-token keys sign on as the current keys', {
        kid: currentKey(state.keys.accessTokenRing).jwk.kid,
        next_kid: nextKey(state.keys.accessTokenRing)?.jwk.kid,
        id_token_kid: currentKey(state.keys.idTokenRing).jwk.kid,
        id_token_next_kid: nextKey(state.keys.idTokenRing)?.jwk.kid,
      });
  }

  const ringRotation = (rotated: ReturnType<typeof rotateRing>): RingRotation => ({
    current: rotated.promoted.jwk.kid,
    retired: rotated.retired.jwk.kid,
    retireAt: iso(rotated.retired.retireAt)!,
    next: rotated.next.jwk.kid,
  });

  const rotationIsDue = (keys: StoredKeys, now: number) => {
    const due =
      rotationDue(keys.accessTokenRing, now, options.rotateEverySeconds) ||
      rotationDue(keys.idTokenRing, now, options.rotateEverySeconds);
    // Due, but a next key is too young to sign (a manual rotation just before): wait for it.
    const promotable = [keys.accessTokenRing, keys.idTokenRing].map(
      (ring) => promotableAt(ring, options.publishBeforeUseSeconds) ?? Number.POSITIVE_INFINITY,
    );
    return due && Math.max(...promotable) <= now;
  };

  /** Rotates both rings; `scheduled`: only while still due (another instance may have rotated). */
  async function rotateNow(actor: string, scheduled = false): Promise<RotationResult | undefined> {
    const retiring = currentKey(state.keys.accessTokenRing).jwk.kid;
    const idRetiring = currentKey(state.keys.idTokenRing).jwk.kid;
    try {
      const rotated = await change(async (keys, now) => {
        if (scheduled && !rotationIsDue(keys, now)) return undefined;
        // The overlap rule for both rings before either changes: one rotation moves both or neither.
        const allowedAt = Math.max(
          promotableAt(keys.accessTokenRing, options.publishBeforeUseSeconds) ?? 0,
          promotableAt(keys.idTokenRing, options.publishBeforeUseSeconds) ?? 0,
        );
        if (allowedAt > now)
          throw new KeyRotationTooSoonError(
            `the next keys may sign only ${options.publishBeforeUseSeconds} s after they were published ` +
              '(keys.publishBeforeUseSeconds)',
            allowedAt,
          );
        const timing = { now, publishBeforeUseSeconds: options.publishBeforeUseSeconds };
        const access = rotateRing(keys.accessTokenRing, await generateKey(ACCESS_TOKEN_ALG), {
          ...timing,
          retireAfterSeconds: options.retireAfterSeconds,
        });
        const id = rotateRing(keys.idTokenRing, await generateKey(ID_TOKEN_ALG), {
          ...timing,
          retireAfterSeconds: options.idTokenRetireAfterSeconds,
        });
        // Checked before anything is written: a key that does not import must not be stored.
        await importPrivate(access.promoted, where);
        idTokenKeyOf(id.next, where);
        return {
          keys: { ...keys, accessTokenRing: access.ring, idTokenRing: id.ring },
          result: {
            rotation: { ...ringRotation(access), idToken: ringRotation(id) } satisfies RotationResult,
            removed: [...access.removed, ...id.removed],
          },
        };
      });
      if (!rotated) return undefined;
      const result = rotated.rotation;
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
      for (const removed of rotated.removed) logRemoved(removed);
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
    // First what other instances did: a missed notification heals here, within a tick.
    if (store.shared) await reload();
    const removed = await change(async (keys, now) => {
      const access = pruneRing(keys.accessTokenRing, now);
      const id = pruneRing(keys.idTokenRing, now);
      if (access.removed.length === 0 && id.removed.length === 0) return undefined;
      return {
        keys: { ...keys, accessTokenRing: access.ring, idTokenRing: id.ring },
        result: [...access.removed, ...id.removed],
      };
    });
    for (const key of removed ?? []) logRemoved(key);
    if (rotationIsDue(state.keys, nowSeconds())) await rotateNow('schedule', true);
  }

  const maintain = () => serially(maintainNow);

  const stopWatching = await store.watch(() => {
    serially(reload).catch((error: unknown) =>
      logger.error('the signing keys were not reloaded', { error: (error as Error).message }),
    );
  });
  let stopSchedule = () => {};

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
    // Never rotated, so what every instance read at start stays right (a replaced set: check()).
    cookieKeys: state.keys.cookieKeys,
    check: () =>
      replaced
        ? {
            ok: false,
            error: 'the key set in the store was replaced since this instance started: restart it',
          }
        : { ok: true },
    idTokenKeys: () =>
      published(state.keys.idTokenRing)
        .filter((key) => key.state !== 'next')
        .map((key) => idTokenKeyObjects.get(key.jwk.kid)!),
    jwks: () => ({
      keys: [...published(state.keys.accessTokenRing), ...published(state.keys.idTokenRing)].map((key) =>
        publicJwk(key.jwk),
      ),
    }),
    verificationKey: (header, token) => {
      const keys = published(state.keys.accessTokenRing).map((key) => publicJwk(key.jwk));
      const kids = keys.map((key) => key.kid).join(' ');
      // One local key set per set of published keys: it keeps its imported keys between tokens.
      if (verification?.kids !== kids) verification = { kids, getKey: createLocalJWKSet({ keys }) };
      return verification.getKey(header, token);
    },
    signingKey: () => signer,
    list: () => [
      ...published(state.keys.accessTokenRing).map(info('access_token', ACCESS_TOKEN_ALG)),
      ...published(state.keys.idTokenRing).map(info('id_token', ID_TOKEN_ALG)),
    ],
    rotate: (actor) => serially(async () => (await rotateNow(actor))!),
    maintain,
    startSchedule(intervalMs = 60_000) {
      const timer = setInterval(() => {
        maintain().catch((error: unknown) => {
          if (error instanceof KeyRotationTooSoonError) return;
          logger.error('key maintenance failed', { error: (error as Error).message });
        });
      }, intervalMs);
      timer.unref();
      stopSchedule = () => clearInterval(timer);
      return stopSchedule;
    },
    async close() {
      stopSchedule();
      await stopWatching();
    },
  };
}

async function generateKey(alg: typeof ACCESS_TOKEN_ALG | typeof ID_TOKEN_ALG): Promise<RingKey['jwk']> {
  return (await generateSigningKey(alg)) as RingKey['jwk'];
}
