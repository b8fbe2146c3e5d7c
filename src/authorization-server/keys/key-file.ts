/**
 * `<dataDir>/keys.json`: the private signing keys, the state of the two key rings (ES256 access-token
 * keys, RS256 ID-token keys) and the cookie keys, owner-only (0600) and replaced by an atomic
 * rename, so a crash leaves the old file or the new one, never half of one.
 *
 * Format 2 keeps format 1's fields: `signingKeys` (private JWKs, the current access-token key first
 * and the current ID-token key last) and `cookieKeys`, and adds `version` and `accessTokenKeys`
 * (the access ring's state by kid). The ID-token ring came later, in two optional fields, so that the
 * format did not change: `idTokenKeys` (its state by kid, as `accessTokenKeys`) and
 * `idTokenRingKeys` (the private JWKs of its keys other than the current one, which stays in
 * `signingKeys`). A Gatehouse from before the ID-token ring reads exactly one RS256 key in
 * `signingKeys` and refuses any other, so it still starts on such a file and signs with the current
 * keys; it writes the file back without the two fields, and the next start migrates again (below),
 * which loses only the ID ring's retired and next keys.
 *
 * Migrations on read, so an existing installation keeps every token, ID token and session:
 * - format 1 (no `version`): its ES256 key becomes the current access-token key;
 * - format 1, or format 2 without `idTokenKeys`: its one RS256 key becomes the current ID-token key.
 * The caller publishes a next key in each ring and writes the file back.
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
import { checkRing, currentKey, KeyRingError, type KeyState, type RingKey } from './key-ring.ts';
import { ACCESS_TOKEN_ALG, ID_TOKEN_ALG } from './signing-key.ts';

export const KEY_FILE = 'keys.json';
const FORMAT = 2;

export interface StoredKeys {
  /** The access-token signing keys (ES256) and their states. */
  accessTokenRing: RingKey[];
  /** The ID-token signing keys (RS256) and their states: the same rules (key-ring.ts). */
  idTokenRing: RingKey[];
  /** oidc-provider's cookie keys (Keygrip: the first signs, all verify); never rotated here. */
  cookieKeys: string[];
}

/** One entry of `accessTokenKeys` or `idTokenKeys`, in the file's snake_case. */
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
  idTokenKeys?: unknown;
  idTokenRingKeys?: unknown;
}

export class KeyFileError extends Error {
  override name = 'KeyFileError';
}

const STATES = new Set<KeyState>(['next', 'current', 'retired']);
const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);
const isTime = (value: unknown): value is number => Number.isSafeInteger(value) && (value as number) >= 0;

type PrivateJwk = JWK & { kid: string };

function privateJwks(value: unknown, field = 'signingKeys', empty = false): PrivateJwk[] {
  if (!Array.isArray(value) || (value.length === 0 && !empty))
    throw new Error(`${field} must be a${empty ? 'n' : ' non-empty'} array`);
  for (const jwk of value) {
    if (!isObject(jwk) || typeof jwk.kid !== 'string' || !jwk.kid || typeof jwk.kty !== 'string')
      throw new Error('every signing key needs kty and kid');
    if (typeof jwk.d !== 'string') throw new Error(`signing key ${jwk.kid} has no private part`);
  }
  return value as PrivateJwk[];
}

function cookieKeysOf(value: unknown): string[] {
  if (!Array.isArray(value) || value.length === 0 || !value.every((key) => typeof key === 'string' && key))
    throw new Error('cookieKeys must be a non-empty array of strings');
  return value as string[];
}

/** The one RS256 key of `signingKeys`: format 1's ID-token key, format 2's current one. */
function theIdTokenKey(jwks: PrivateJwk[]): PrivateJwk {
  const candidates = jwks.filter((jwk) => jwk.alg === ID_TOKEN_ALG);
  if (candidates.length !== 1)
    throw new Error(`expected one ${ID_TOKEN_ALG} key, found ${candidates.length}`);
  return candidates[0]!;
}

function stateOf(value: unknown, field: string): StoredState {
  if (!isObject(value) || typeof value.kid !== 'string' || !STATES.has(value.state as KeyState))
    throw new Error(`every ${field} entry needs kid and a state of next, current or retired`);
  if (!isTime(value.created_at)) throw new Error(`key ${value.kid} has no created_at`);
  for (const field of ['activated_at', 'retired_at', 'retire_at'] as const) {
    if (value[field] !== undefined && !isTime(value[field]))
      throw new Error(`key ${value.kid}: bad ${field}`);
  }
  return value as unknown as StoredState;
}

