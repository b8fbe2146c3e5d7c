/**
 * The phantom token: when the gateway introspects an opaque token with `Accept: application/jwt`,
 * it gets back an RFC 9068 JWT access token for the same token (same subject, client, scope,
 * audience and expiry, plus the user's and client's classification claims) to forward inside, and
 * `grant_id` and `token_hash` (SHA-256 of the opaque token), by which revocations name it.
 *
 * oidc-provider does the RFC 7662 part (client authentication, the gateway-only policy, token
 * lookup); this middleware only re-encodes an active result. An inactive one stays
 * `{"active": false}` as JSON, so the gateway never mistakes it for a token.
 */
import type { Middleware } from 'koa';
import { tokenHash } from '../../shared/jwt.ts';
import { isRoute } from '../http/route-match.ts';
import type { ResourceRegistry } from '../resources.ts';
import { type AccessTokenSigner, extraClaims } from './access-token-jwt.ts';

/** Response header of a phantom-token introspection naming the DPoP key thumbprint of a bound token. */
export const DPOP_JKT_HEADER = 'gatehouse-dpop-jkt';

/** True when the client asked for a bare JWT (not the RFC 9701 `token-introspection+jwt` envelope). */
function wantsPhantomToken(accept: string | undefined): boolean {
  if (!accept) return false;
  return accept.split(',').some((part) => part.split(';')[0]!.trim().toLowerCase() === 'application/jwt');
}

export function phantomTokenMiddleware(
  introspectionPath: string,
  resources: ResourceRegistry,
  sign: AccessTokenSigner,
): Middleware {
  return async (ctx, next) => {
    if (
      ctx.method !== 'POST' ||
      !isRoute(ctx.path, introspectionPath) ||
      !wantsPhantomToken(ctx.get('accept'))
    ) {
      return next();
    }
    // Let the library answer in JSON, then re-encode.
    ctx.request.headers.accept = 'application/json';
    await next();
    const body = ctx.body as Record<string, unknown> | undefined;
    if (ctx.status !== 200 || !body || body.active !== true) return;
    const audiences = [body.aud ?? []].flat() as string[];
    if (!audiences.some((aud) => resources.isMcpResource(aud)) || typeof body.exp !== 'number') {
      // Only tokens for the MCP server become phantom tokens; anything else is inactive to the gateway.
      ctx.body = { active: false };
      return;
    }
    const clientId = String(body.client_id);
    // The grant behind the token, so token exchange can refuse a phantom token whose grant was
    // revoked while the gateway still had it cached (the MCP server never forwards it further).
    const grantId = (ctx.oidc?.entities?.AccessToken as { grantId?: string } | undefined)?.grantId;
    // Which opaque token this stands for, by the hash revocation events name it with: a workload's
    // token has no grant, so a revoked one is recognised by this (MCP server, token exchange).
    const token = (ctx.oidc?.params as { token?: unknown } | undefined)?.token;
    ctx.body = await sign({
      ...(grantId ? { grant_id: grantId } : {}),
      ...(typeof token === 'string' ? { token_hash: tokenHash(token) } : {}),
      ...extraClaims(body),
      sub: typeof body.sub === 'string' ? body.sub : clientId,
      aud: resources.mcp.uri,
      exp: body.exp,
      client_id: clientId,
      ...(typeof body.scope === 'string' ? { scope: body.scope } : {}),
      // The introspection response's own fields are not claims of the token.
      active: undefined,
      token_type: undefined,
      iss: undefined,
    });
    ctx.type = 'application/jwt';
    ctx.set('cache-control', 'no-store');
    // A DPoP-bound token (RFC 9449 §6.2): the gateway must see the key it is bound to, to check proofs
    // and refuse it as a plain Bearer token. It travels beside the phantom token, never inside it.
    const jkt = (body.cnf as { jkt?: unknown } | undefined)?.jkt;
    if (typeof jkt === 'string') ctx.set(DPOP_JKT_HEADER, jkt);
  };
}

/**
 * Introspection answers "inactive" for a token whose user is no longer approved: removing a user
 * from the configuration cuts off their agents at the next introspection, not at token expiry.
 * Registered inside the phantom-token middleware, so both JSON and JWT answers see it.
 */
export function removedUsersInactive(
  introspectionPath: string,
  isRemovedUser: (sub: string) => Promise<boolean>,
): Middleware {
  return async (ctx, next) => {
    await next();
    if (ctx.method !== 'POST' || !isRoute(ctx.path, introspectionPath) || ctx.status !== 200) return;
    const body = ctx.body as Record<string, unknown> | undefined;
    if (body?.active === true && typeof body.sub === 'string' && (await isRemovedUser(body.sub)))
      ctx.body = { active: false };
  };
}
