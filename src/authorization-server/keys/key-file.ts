/**
 * `<dataDir>/keys.json`: the private signing keys, the state of the access-token key ring and the
 * cookie keys, owner-only (0600) and replaced by an atomic rename, so a crash leaves the old file
 * or the new one, never half of one.
 *
 * Format 2 keeps format 1's fields: `signingKeys` (private JWKs, the current access-token key first
 * and the ID-token key last) and `cookieKeys`, and adds `version` and `accessTokenKeys` (the ring's
 * state by kid). An older Gatehouse started on a format-2 file still finds its keys and signs with
 * the current one. A format-1 file (no `version`) is migrated on read: its ES256 key becomes the
 * current key, so an existing installation keeps every token, ID token and session.
 *
 * Anything else is damage, and the start stops (fail closed): guessing would either mint keys that
 * no verifier knows or end every session.
 */
import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';
import path from 'node:path';
import type { JWK } from 'jose';
import { checkRing, KeyRingError, type KeyState, type RingKey } from './key-ring.ts';
import { ACCESS_TOKEN_ALG, ID_TOKEN_ALG } from './signing-key.ts';

export const KEY_FILE = 'keys.json';
const FORMAT = 2;

export interface StoredKeys {
  /** The access-token signing keys (ES256) and their states. */
  ring: RingKey[];
  /** The ID-token signing key (RS256): handed to oidc-provider at start, not rotated by the ring. */
  idTokenKey: JWK & { kid: string };
  /** oidc-provider's cookie keys (Keygrip: the first signs, all verify); never rotated here. */
  cookieKeys: string[];
}

/** One entry of `accessTokenKeys`, in the file's snake_case. */
interface StoredState {
  kid: string;
  state: KeyState;
  created_at: number;
  activated_at?: number;
  retired_at?: number;
  retire_at?: number;
}

interface KeyFileContents {
  version?: number;
  signingKeys?: unknown;
  cookieKeys?: unknown;
  accessTokenKeys?: unknown;
}

export class KeyFileError extends Error {
  override name = 'KeyFileError';
}

const STATES = new Set<KeyState>(['next', 'current', 'retired']);
const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);
const isTime = (value: unknown): value is number => Number.isSafeInteger(value) && (value as number) >= 0;

function privateJwks(value: unknown): Array<JWK & { kid: string }> {
  if (!Array.isArray(value) || value.length === 0) throw new Error('signingKeys must be a non-empty array');
  for (const jwk of value) {
    if (!isObject(jwk) || typeof jwk.kid !== 'string' || !jwk.kid || typeof jwk.kty !== 'string')
      throw new Error('every signing key needs kty and kid');
    if (typeof jwk.d !== 'string') throw new Error(`signing key ${jwk.kid} has no private part`);
  }
  return value as Array<JWK & { kid: string }>;
}

function cookieKeysOf(value: unknown): string[] {
  if (!Array.isArray(value) || value.length === 0 || !value.every((key) => typeof key === 'string' && key))
    throw new Error('cookieKeys must be a non-empty array of strings');
  return value as string[];
}

function theIdTokenKey(jwks: Array<JWK & { kid: string }>): JWK & { kid: string } {
  const candidates = jwks.filter((jwk) => jwk.alg === ID_TOKEN_ALG);
  if (candidates.length !== 1)
    throw new Error(`expected one ${ID_TOKEN_ALG} key, found ${candidates.length}`);
  return candidates[0]!;
}

function stateOf(value: unknown): StoredState {
  if (!isObject(value) || typeof value.kid !== 'string' || !STATES.has(value.state as KeyState))
    throw new Error('every accessTokenKeys entry needs kid and a state of next, current or retired');
  if (!isTime(value.created_at)) throw new Error(`key ${value.kid} has no created_at`);
  for (const field of ['activated_at', 'retired_at', 'retire_at'] as const) {
    if (value[field] !== undefined && !isTime(value[field]))
      throw new Error(`key ${value.kid}: bad ${field}`);
  }
  return value as unknown as StoredState;
}

/** A format-1 file: the ES256 key signs on as `current`; any other ES256 key is kept as retired. */
function migrate(jwks: Array<JWK & { kid: string }>, now: number, retireAfterSeconds: number): RingKey[] {
  const accessKeys = jwks.filter((jwk) => jwk.alg === ACCESS_TOKEN_ALG);
  if (accessKeys.length === 0) throw new Error(`no ${ACCESS_TOKEN_ALG} signing key`);
  return accessKeys.map((jwk, index) =>
    // The first ES256 key is the one format 1 signed with (createAccessTokenSigner took the first).
    index === 0
      ? { jwk, state: 'current', createdAt: now, activatedAt: now }
      : { jwk, state: 'retired', createdAt: now, retiredAt: now, retireAt: now + retireAfterSeconds },
  );
}

