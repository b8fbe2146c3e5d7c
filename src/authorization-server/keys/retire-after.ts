/**
 * How long a key that stopped signing must stay published: until every token it signed has expired
 * at every verifier.
 *
 * The access-token key signs two kinds of token. A phantom token carries the `exp` of the opaque
 * token it stands for, and an opaque token lives at most `resources.mcp.accessTokenTtlSeconds`
 * (dynamically registered clients get less, `dynamicRegistration.maxAccessTokenTtlSeconds` caps it
 * from below that) from its issue, which is before the phantom token is signed. An exchanged token
 * lives at most its API's `accessTokenTtlSeconds` and never outlives its subject token. So a token
 * signed before the rotation has expired `max(those TTLs)` after it. Verifiers accept a token a
 * little past `exp` (RFC 7519 §4.1.4 allows "some small leeway"): the MCP server and the APIs 30 s
 * at most (shared/jwt.ts, `apis.clockSkewSeconds`); the margin doubles that for a verifier whose
 * clock is behind ours.
 *
 * The ID-token key signs ID tokens (and RFC 9701 introspection answers, which the gateway verifies
 * as they arrive). An ID token lives `ID_TOKEN_TTL_SECONDS` (OpenID Connect Core §2 `exp`), and a
 * relying party checks `exp` with its own leeway, which we cannot know: the same margin covers it.
 * oidc-provider itself accepts an expired ID token as `id_token_hint` (RP-Initiated Logout 1.0 §2:
 * its `exp` need not be in the future), but only while its key is published: a hint older than its
 * key's retirement is refused, and the relying party signs out without one (the user is asked).
 */
import type { AuthorizationServerConfig } from '../../shared/config/schema.ts';

/** The verifiers' largest clock tolerance (30 s), twice: once for the leeway, once for skew. */
export const RETIREMENT_MARGIN_SECONDS = 60;

export function longestAccessTokenLifetime(config: Pick<AuthorizationServerConfig, 'resources'>): number {
  return Math.max(
    config.resources.mcp.accessTokenTtlSeconds,
    ...config.resources.apis.map((api) => api.accessTokenTtlSeconds),
  );
}

/** The lifetime of an ID token (oidc-provider's `ttl.IdToken`, provider.ts). */
export const ID_TOKEN_TTL_SECONDS = 3600;

/** How long an ID-token key that stopped signing stays published. */
export const ID_TOKEN_RETIRE_AFTER_SECONDS = ID_TOKEN_TTL_SECONDS + RETIREMENT_MARGIN_SECONDS;

export function retireAfterSeconds(config: Pick<AuthorizationServerConfig, 'resources'>): number {
  return longestAccessTokenLifetime(config) + RETIREMENT_MARGIN_SECONDS;
}
