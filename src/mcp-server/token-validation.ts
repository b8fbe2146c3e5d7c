/**
 * Validation of the token on every /mcp request.
 *
 * The MCP server never sees the agent's opaque token: the gateway introspects it and forwards the
 * phantom token, an RFC 9068 JWT for the same grant whose `aud` is this server's canonical URI. It is
 * validated like any JWT access token by the shared verifier (signature against the cached JWKS,
 * `typ: at+jwt`, algorithm allow-list, issuer, audience, expiry) and handed to the SDK as `AuthInfo`
 * through the SDK's `verifyBearerToken`, which also re-checks the resource and the expiry.
 */
import type { IncomingMessage } from 'node:http';
import { type AuthInfo, type OAuthTokenVerifier, verifyBearerToken } from '@modelcontextprotocol/server';
import {
  type AccessTokenVerifier,
  createAccessTokenVerifier,
  InvalidTokenError,
  SigningKeysUnavailableError,
  scopesOf,
} from '../shared/jwt.ts';
import { permittedToolsOf } from '../shared/tool-claims.ts';
import { invalidToken } from './challenges.ts';
import type { RevokedTokens } from './revoked-tokens.ts';
import type { McpServerSettings } from './settings.ts';

/** What the tool handlers need to know about the caller, beyond the SDK's `AuthInfo`. */
export interface Principal {
  sub: string;
  clientId: string;
  /** The grant behind a user's token (the phantom token's `grant_id`); workloads have none. */
  grantId?: string | undefined;
  /** SHA-256 of the agent's opaque token (the phantom token's `token_hash`), as revocations name it. */
  tokenHash?: string | undefined;
  /** A workload (client credentials, `client_type: workload`): its scopes alone decide its tools. */
  workload: boolean;
  /**
   * The tools the authorization server lets this user use (`mcp_tools`, shared/tool-claims.ts). A
   * user token without the claim gets an empty set: no tools (fail closed).
   */
  permittedTools: ReadonlySet<string>;
}

/** Adapts the shared JWT verifier to the SDK's verifier interface. */
export function createPhantomTokenVerifier(
  settings: Pick<McpServerSettings, 'issuer' | 'jwksUri' | 'resource' | 'jwksCacheSeconds'>,
  revoked?: Pick<RevokedTokens, 'isRevoked'>,
  verifier: AccessTokenVerifier = createAccessTokenVerifier({
    issuer: settings.issuer,
    jwksUri: settings.jwksUri,
    audience: settings.resource.href,
    jwksCacheSeconds: settings.jwksCacheSeconds,
  }),
): OAuthTokenVerifier & Pick<AccessTokenVerifier, 'signingKeysReady'> {
  return {
    signingKeysReady: () => verifier.signingKeysReady(),
    async verifyAccessToken(token) {
      try {
        const payload = await verifier.verify(token);
        // Signed and unexpired, but announced revoked (revoked-tokens.ts).
        if (revoked?.isRevoked(payload)) throw new InvalidTokenError('the access token has been revoked');
        const principal: Principal = {
          sub: payload.sub,
          clientId: payload.client_id,
          ...(typeof payload.grant_id === 'string' ? { grantId: payload.grant_id } : {}),
          ...(typeof payload.token_hash === 'string' ? { tokenHash: payload.token_hash } : {}),
          workload: payload.client_type === 'workload',
          permittedTools: permittedToolsOf(payload) ?? new Set(),
        };
        return {
          token,
          clientId: payload.client_id,
          scopes: [...scopesOf(payload)],
          expiresAt: payload.exp,
          // The verifier accepted the audience, so the token is for this resource.
          resource: settings.resource,
          extra: { principal },
        };
      } catch (error) {
        // Keys unavailable is not the token's fault: passed on as it is, for a 503 rather than a 401.
        if (error instanceof SigningKeysUnavailableError) throw error;
        if (error instanceof InvalidTokenError) throw invalidToken(error.message);
        throw error;
      }
    },
  };
}

/** True when the request carries a Bearer credential at all (RFC 6750 §2.1, the only method offered). */
export function hasBearerCredentials(req: IncomingMessage): boolean {
  return /^bearer(\s|$)/i.test(req.headers.authorization?.trim() ?? '');
}

/**
 * Verifies the request's bearer token: the caller's `AuthInfo`, or a thrown `OAuthError`
 * (`invalid_token`) for the challenge. Call only when `hasBearerCredentials` is true.
 */
export function authenticate(
  req: IncomingMessage,
  verifier: OAuthTokenVerifier,
  settings: Pick<McpServerSettings, 'resource' | 'resourceMetadataUrl'>,
): Promise<AuthInfo> {
  return verifyBearerToken(req.headers.authorization?.trim(), {
    verifier,
    expectedResource: settings.resource,
    resourceMetadataUrl: settings.resourceMetadataUrl,
  });
}

/** The caller behind a verified `AuthInfo`. */
/** The agent request's id the HTTP layer put beside the principal (server.ts, request-id.ts). */
export function requestIdOfCall(authInfo: AuthInfo | undefined): string | undefined {
  const id = authInfo?.extra?.requestId;
  return typeof id === 'string' ? id : undefined;
}

export function principalOf(authInfo: AuthInfo | undefined): Principal | undefined {
  const principal = authInfo?.extra?.principal as Principal | undefined;
  return principal && typeof principal.sub === 'string' ? principal : undefined;
}