function ringOf(jwks: Array<JWK & { kid: string }>, states: unknown): RingKey[] {
  if (!Array.isArray(states)) throw new Error('accessTokenKeys must be an array');
  const byKid = new Map(jwks.map((jwk) => [jwk.kid, jwk]));
  const ring = states.map(stateOf).map((entry): RingKey => {
    const jwk = byKid.get(entry.kid);
    if (!jwk) throw new Error(`accessTokenKeys names ${entry.kid}, which is not in signingKeys`);
    return {
      jwk,
      state: entry.state,
      createdAt: entry.created_at,
      ...(entry.activated_at !== undefined ? { activatedAt: entry.activated_at } : {}),
      ...(entry.retired_at !== undefined ? { retiredAt: entry.retired_at } : {}),
      ...(entry.retire_at !== undefined ? { retireAt: entry.retire_at } : {}),
    };
  });
  // An ES256 key with no state would be published by nobody and signed with by nobody: damage.
  const listed = new Set(ring.map((key) => key.jwk.kid));
  const orphan = jwks.find((jwk) => jwk.alg === ACCESS_TOKEN_ALG && !listed.has(jwk.kid));
  if (orphan) throw new Error(`signing key ${orphan.kid} has no entry in accessTokenKeys`);
  return ring;
}

export interface ReadOptions {
  /** Seconds since the epoch: the migration's creation and activation time. */
  now: number;
  /** For a format-1 file with more than one ES256 key: how long the extra ones stay published. */
  retireAfterSeconds: number;
}

/**
 * Reads the key file: undefined when there is none, `migrated` when it was format 1 (the caller
 * writes it back). Throws KeyFileError, naming the file, for anything damaged.
 */
export function readKeyFile(
  file: string,
  options: ReadOptions,
): { keys: StoredKeys; migrated: boolean } | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new KeyFileError(`${file} cannot be read: ${(error as Error).message}`);
  }
  try {
    const contents = JSON.parse(text) as KeyFileContents;
    if (!isObject(contents)) throw new Error('not a JSON object');
    if (contents.version !== undefined && contents.version !== FORMAT)
      throw new Error(`format ${String(contents.version)} is not one this version of Gatehouse reads`);
    const jwks = privateJwks(contents.signingKeys);
    const cookieKeys = cookieKeysOf(contents.cookieKeys);
    const idTokenKey = theIdTokenKey(jwks);
    const migrated = contents.version === undefined;
    const ring = migrated
      ? migrate(jwks, options.now, options.retireAfterSeconds)
      : ringOf(jwks, contents.accessTokenKeys);
    checkRing(ring, ACCESS_TOKEN_ALG);
    const known = new Set([...ring.map((key) => key.jwk.kid), idTokenKey.kid]);
    const stray = jwks.find((jwk) => !known.has(jwk.kid));
    if (stray) throw new Error(`signing key ${stray.kid} is neither ${ACCESS_TOKEN_ALG} nor ${ID_TOKEN_ALG}`);
    return { keys: { ring, idTokenKey, cookieKeys }, migrated };
  } catch (error) {
    const reason = error instanceof KeyRingError || error instanceof Error ? error.message : String(error);
    throw new KeyFileError(
      `${file} is damaged (${reason}). Restore it from the backup taken with gatehouse.db; moving it ` +
        'away generates new keys, which ends every session and stops every issued token verifying',
    );
  }
}

function serialize(keys: StoredKeys): string {
  const order: Record<KeyState, number> = { current: 0, next: 1, retired: 2 };
  const ring = [...keys.ring].sort((a, b) => order[a.state] - order[b.state]);
  const states: StoredState[] = ring.map((key) => ({
    kid: key.jwk.kid,
    state: key.state,
    created_at: key.createdAt,
    ...(key.activatedAt !== undefined ? { activated_at: key.activatedAt } : {}),
    ...(key.retiredAt !== undefined ? { retired_at: key.retiredAt } : {}),
    ...(key.retireAt !== undefined ? { retire_at: key.retireAt } : {}),
  }));
  return `${JSON.stringify(
    {
      version: FORMAT,
      // Current first: format 1 (and so an older Gatehouse) signs with the first ES256 key.
      signingKeys: [...ring.map((key) => key.jwk), keys.idTokenKey],
      cookieKeys: keys.cookieKeys,
      accessTokenKeys: states,
    },
    null,
    2,
  )}\n`;
}

/**
 * Writes the key file: a temporary file (0600, created exclusively), flushed to disk, renamed over
 * the old one, and the directory flushed, so the new keys are on disk before anything signs with them.
 */
export function writeKeyFile(file: string, keys: StoredKeys): void {
  const dir = path.dirname(file);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const temporary = `${file}.${process.pid}.${Date.now()}.tmp`;
  try {
    const fd = openSync(temporary, 'wx', 0o600);
    try {
      writeSync(fd, serialize(keys));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temporary, file);
  } catch (error) {
    rmSync(temporary, { force: true });
    throw error;
  }
  try {
    const dirFd = openSync(dir, 'r');
    try {
      fsyncSync(dirFd);
    } finally {
      closeSync(dirFd);
    }
  } catch {
    // Some file systems refuse to open or flush a directory; the rename itself is still atomic.
  }
}
