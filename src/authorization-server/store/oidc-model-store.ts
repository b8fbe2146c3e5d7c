/**
 * oidc-provider's models (clients, grants, sessions, codes, tokens, replay `jti`s) as the
 * authorization server stores them, behind one asynchronous interface with two implementations:
 * SQLite (sqlite-store.ts, one machine) and PostgreSQL (postgres/postgres-oidc-store.ts, shared by
 * every instance). Both follow oidc-provider's reference adapter
 * (node_modules/oidc-provider/lib/adapters/memory_adapter.js), and one contract suite
 * (oidc-model-store.test.ts) runs against each.
 */
import { type Adapter, errors } from 'oidc-provider';

/** A dynamically registered client as stored: its metadata and bookkeeping times (milliseconds). */
export interface StoredClient {
  metadata: Record<string, unknown>;
  createdAt: number;
  lastUsedAt: number | undefined;
}

export interface OidcModelStore {
  /** The `adapter` factory of the provider configuration. */
  adapter(model: string): Adapter;
  /** Stamps a stored client's last use; writes at most once a minute per client. */
  recordClientUse(clientId: string): Promise<void>;
  /** Deletes stored clients unused for that long, with every row of theirs; returns their ids. */
  removeUnusedClients(unusedForSeconds: number): Promise<string[]>;
  /** Deletes a removed client's grants, tokens, codes and registration access tokens (and its row). */
  removeClientRows(clientId: string): Promise<number>;
  /** Deletes a client's grants, tokens and codes, keeping its registration (a disabled client). */
  removeClientTokens(clientId: string): Promise<number>;
  /** Ends every browser session of a subject ("sign out everywhere"); returns how many. */
  removeSessionsOf(sub: string): Promise<number>;
  /** Every client registered through DCR (RFC 7591), newest first. */
  listStoredClients(): Promise<StoredClient[]>;
  /** For metrics: the live (unexpired) rows of each model. */
  countLiveRows(models: readonly string[]): Promise<Record<string, number>>;
  /** Deletes rows past their expiry (find already hides them); returns how many. */
  purgeExpired(): Promise<number>;
}

/**
 * oidc-provider's default `clockTolerance` (seconds, lib/helpers/defaults.js). Must equal the provider's.
 * The memory adapter keeps rows that long past their TTL, and it matters: ReplayDetection saves a JWT's
 * jti with ttl = exp - now, but the provider accepts that JWT until exp + clockTolerance, so forgetting
 * the jti at exp would reopen a replay window.
 */
/**
 * oidc-provider's replay check (ReplayDetection.unique) is a `find`, then a save when nothing was
 * found. Two checks of one `jti` at once (the same client assertion or DPoP proof sent twice, to one
 * instance or two) could both find nothing and both pass (RFC 7523 §3, RFC 9449 §11.1). So each
 * store's `find` for ReplayDetection claims the `jti` in the same step: a live row means seen;
 * otherwise the row is the caller's, kept this long until the save that follows gives it its real
 * expiry (this only lasts if the process dies in between, and then the request failed anyway).
 */
export const REPLAY_MODEL = 'ReplayDetection';
export const REPLAY_CLAIM_MS = 60 * 60 * 1000;

export const DEFAULT_CLOCK_TOLERANCE_SECONDS = 15;

/** Our marker on a consumed refresh token's payload: when its one grace use happened (epoch s). */
export const GRACE_USED = 'graceUsedAt';

/**
 * Both stores' adapter for RefreshToken also has this: the rotation of tokens/refresh-grace.ts in
 * one conditional statement, so that concurrent refreshes with one token (at one instance or
 * several) cannot all pass a check made before any of them wrote. It consumes the token when
 * unconsumed (`consumed` = now); else, once only, when it was first consumed at or after
 * `firstUsedSince` (epoch seconds), it records the grace use (GRACE_USED = now) and keeps the first
 * consumption time. True when it did either; false when the token is spent, gone or unknown.
 */
