/**
 * Rate limits at the token endpoint, by who is asking rather than where from.
 *
 * A limit per source address alone breaks the system where many callers share one: every token
 * exchange of the MCP server, every client-credentials request of the workloads on one host and
 * every agent behind one NAT would count against the same 600 a minute (defect 11). So:
 * - a request that carries a client credential (a Basic header, a `client_assertion`, a
 *   `client_secret`) counts against its client_id once it authenticated, with a limit per role:
 *   `service` (the gateway and the MCP server, whose token exchanges follow agents' traffic),
 *   `workload`, `agent` (pre-registered and self-registered confidential clients);
 * - requests without one (public clients: their client_id proves nothing) count per address.
 *
 * What an attacker who shares the address can do, and why it is bounded this way:
 * - It cannot use up a confidential client's budget: that count moves only when the client
 *   authenticates. Nor the address's budget on the client's behalf: a request with a credential is
 *   never refused for its address, only for its own client, so a flood of unauthenticated requests
 *   from a workload's host leaves the workload's tokens alone.
 * - Failed authentications are not locked out per client (a lockout that anyone can trigger with
 *   wrong secrets is a switch that turns the MCP server's token exchanges off). Guessing is not what
 *   that would have stopped: every secret is at least 32 characters (generated ones 256 bits), past
 *   RFC 6749 §10.10's 2^-128, and a private key cannot be guessed. They still count per address, so
 *   their source's public-client requests are bounded like any other unauthenticated traffic.
 *
 * oidc-provider parses the body and authenticates the client inside its route, so the decision is
 * taken in steps: before the route (a Basic header's claimed client over its budget is refused at
 * once), when the route looks the claimed client up (`guardClientLookup`: the body is parsed by
 * then, so whether the request carries a credential is known, and no grant has run yet; a request
 * without one is counted against its address there), and after (an authenticated client's request
 * is counted against it; any other request not yet counted, a failed authentication say, against
 * its address). Each request moves exactly one count, once: with PostgreSQL every count is a
 * statement, and a token for an authenticated client costs two (its budget looked at, then
 * counted), not four.
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
import { memoryRateLimiters, type RateLimiter, type RateLimiterFactory } from './rate-limit.ts';
import { isRoute } from './route-match.ts';

export type ClientRateClass = 'service' | 'workload' | 'agent';

export interface TokenRateLimits {
  /** Public clients' requests and failed client authentications, per source address. */
  perAddress: RateLimiter;
  /** Authenticated clients, per client_id. */
  perClient: Record<ClientRateClass, RateLimiter>;
  /** The limit class of an authenticated client. */
  classOf: (clientId: string) => Promise<ClientRateClass>;
}