/** A format-1 file: the ES256 key signs on as `current`; any other ES256 key is kept as retired. */
function migrate(jwks: PrivateJwk[], now: number, retireAfterSeconds: number): RingKey[] {
  const accessKeys = jwks.filter((jwk) => jwk.alg === ACCESS_TOKEN_ALG);
  if (accessKeys.length === 0) throw new Error(`no ${ACCESS_TOKEN_ALG} signing key`);
  return accessKeys.map((jwk, index) =>
    // The first ES256 key is the one format 1 signed with (createAccessTokenSigner took the first).
    index === 0
      ? { jwk, state: 'current', createdAt: now, activatedAt: now }
      : { jwk, state: 'retired', createdAt: now, retiredAt: now, retireAt: now + retireAfterSeconds },
  );
}

/** A file from before the ID-token ring: its one RS256 key signs on as the current ID-token key. */
function migrateIdTokenKey(jwk: PrivateJwk, now: number): RingKey[] {
  // Its real creation time is unknown; from now on is what the schedule and the console need.
  return [{ jwk, state: 'current', createdAt: now, activatedAt: now }];
}

/** The ring `field` describes, of the keys of `alg` in `jwks`; each of them must have a state. */
function ringOf(jwks: PrivateJwk[], states: unknown, alg: string, field: string): RingKey[] {
  if (!Array.isArray(states)) throw new Error(`${field} must be an array`);
  const byKid = new Map(jwks.map((jwk) => [jwk.kid, jwk]));
  const ring = states
    .map((state) => stateOf(state, field))
    .map((entry): RingKey => {
      const jwk = byKid.get(entry.kid);
      if (!jwk) throw new Error(`${field} names ${entry.kid}, which is not in the file's keys`);
      return {
        jwk,
        state: entry.state,
        createdAt: entry.created_at,
        ...(entry.activated_at !== undefined ? { activatedAt: entry.activated_at } : {}),
        ...(entry.retired_at !== undefined ? { retiredAt: entry.retired_at } : {}),
        ...(entry.retire_at !== undefined ? { retireAt: entry.retire_at } : {}),
      };
    });
  // A key of the ring's algorithm with no state would be published by nobody and signed with by
  // nobody: damage.
  const listed = new Set(ring.map((key) => key.jwk.kid));
  const orphan = jwks.find((jwk) => jwk.alg === alg && !listed.has(jwk.kid));
  if (orphan) throw new Error(`signing key ${orphan.kid} has no entry in ${field}`);
  return ring;
}

export interface ReadOptions {
  /** Seconds since the epoch: the migration's creation and activation time. */
  now: number;
  /** For a format-1 file with more than one ES256 key: how long the extra ones stay published. */
  retireAfterSeconds: number;
}

/** The parsed key set, and whether it came in an older format (the caller writes it back). */
export interface ParsedKeys {
  keys: StoredKeys;
  migrated: boolean;
}

/**
 * Parses a key set in the file's JSON (the same text goes to `keys.json` or to a PostgreSQL row,
 * keys/key-store.ts). `where` names it in the error: anything damaged throws KeyFileError.
 */
