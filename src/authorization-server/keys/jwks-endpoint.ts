/**
 * The JWKS endpoint (RFC 7517 §5; the `jwks_uri` of RFC 8414 §2 and OpenID Connect Discovery),
 * answered from the key rings before oidc-provider's own route: the provider's JWKS is fixed when it
 * is constructed, holds none of the access-token keys and only the ID-token slots as they were then
 * (keys/id-token-signing.ts), so it would miss every key published by a rotation (keys/key-manager.ts).
 *
 * The answer is what the provider's route answers (content type, open CORS for browser verifiers),
 * with a short `max-age`: a verifier that honours HTTP caching sees a new `next` key well before it
 * signs (never later than `publishBeforeUseSeconds`).
 */
import type { Middleware } from 'koa';
import { isRoute } from '../http/route-match.ts';

/** The longest HTTP cache lifetime the JWKS asks for, in seconds. */
export const JWKS_MAX_AGE_SECONDS = 300;

export function jwksEndpoint(
  jwksPath: string,
  jwks: () => { keys: unknown[] },
  publishBeforeUseSeconds: number,
): Middleware {
  const maxAge = Math.min(JWKS_MAX_AGE_SECONDS, Math.floor(publishBeforeUseSeconds / 2));
  return (ctx, next) => {
    // OPTIONS (the CORS preflight) stays with the provider's route.
    if ((ctx.method !== 'GET' && ctx.method !== 'HEAD') || !isRoute(ctx.path, jwksPath)) return next();
    ctx.set('access-control-allow-origin', '*');
    ctx.set('cache-control', `public, max-age=${maxAge}`);
    ctx.type = 'application/jwk-set+json; charset=utf-8';
    ctx.body = jwks();
  };
}
