/**
 * Rate limits at the token endpoint, by who is asking rather than where from.
 *
 * A limit per source address alone breaks the system where many callers share one: every token
 * exchange of the MCP server, every client-credentials request of the workloads on one host and
 * every agent behind one NAT would count against the same 600 a minute (defect 11). So:
 * - a client that authenticates (client_secret_basic/post, private_key_jwt) counts against its own
 *   client_id, with a limit per role: `service` (the gateway and the MCP server, whose token
 *   exchanges follow agents' traffic), `workload`, `agent` (pre-registered and self-registered
 *   confidential clients);
 * - public clients (`none`: their client_id proves nothing) and requests that fail client
 *   authentication count per address, so guessing secrets stays bounded (RFC 6749 §10.10).
 *
 * oidc-provider parses the body and authenticates the client inside its route, so the decision is
 * taken in steps: before the route (the identity a Basic header claims, else the address), during
 * client authentication for `private_key_jwt` (whose identity is in the body: `checkAssertionClient`,
 * called from the assertion hook once the signature verified), and after (what the client turned out
 * to be); a request first counted against the address is moved to its client once authenticated.
 * `client_secret_post` clients, rare here, are counted after the fact only.
 */

/** 429 from inside oidc-provider's route (RFC 6585 §4), rendered by its error handler. */
export class TooManyTokenRequests extends errors.OIDCProviderError {
  constructor(description: string) {
    super(429, 'temporarily_unavailable');
    this.error_description = description;
  }
}

import type { Context, Middleware } from 'koa';
import { errors } from 'oidc-provider';
import type { AuthorizationServerConfig } from '../../shared/config/schema.ts';
import type { Logger } from '../../shared/logging.ts';
import type { ClientClassifier } from '../clients/client-classification.ts';
import { createRateLimiter, type RateLimiter } from './rate-limit.ts';
import { isRoute } from './route-match.ts';

export type ClientRateClass = 'service' | 'workload' | 'agent';

export interface TokenRateLimits {
  /** Public clients' requests and failed client authentications, per source address. */
  perAddress: RateLimiter;
  /** Authenticated clients, per client_id. */
  perClient: Record<ClientRateClass, RateLimiter>;
  /** The limit class of an authenticated client. */
  classOf: (clientId: string) => ClientRateClass;
}

/** The limits the configuration sets (`tokenEndpointRateLimit`), with each client's class by its role. */
export function tokenRateLimitsFrom(
  limits: AuthorizationServerConfig['tokenEndpointRateLimit'],
  classifier: Pick<ClientClassifier, 'preRegistered'>,
): TokenRateLimits {
  return {
    perAddress: createRateLimiter(limits.perAddress),
    perClient: {
      service: createRateLimiter(limits.perClient.service),
      workload: createRateLimiter(limits.perClient.workload),
      agent: createRateLimiter(limits.perClient.agent),
    },
    classOf: (clientId) => {
      const role = classifier.preRegistered(clientId)?.role;
      if (role === 'gateway' || role === 'mcp-server') return 'service';
      return role === 'workload' ? 'workload' : 'agent';
    },
  };
}

/** The client_id a `Basic` header claims (RFC 6749 §2.3.1), not yet verified. */
export function basicClientId(header: string | undefined): string | undefined {
  const match = /^Basic[ ]+([A-Za-z0-9+/=]+)$/i.exec(header?.trim() ?? '');
  if (!match) return undefined;
  const decoded = Buffer.from(match[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon <= 0) return undefined;
  try {
    return decodeURIComponent(decoded.slice(0, colon).replace(/\+/g, ' '));
  } catch {
    return undefined;
  }
}

function tooMany(ctx: Context, retryAfter: number, description: string): void {
  ctx.status = 429;
  ctx.set('retry-after', String(retryAfter));
  ctx.set('cache-control', 'no-store');
  ctx.body = {
    error: 'temporarily_unavailable',
    error_description: `${description}; retry after ${retryAfter} seconds`,
  };
}

/**
 * For the client-assertion hook: refuses a `private_key_jwt` client over its own limit, before any
 * token is issued. Only at the token endpoint (the hook also runs at PAR, introspection, revocation).
 */
export function checkAssertionClient(
  ctx: Context,
  clientId: string,
  limits: TokenRateLimits,
  tokenPath: string,
): void {
  if (!isRoute(ctx.path, tokenPath)) return;
  const wait = limits.perClient[limits.classOf(clientId)].peek(clientId);
  if (wait === 0) return;
  ctx.set('retry-after', String(wait));
  throw new TooManyTokenRequests(
    `this client is sending too many token requests; retry after ${wait} seconds`,
  );
}

export function tokenRateLimit(tokenPath: string, limits: TokenRateLimits, logger: Logger): Middleware {
  return async (ctx, next) => {
    if (ctx.method !== 'POST' || !isRoute(ctx.path, tokenPath)) return next();
    const address = ctx.ip;
    const claimed = basicClientId(ctx.get('authorization'));
    const deny = (retryAfter: number, reason: string, description: string) => {
      logger.audit('token', { outcome: 'denied', ip: address, client_id: claimed, reason });
      tooMany(ctx, retryAfter, description);
    };

    let countedOnAddress = false;
    if (claimed) {
      const failures = limits.perAddress.peek(`${address} ${claimed}`);
      if (failures > 0) return deny(failures, 'rate limited', 'too many failed attempts from this address');
      const own = limits.perClient[limits.classOf(claimed)].peek(claimed);
      if (own > 0) return deny(own, 'client rate limited', 'this client is sending too many token requests');
    } else {
      const wait = limits.perAddress.hit(address);
      if (wait > 0) return deny(wait, 'rate limited', 'too many requests from this address');
      countedOnAddress = true;
    }

    await next();

    const client = (ctx as { oidc?: { client?: { clientId: string; clientAuthMethod?: string } } }).oidc
      ?.client;
    const failedAuthentication =
      ctx.status === 401 && (ctx.body as { error?: string } | undefined)?.error === 'invalid_client';
    if (failedAuthentication) {
      // Guessing a client's secret or key: bounded per address (and claimed client).
      if (claimed) limits.perAddress.hit(`${address} ${claimed}`);
      return;
    }
    if (client && client.clientAuthMethod !== 'none') {
      limits.perClient[limits.classOf(client.clientId)].hit(client.clientId);
      if (countedOnAddress) limits.perAddress.refund(address);
    }
  };
}
