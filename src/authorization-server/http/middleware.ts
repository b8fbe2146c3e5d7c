/**
 * Small Koa middleware the authorization server adds in front of oidc-provider's routes.
 */
import type { Middleware } from 'koa';
import type { Logger } from '../../shared/logging.ts';
import { messagePage } from '../interactions/views/message-page.ts';
import { isUnavailable } from '../store/postgres/connection.ts';
import type { RateLimiter } from './rate-limit.ts';
import { isRoute, isUnderRoute } from './route-match.ts';

/**
 * RFC 8414 §3: metadata lives at `/.well-known/oauth-authorization-server` (with the issuer's path
 * inserted after it). oidc-provider serves only the OpenID Connect discovery path; both carry the
 * same document, so the RFC 8414 path is answered by the same route.
 */
export function oauthMetadataAlias(issuerPath: string): Middleware {
  const suffix = issuerPath === '/' ? '' : issuerPath.replace(/\/$/, '');
  const alias = `/.well-known/oauth-authorization-server${suffix}`;
  const target = `${suffix}/.well-known/openid-configuration`;
  return (ctx, next) => {
    if (isRoute(ctx.path, alias)) ctx.path = target;
    return next();
  };
}

/**
 * CORS for dynamic client registration: browser-based MCP clients register from their own origin,
 * and oidc-provider gives the registration endpoint no CORS of its own (design §5). Registration
 * carries no cookies, so any origin may call it.
 */
export function registrationCors(registrationPath: string): Middleware {
  return async (ctx, next) => {
    if (!isUnderRoute(ctx.path, registrationPath)) return next();
    ctx.set('access-control-allow-origin', '*');
    ctx.set('access-control-expose-headers', 'WWW-Authenticate');
    if (ctx.method === 'OPTIONS') {
      ctx.set('access-control-allow-methods', 'GET, POST, PUT, DELETE');
      ctx.set('access-control-allow-headers', 'Authorization, Content-Type, MCP-Protocol-Version');
      ctx.set('access-control-max-age', '600');
      ctx.status = 204;
      return;
    }
    return next();
  };
}

/** Refuses POSTs to `path` over the limit per source address with 429 and Retry-After. */
export function rateLimited(path: string, limiter: RateLimiter, logger: Logger, event: string): Middleware {
  return async (ctx, next) => {
    if (ctx.method !== 'POST' || !isRoute(ctx.path, path)) return next();
    const retryAfter = await limiter.hit(ctx.ip);
    if (retryAfter === 0) return next();
    logger.audit(event, { outcome: 'denied', ip: ctx.ip, reason: 'rate limited' });
    ctx.status = 429;
    ctx.set('retry-after', String(retryAfter));
    ctx.set('cache-control', 'no-store');
    ctx.body = {
      error: 'temporarily_unavailable',
      error_description: `too many requests from this address; retry after ${retryAfter} seconds`,
    };
  };
}

/**
 * Nothing is answered before what it depends on is durable. The store commits upserts in groups
 * (store/sqlite-write-batch.ts), and some (an assertion's or a DPoP proof's `jti`) are not awaited
 * where they are made; each request runs in a scope of its own (`writes.run`), and its answer waits
 * here until its own writes are committed, whether the handling succeeded or threw. Should one of
 * them fail, the answer becomes a 500 `server_error` (RFC 6749 §5.2), not a token or a page built on
 * a write that is not there; another request's failed write does not touch this one.
 */
export function durableWrites(
  logger: Logger,
  writes: { run: <T>(fn: () => T) => T; durable: () => Promise<void> },
): Middleware {
  return (ctx, next) =>
    writes.run(async () => {
      let failure: { error: unknown } | undefined;
      try {
        await next();
      } catch (error) {
        failure = { error };
      }
      try {
        await writes.durable();
      } catch (error) {
        logger.error('token store write failed; the answer was withheld', {
          path: ctx.path,
          error: (error as Error).message,
        });
        ctx.status = 500;
        ctx.set('cache-control', 'no-store');
        if (ctx.accepts('json', 'html') === 'html') {
          ctx.type = 'html';
          ctx.body = messagePage({
            title: 'Something went wrong',
            message: 'Your request could not be saved. Go back and try again in a moment.',
          });
        } else {
          ctx.body = {
            error: 'server_error',
            error_description: 'the request could not be saved; try again',
          };
        }
        return;
      }
      if (failure) throw failure.error;
    });
}

/** Set on ctx.state by the provider's server_error listener when the store could not answer. */
export const STORE_UNAVAILABLE = 'gatehouseStoreUnavailable';

