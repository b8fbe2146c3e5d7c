/**
 * Who gets refresh tokens (`refreshTokens` in the configuration), decided in one place for the
 * token endpoint (provider.ts, issueRefreshToken), the registration policy (the grant types a
 * self-registered client keeps, so that its registration response says exactly what it was given:
 * RFC 7591 §3.2.1), pre-registered clients' metadata and the server's own metadata (RFC 8414
 * `grant_types_supported`: never a grant no client can get).
 *
 * A client must authenticate at the token endpoint (RFC 6749 §2.1 confidential) unless
 * `publicClients`: a public client's refresh token can be used by whoever copies it, and rotation
 * with reuse detection (RFC 9700 §4.14.2) is then its only protection. Each token's lifetime ends
 * at the absolute lifetime counted from the sign-in (oidc-provider's `iiat`, kept across rotations),
 * so a user signs in again at least that often whatever the client does.
 */
import type { Adapter } from 'oidc-provider';
import type { AuthorizationServerConfig } from '../../shared/config/schema.ts';
import type { ClientKind } from '../clients/client-classification.ts';

export type RefreshTokenPolicy = AuthorizationServerConfig['refreshTokens'];

/** Whether a client of this kind, authenticating with `authMethod`, may hold refresh tokens. */
export function mayHoldRefreshTokens(
  policy: RefreshTokenPolicy,
  kind: ClientKind,
  authMethod: string,
): boolean {
  if (!policy.enabled) return false;
  const byKind = {
    'pre-registered': policy.clients.preRegistered,
    dynamic: policy.clients.dynamic,
    cimd: policy.clients.cimd,
  };
  return byKind[kind] && (authMethod !== 'none' || policy.clients.publicClients);
}

/** Whether any client at all may: the server advertises the grant only then. */
export function anyRefreshTokens(policy: RefreshTokenPolicy): boolean {
  const { preRegistered, dynamic, cimd } = policy.clients;
  return policy.enabled && (preRegistered || dynamic || cimd);
}

/**
 * Seconds a new refresh token lives: `ttlSeconds`, cut at the absolute lifetime from `iiat` (the
 * first token's issue time, epoch seconds). At least 1: a rotation happens only with a live token,
 * so before the absolute end.
 */
export function refreshTokenTtl(policy: RefreshTokenPolicy, iiat: number | undefined, now: number): number {
  const start = typeof iiat === 'number' && Number.isFinite(iiat) ? iiat : now;
  return Math.max(1, Math.min(policy.ttlSeconds, start + policy.absoluteLifetimeSeconds - now));
}

/**
 * Seconds an access token issued with a refresh token's grant lives: its own lifetime, cut at the
 * sign-in's absolute end, so that no token of a sign-in outlives it. `iiat` is the refresh token's.
 */
export function accessTokenTtlWithinSignIn(
  policy: RefreshTokenPolicy,
  ttl: number,
  iiat: number | undefined,
  now: number,
): number {
  if (typeof iiat !== 'number' || !Number.isFinite(iiat)) return ttl;
  return Math.max(1, Math.min(ttl, iiat + policy.absoluteLifetimeSeconds - now));
}

/**
 * Stored clients (self-registered, or registered in the console) keep the grant types they were
 * given. Once no client may hold refresh tokens, the provider no longer lists the grant, and would
 * refuse the metadata of every client stored with it (invalid_client_metadata at each sign-in): the
 * grant is dropped from what they are read as, and they go on without refresh tokens.
 */
export function withRefreshGrantWithinPolicy(adapter: Adapter, policy: RefreshTokenPolicy): Adapter {
  if (anyRefreshTokens(policy)) return adapter;
  return {
    ...adapter,
    async find(id) {
      const payload = await adapter.find(id);
      const grants = payload?.grant_types;
      if (!payload || !Array.isArray(grants) || !grants.includes('refresh_token')) return payload;
      return { ...payload, grant_types: grants.filter((grant) => grant !== 'refresh_token') };
    },
  };
}
