/**
 * The `WWW-Authenticate: Bearer` challenges of the MCP server (RFC 6750 §3, RFC 9728 §5.1, MCP
 * authorization "Scope challenge handling").
 *
 *   no token          401  Bearer resource_metadata="<PRM>", scope="<base scopes>"      (no error, RFC 6750 §3.1)
 *   invalid token     401  Bearer error="invalid_token", error_description="…", scope="<base scopes>", resource_metadata="<PRM>"
 *   missing scope     403  Bearer error="insufficient_scope", error_description="…", scope="<needed>", resource_metadata="<PRM>"
 *
 * The 401 with a token and the 403 are formatted by the SDK (`bearerAuthChallengeResponse` and the
 * tool's `scopeChallenge`), so every challenge agrees on order and quoting.
 */
import type { ServerResponse } from 'node:http';
import {
  bearerAuthChallengeResponse,
  OAuthError,
  OAuthErrorCode,
  type ScopeChallenge,
} from '@modelcontextprotocol/server';
import { authChallenge, bearerChallenge } from '../shared/http.ts';

export interface ChallengeSettings {
  resourceMetadataUrl: string;
  baseScopes: string[];
  /** DPoP algorithms the gateway verifies proofs with: the 401 names both schemes (RFC 9449 §7.1). */
  dpopAlgorithms: readonly string[];
}

/** The second challenge of every 401: tokens may also be DPoP-bound (RFC 9449 §7.1). */
export function dpopChallenge(settings: Pick<ChallengeSettings, 'dpopAlgorithms'>): string {
  return authChallenge('DPoP', { algs: settings.dpopAlgorithms.join(' ') });
}

/** The protocol era of the request: 2026-07-28 (`modern`) or a 2025 revision (`legacy`). */
export type ProtocolEra = 'modern' | 'legacy';

/** RFC 6750 §3.1: a request without credentials gets no error code, only where to find out more. */
export function missingTokenChallenge(settings: ChallengeSettings): string {
  return bearerChallenge({
    resource_metadata: settings.resourceMetadataUrl,
    scope: settings.baseScopes.length > 0 ? settings.baseScopes.join(' ') : undefined,
  });
}

/** Answers a request without a bearer token: 401 and the discovery challenge. */
export function sendMissingTokenChallenge(res: ServerResponse, settings: ChallengeSettings): void {
  const body = JSON.stringify({
    error_description: 'this MCP server needs an OAuth access token; WWW-Authenticate says where to get one',
  });
  res.writeHead(401, {
    'www-authenticate': [missingTokenChallenge(settings), dpopChallenge(settings)],
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
  });
  res.end(body);
}

/**
 * The answer to a refused token: 401 `invalid_token` with a safe description. The base scopes go
 * along so a client that must sign in again asks for what it needs rather than everything.
 */
export function invalidTokenResponse(error: unknown, settings: ChallengeSettings): Response {
  return bearerAuthChallengeResponse(error, {
    requiredScopes: settings.baseScopes,
    resourceMetadataUrl: settings.resourceMetadataUrl,
  });
}

/** Writes a web `Response` (a challenge built by the SDK) to a Node response, with more challenges. */
export async function sendWebResponse(
  res: ServerResponse,
  response: Response,
  extraChallenges: string[] = [],
): Promise<void> {
  const body = Buffer.from(await response.arrayBuffer());
  const headers: Record<string, string | string[]> = { 'cache-control': 'no-store' };
  response.headers.forEach((value, name) => {
    headers[name] = value;
  });
  if (extraChallenges.length > 0) {
    const own = headers['www-authenticate'];
    headers['www-authenticate'] = [...(own ? [own].flat() : []), ...extraChallenges];
  }
  headers['content-length'] = String(body.length);
  res.writeHead(response.status, headers);
  res.end(body);
}

/** A token that carries no usable credentials for this resource, as the SDK's error type. */
export const invalidToken = (description: string) => new OAuthError(OAuthErrorCode.InvalidToken, description);

/** The scopes `needed` that `granted` lacks, in the order they are needed. */
export function missingScopes(needed: readonly string[], granted: Iterable<string>): string[] {
  const have = new Set(granted);
  return needed.filter((scope) => !have.has(scope));
}

/**
 * The `scope` of an `insufficient_scope` challenge.
 *
 * 2026-07-28 (SEP-2350, RFC 6750 §3.1): every scope the operation needs, and only those; the client
 * accumulates (it asks for the union of what it had and what is challenged). 2025-11-25 recommended
 * that servers themselves add the scopes the token already has, because clients of that era (the
 * TypeScript SDK v1 among them) replace their scopes on step-up and would otherwise lose them; so a
 * 2025-era request gets the union of the token's scopes and the operation's.
 */
export function challengeScopes(
  needed: readonly string[],
  granted: readonly string[],
  era: ProtocolEra,
): [string, ...string[]] {
  const scopes = era === 'legacy' ? [...granted, ...needed] : [...needed];
  const unique = [...new Set(scopes)];
  if (unique.length === 0) throw new TypeError('a scope challenge needs at least one scope');
  return unique as [string, ...string[]];
}

/** The SDK's scope challenge for an operation that needs `needed`, or undefined when `granted` suffices. */
export function scopeChallenge(
  operation: string,
  needed: readonly string[],
  granted: readonly string[],
  era: ProtocolEra,
): ScopeChallenge | undefined {
  const missing = missingScopes(needed, granted);
  if (missing.length === 0) return undefined;
  return {
    scopes: challengeScopes(needed, granted, era),
    errorDescription: `${operation} needs the scope ${missing.join(' ')}; ask the user to authorize it and retry`,
  };
}