/**
 * A request the store could not serve (PostgreSQL down, restarting, or every connection busy)
 * gets 503 with Retry-After (RFC 9110 §15.6.4), never a 500 and never an answer made up without
 * the store: fail closed, and tell the client it may try again. oidc-provider catches errors of
 * its own routes and reports them as `server_error`; the listener marks the request (server.ts),
 * and errors of Gatehouse's own routes arrive here as exceptions.
 */
export function storeUnavailable(logger: Logger): Middleware {
  return async (ctx, next) => {
    let unavailable: unknown;
    try {
      await next();
    } catch (error) {
      if (!isUnavailable(error)) throw error;
      unavailable = error;
    }
    unavailable ??= ctx.state[STORE_UNAVAILABLE];
    if (!unavailable) return;
    logger.warn('the store could not answer: 503 sent', {
      path: ctx.path,
      error: (unavailable as Error).message,
    });
    ctx.status = 503;
    ctx.set('retry-after', '1');
    ctx.set('cache-control', 'no-store');
    if (ctx.accepts('json', 'html') === 'html') {
      ctx.type = 'html';
      ctx.body = messagePage({
        title: 'Try again in a moment',
        message: 'This service cannot reach its database just now. Wait a few seconds and try again.',
      });
    } else {
      // RFC 6749 §4.1.2.1 names temporarily_unavailable; here it is the answer of every endpoint.
      ctx.body = {
        error: 'temporarily_unavailable',
        error_description: 'the authorization server cannot reach its store; retry shortly',
      };
    }
  };
}

/** Headers every response of the authorization server carries. */
export function securityHeaders(): Middleware {
  return async (ctx, next) => {
    await next();
    ctx.set('x-content-type-options', 'nosniff');
    // Pages use same-origin: with no-referrer, browsers send `Origin: null` on the pages' own form
    // posts and the interaction routes' Origin check (CSRF) would refuse every real user.
    ctx.set('referrer-policy', ctx.response.is('html') ? 'same-origin' : 'no-referrer');
    if (ctx.response.is('html')) {
      ctx.set('x-frame-options', 'DENY');
      ctx.set('cache-control', 'no-store');
    }
  };
}

/**
 * RFC 6749 §5.2: a client using a grant type it is not allowed gets `unauthorized_client`.
 * oidc-provider answers `invalid_request` with a fixed description; this rewrites that one answer
 * (tokens.test.ts proves it, so a library change that alters the text fails the tests).
 */
export function unauthorizedClientGrant(tokenPath: string): Middleware {
  return async (ctx, next) => {
    await next();
    if (!isRoute(ctx.path, tokenPath) || ctx.status !== 400) return;
    const body = ctx.body as { error?: string; error_description?: string } | undefined;
    if (
      body?.error === 'invalid_request' &&
      body.error_description === 'requested grant type is not allowed for this client'
    ) {
      ctx.body = { error: 'unauthorized_client', error_description: body.error_description };
    }
  };
}

/**
 * RFC 6749 §3.3: a request without `scope` gets a documented default. MCP clients that found no
 * `scope` in the challenge or metadata send none; they get the MCP server's base scopes, the same
 * the 401 challenge names, rather than a sign-in that ends in access_denied for want of any scope.
 */
export function defaultScope(authorizationPath: string, baseScopes: string[]): Middleware {
  const scope = baseScopes.join(' ');
  return (ctx, next) => {
    if (
      ctx.method === 'GET' &&
      isRoute(ctx.path, authorizationPath) &&
      scope &&
      !ctx.query.scope &&
      !ctx.query.request_uri
    ) {
      ctx.query = { ...ctx.query, scope };
    }
    return next();
  };
}

/**
 * RFC 9449 §5.2: a client registered with `dpop_bound_access_tokens` must send a DPoP proof with
 * every token request. oidc-provider refuses one without it as `invalid_grant` with its generic
 * description, which tells the client nothing; this says what is missing (`invalid_request`, RFC 6749
 * §5.2: a required parameter, the proof, is absent).
 */
export function dpopRequiredError(tokenPath: string): Middleware {
  return async (ctx, next) => {
    await next();
    if (!isRoute(ctx.path, tokenPath) || ctx.status !== 400 || ctx.get('dpop')) return;
    const body = ctx.body as { error?: string } | undefined;
    const client = (ctx as { oidc?: { client?: { dpopBoundAccessTokens?: boolean } } }).oidc?.client;
    if (body?.error === 'invalid_grant' && client?.dpopBoundAccessTokens === true) {
      ctx.body = {
        error: 'invalid_request',
        error_description:
          'this client must prove possession of a key: send a DPoP proof (RFC 9449) with every token request',
      };
    }
  };
}