export interface GraceConsumable {
  consumeWithGrace(id: string, firstUsedSince: number, now: number): Promise<boolean>;
}

/** recordClientUse writes a given client's last_used_at at most this often (milliseconds). */
export const CLIENT_USE_WRITE_INTERVAL_MS = 60_000;

/**
 * Models whose rows carry a grantId and die with their grant. Same set as the memory adapter's
 * `grantable`, plus ClientCredentials in case a future version gives those a grantId. The Grant
 * row itself is not here: oidc-provider destroys it separately (lib/helpers/revoke.js).
 */
export const GRANTABLE_MODELS = [
  'AccessToken',
  'AuthorizationCode',
  'RefreshToken',
  'DeviceCode',
  'BackchannelAuthenticationRequest',
  'PreAuthorizedCode',
  'ClientCredentials',
] as const;

export const GRANTABLE = new Set<string>(GRANTABLE_MODELS);

/** The indexed columns derived from a payload, shared by both stores so they index the same rows. */
export function indexedColumns(
  model: string,
  payload: Record<string, unknown>,
  expiresIn: number | undefined,
  toleranceMs: number,
  now: number,
): {
  expiresAt: number | null;
  uid: string | null;
  grantId: string | null;
  userCode: string | null;
  clientId: string | null;
  consumedAt: number | null;
} {
  // expiresIn is in seconds, undefined for rows that live until destroyed (Client, some Grants).
  const expiresAt =
    typeof expiresIn === 'number' && Number.isFinite(expiresIn)
      ? now + Math.round(expiresIn * 1000 + toleranceMs)
      : null;
  const consumed = payload.consumed;
  return {
    expiresAt,
    // The memory adapter indexes uid for Session only (the only findByUid caller) and grantId for grantable models only.
    uid: model === 'Session' ? stringOrNull(payload.uid) : null,
    grantId: GRANTABLE.has(model) ? stringOrNull(payload.grantId) : null,
    userCode: stringOrNull(payload.userCode),
    clientId: stringOrNull(payload.clientId),
    consumedAt:
      typeof consumed === 'number' && Number.isFinite(consumed)
        ? Math.round(consumed * 1000)
        : consumed
          ? now
          : null,
  };
}

function stringOrNull(value: unknown): string | null {
  return typeof value === 'string' && value !== '' ? value : null;
}

/** A bounded memory of when each client's use was last written (recordClientUse's throttle). */
export function clientUseThrottle(): {
  due(clientId: string, now: number): boolean;
  forget(clientId: string): void;
} {
  const lastWrite = new Map<string, number>();
  return {
    due(clientId, now) {
      const last = lastWrite.get(clientId);
      if (last !== undefined && now - last < CLIENT_USE_WRITE_INTERVAL_MS) return false;
      // Bound the throttle's memory; forgetting it only costs one extra UPDATE per client.
      if (lastWrite.size >= 10_000) lastWrite.clear();
      lastWrite.set(clientId, now);
      return true;
    },
    forget: (clientId) => {
      lastWrite.delete(clientId);
    },
  };
}

/**
 * Models whose consumption must happen once only: the grant sources (RFC 6749 §4.1.2: an
 * authorization code is used once; RFC 8628 §3.5 and OpenID CIBA likewise). oidc-provider checks
 * `consumed` on the row it read and then consumes it, so two redemptions at the same moment (two
 * requests of one process, or two instances on one database) could both pass the check. The
 * stores consume these with one conditional statement, and the loser gets invalid_grant (RFC 6749
 * §5.2). Refresh tokens are not here: their rotation has a grace use (tokens/refresh-grace.ts).
 */
export const CONSUMED_ONCE = new Set<string>([
  'AuthorizationCode',
  'DeviceCode',
  'BackchannelAuthenticationRequest',
]);

/** The answer to a second consumption of a CONSUMED_ONCE row (or of one gone meanwhile). */
export function alreadyConsumed(model: string): Error {
  return new errors.InvalidGrant(
    `${model === 'AuthorizationCode' ? 'authorization code' : 'grant'} already consumed`,
  );
}