export function parseKeySet(text: string, options: ReadOptions, where: string): ParsedKeys {
  try {
    const contents = JSON.parse(text) as KeyFileContents;
    if (!isObject(contents)) throw new Error('not a JSON object');
    if (contents.version !== undefined && contents.version !== FORMAT)
      throw new Error(`format ${String(contents.version)} is not one this version of Gatehouse reads`);
    const jwks = privateJwks(contents.signingKeys);
    const cookieKeys = cookieKeysOf(contents.cookieKeys);
    const idTokenKey = theIdTokenKey(jwks);
    const formatOne = contents.version === undefined;
    const accessTokenRing = formatOne
      ? migrate(jwks, options.now, options.retireAfterSeconds)
      : ringOf(jwks, contents.accessTokenKeys, ACCESS_TOKEN_ALG, 'accessTokenKeys');
    checkRing(accessTokenRing, ACCESS_TOKEN_ALG);
    const known = new Set([...accessTokenRing.map((key) => key.jwk.kid), idTokenKey.kid]);
    const stray = jwks.find((jwk) => !known.has(jwk.kid));
    if (stray) throw new Error(`signing key ${stray.kid} is neither ${ACCESS_TOKEN_ALG} nor ${ID_TOKEN_ALG}`);

    const hasIdRing = !formatOne && contents.idTokenKeys !== undefined;
    if (!hasIdRing && contents.idTokenRingKeys !== undefined)
      throw new Error('idTokenRingKeys without idTokenKeys');
    let idTokenRing: RingKey[];
    if (hasIdRing) {
      const others = privateJwks(contents.idTokenRingKeys ?? [], 'idTokenRingKeys', true);
      const twice = others.find((jwk, index) =>
        [idTokenKey, ...others.slice(0, index)].some((k) => k.kid === jwk.kid),
      );
      if (twice) throw new Error(`signing key ${twice.kid} appears twice`);
      idTokenRing = ringOf([idTokenKey, ...others], contents.idTokenKeys, ID_TOKEN_ALG, 'idTokenKeys');
      checkRing(idTokenRing, ID_TOKEN_ALG);
      // The RS256 key in signingKeys is the one a Gatehouse from before the ring signs with.
      if (currentKey(idTokenRing).jwk.kid !== idTokenKey.kid)
        throw new Error(`the RS256 key in signingKeys (${idTokenKey.kid}) is not the current ID-token key`);
      const listed = new Set(idTokenRing.map((key) => key.jwk.kid));
      const unlisted = others.find((jwk) => !listed.has(jwk.kid));
      if (unlisted) throw new Error(`signing key ${unlisted.kid} has no entry in idTokenKeys`);
    } else {
      idTokenRing = migrateIdTokenKey(idTokenKey, options.now);
    }
    // One JWKS carries both rings: a kid must name one key (RFC 7517 §4.5).
    const shared = idTokenRing.find((key) => known.has(key.jwk.kid) && key.jwk.kid !== idTokenKey.kid);
    if (shared) throw new Error(`kid ${shared.jwk.kid} is in both rings`);
    return { keys: { accessTokenRing, idTokenRing, cookieKeys }, migrated: !hasIdRing };
  } catch (error) {
    const reason = error instanceof KeyRingError || error instanceof Error ? error.message : String(error);
    throw new KeyFileError(
      `${where} is damaged (${reason}). Restore it from the backup taken with the database; removing ` +
        'it generates new keys, which ends every session and stops every issued token verifying',
    );
  }
}

/**
 * Reads the key file: undefined when there is none, `migrated` when it was format 1 or had no
 * ID-token ring (the caller writes it back). Throws KeyFileError, naming the file, for anything
 * damaged.
 */
export function readKeyFile(file: string, options: ReadOptions): ParsedKeys | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new KeyFileError(`${file} cannot be read: ${(error as Error).message}`);
  }
  return parseKeySet(text, options, file);
}

const ORDER: Record<KeyState, number> = { current: 0, next: 1, retired: 2 };
const sorted = (ring: readonly RingKey[]) => [...ring].sort((a, b) => ORDER[a.state] - ORDER[b.state]);

function statesOf(ring: readonly RingKey[]): StoredState[] {
  return ring.map((key) => ({
    kid: key.jwk.kid,
    state: key.state,
    created_at: key.createdAt,
    ...(key.activatedAt !== undefined ? { activated_at: key.activatedAt } : {}),
    ...(key.retiredAt !== undefined ? { retired_at: key.retiredAt } : {}),
    ...(key.retireAt !== undefined ? { retire_at: key.retireAt } : {}),
  }));
}

/** The key set as the file's JSON (format 2), for `keys.json` or a PostgreSQL row. */
export function serializeKeySet(keys: StoredKeys): string {
  const access = sorted(keys.accessTokenRing);
  const id = sorted(keys.idTokenRing);
  const [idCurrent, ...idOthers] = id;
  return `${JSON.stringify(
    {
      version: FORMAT,
      // Current first: format 1 (and so an older Gatehouse) signs with the first ES256 key. The
      // current ID-token key last and alone of its algorithm: a Gatehouse from before the ID-token
      // ring takes the one RS256 key here, and refuses a file with two.
      signingKeys: [...access.map((key) => key.jwk), idCurrent!.jwk],
      cookieKeys: keys.cookieKeys,
      accessTokenKeys: statesOf(access),
      idTokenKeys: statesOf(id),
      idTokenRingKeys: idOthers.map((key) => key.jwk),
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
      writeSync(fd, serializeKeySet(keys));
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