/** The limits the configuration sets (`tokenEndpointRateLimit`), with each client's class by its role. */
export function tokenRateLimitsFrom(
  limits: AuthorizationServerConfig['tokenEndpointRateLimit'],
  classifier: Pick<ClientClassifier, 'preRegistered'>,
  limiter: RateLimiterFactory = memoryRateLimiters,
): TokenRateLimits {
  return {
    perAddress: limiter('token-address', limits.perAddress),
    perClient: {
      service: limiter('token-service', limits.perClient.service),
      workload: limiter('token-workload', limits.perClient.workload),
      agent: limiter('token-agent', limits.perClient.agent),
    },
    classOf: async (clientId) => {
      const role = (await classifier.preRegistered(clientId))?.role;
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

/** What the middleware learned before the route, for the client lookup inside it. */
interface TokenRequestGate {
  /** Whether the request has been counted against its address (a request without a credential). */
  addressCounted: boolean;
  /** Whether the client lookup inside the route has already been checked. */
  checked: boolean;
  /** Set when that check refused the request, for the audit line. */
  denied?: { reason: string; clientId?: string };
}

const GATE = Symbol('gatehouse token rate limit');
type GatedContext = Context & { [GATE]?: TokenRequestGate };

/** Whether a token request carries a client credential (RFC 6749 §2.3, RFC 7523 §2.2). */
function carriesCredential(ctx: Context, params: Record<string, unknown> | undefined): boolean {
  return (
    ctx.get('authorization') !== '' ||
    typeof params?.client_assertion === 'string' ||
    typeof params?.client_secret === 'string'
  );
}

/**
 * Called with the current request (oidc-provider's `Provider.ctx`) when its route looks up the
 * client a token request names, before authentication and before any grant runs: refuses a request
 * with a credential whose client is over its own budget, and a request without one whose address is
 * over the address budget. Other lookups (not the token route's first) pass untouched.
 */
export async function guardClientLookup(
  ctx: Context | undefined,
  clientId: string,
  limits: TokenRateLimits,
): Promise<void> {
  const gate = ctx ? (ctx as GatedContext)[GATE] : undefined;
  if (!ctx || !gate || gate.checked) return;
  gate.checked = true;
  const params = (ctx as { oidc?: { params?: Record<string, unknown> } }).oidc?.params;
  if (carriesCredential(ctx, params)) {
    const wait = await limits.perClient[await limits.classOf(clientId)].peek(clientId);
    if (wait === 0) return;
    gate.denied = { reason: 'client rate limited', clientId };
    ctx.set('retry-after', String(wait));
    throw new TooManyTokenRequests(
      `this client is sending too many token requests; retry after ${wait} seconds`,
    );
  }
  gate.addressCounted = true;
  const addressWait = await limits.perAddress.hit(ctx.ip);
  if (addressWait === 0) return;
  gate.denied = { reason: 'rate limited' };
  ctx.set('retry-after', String(addressWait));
  throw new TooManyTokenRequests(`too many requests from this address; retry after ${addressWait} seconds`);
}

export function tokenRateLimit(tokenPath: string, limits: TokenRateLimits, logger: Logger): Middleware {
  return async (ctx, next) => {
    if (ctx.method !== 'POST' || !isRoute(ctx.path, tokenPath)) return next();
    const address = ctx.ip;
    const claimed = basicClientId(ctx.get('authorization'));
    // Every token request has a gate, whatever its Authorization header (Basic, another scheme, a
    // malformed one), so that each is counted once: a Basic client's budget was looked at here,
    // so the lookup inside the route does not look again.
    const gate: TokenRequestGate = { addressCounted: false, checked: claimed !== undefined };
    (ctx as GatedContext)[GATE] = gate;
    // Not counted yet (refused before the lookup, a failed authentication, over its client's
    // budget): it counts against its address, as any request that did not authenticate.
    const countOnAddress = async () => {
      if (!gate.addressCounted) {
        gate.addressCounted = true;
        await limits.perAddress.hit(address);
      }
    };

    if (claimed) {
      // Refused before the body is even read; the client's count only moves on success, so only
      // the client itself can have used it up.
      const own = await limits.perClient[await limits.classOf(claimed)].peek(claimed);
      if (own > 0) {
        await countOnAddress();
        logger.audit('token', {
          outcome: 'denied',
          ip: address,
          client_id: claimed,
          reason: 'client rate limited',
        });
        return tooMany(ctx, own, 'this client is sending too many token requests');
      }
    }

    await next();

    const denied = gate.denied;
    if (denied) {
      await countOnAddress();
      logger.audit('token', {
        outcome: 'denied',
        ip: address,
        client_id: denied.clientId,
        reason: denied.reason,
      });
      return;
    }
    const client = (ctx as { oidc?: { client?: { clientId: string; clientAuthMethod?: string } } }).oidc
      ?.client;
    const failedAuthentication =
      ctx.status === 401 && (ctx.body as { error?: string } | undefined)?.error === 'invalid_client';
    if (client && client.clientAuthMethod !== 'none' && !failedAuthentication) {
      await limits.perClient[await limits.classOf(client.clientId)].hit(client.clientId);
    } else await countOnAddress();
  };
}
