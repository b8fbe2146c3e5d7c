/**
 * Introspection at the authorization server (RFC 7662), asking for the phantom token.
 *
 * The gateway authenticates with client_secret_basic and sends `Accept: application/jwt`; an active
 * token comes back as an RFC 9068 JWT access token for the same grant (aud = the MCP server), an
 * inactive one as JSON `{"active": false}`. Anything else (no answer, a timeout, a 5xx, a refusal of
 * the gateway's own credentials, content it does not expect) is an
 * `AuthorizationServerUnavailableError`: the caller fails closed and nothing is forwarded.
 */
import { decodeJwt } from 'jose';
import type { Logger } from '../shared/logging.ts';
import { annotateSpan, inClientSpan, injectTraceContext } from '../shared/tracing.ts';

/** An active token: its phantom JWT, and what the gateway needs to know about it. */
export interface ActiveIntrospection {
  active: true;
  /** The phantom token to forward. */
  jwt: string;
  /** Expiry, seconds since the epoch. */
  exp: number;
  /** RFC 9449 §6: the thumbprint of the DPoP key the token is bound to; absent for a bearer token. */
  jkt?: string;
  /** The grant, subject and client behind the token: what a revocation names (revocation-listener). */
  grantId?: string;
  sub?: string;
  clientId?: string;
}

/** `madeUp`: the token carries no tag of the authorization server, so it was never asked about. */
export type Introspection = ActiveIntrospection | { active: false; madeUp?: true };

/** The authorization server's header naming the DPoP key of a bound token (tokens/phantom-token.ts there). */
export const DPOP_JKT_HEADER = 'gatehouse-dpop-jkt';

/** The authorization server could not say whether a token is active. The message is safe for clients. */
export class AuthorizationServerUnavailableError extends Error {
  override name = 'AuthorizationServerUnavailableError';
}

export interface IntrospectionClientOptions {
  /** Where the authorization server is reached (its issuer unless configured otherwise). */
  authorizationServerUrl: string;
  clientId: string;
  clientSecret: string;
  timeoutMs: number;
  logger: Logger;
}

export interface IntrospectionClient {
  /** The introspection endpoint, from the authorization server's metadata (RFC 8414). */
  endpoint(): Promise<string>;
  introspect(token: string): Promise<Introspection>;
  /** Requests sent to the introspection endpoint so far. */
  readonly requests: number;
}

/** Longest phantom token accepted; a real one is well under 4 KiB. */
const MAX_RESPONSE_CHARS = 64 * 1024;

/** RFC 6749 §2.3.1: id and secret are form-encoded before they are joined and base64-encoded. */
function basicCredentials(clientId: string, secret: string): string {
  const encode = (value: string) => encodeURIComponent(value).replace(/%20/g, '+');
  return `Basic ${Buffer.from(`${encode(clientId)}:${encode(secret)}`).toString('base64')}`;
}

/** RFC 8414 §3.1: the well-known segment goes between the host and the issuer's path. */
function metadataUrl(authorizationServerUrl: string): string {
  const url = new URL(authorizationServerUrl);
  const path = url.pathname === '/' ? '' : url.pathname.replace(/\/$/, '');
  return `${url.origin}/.well-known/oauth-authorization-server${path}`;
}

const isTimeout = (error: unknown) => (error as { name?: string }).name === 'TimeoutError';

export function createIntrospectionClient(options: IntrospectionClientOptions): IntrospectionClient {
  const base = options.authorizationServerUrl.replace(/\/$/, '');
  const fallback = `${base}/introspect`;
  const authorization = basicCredentials(options.clientId, options.clientSecret);
  const { logger } = options;
  let discovered: string | undefined;
  let requests = 0;

  /**
   * Reads the endpoint from the metadata once. A metadata document that cannot be fetched now (the
   * authorization server is down or starting) is tried again on the next introspection; until
   * then the conventional path is used, which fails the same way while the server is down.
   */
  async function endpoint(): Promise<string> {
    if (discovered) return discovered;
    let response: Response;
    try {
      response = await fetch(metadataUrl(base), {
        headers: { accept: 'application/json' },
        signal: AbortSignal.timeout(options.timeoutMs),
        redirect: 'error',
      });
    } catch {
      return fallback;
    }
    if (response.status >= 500) return fallback;
    let metadata: { issuer?: unknown; introspection_endpoint?: unknown } = {};
    if (response.ok) {
      try {
        metadata = (await response.json()) as typeof metadata;
      } catch {
        metadata = {};
      }
    }
    discovered = rebase(metadata, base) ?? fallback;
    logger.info('introspection endpoint', { url: discovered });
    return discovered;
  }

  async function introspect(token: string): Promise<Introspection> {
    const url = await endpoint();
    requests += 1;
    let response: Response;
    let text: string;
    try {
      ({ response, text } = await inClientSpan('POST introspection', {}, async () => {
        const headers: Record<string, string> = {
          authorization,
          accept: 'application/jwt',
          'content-type': 'application/x-www-form-urlencoded',
        };
        injectTraceContext(headers);
        const answer = await fetch(url, {
          method: 'POST',
          headers,
          body: new URLSearchParams({ token, token_type_hint: 'access_token' }),
          signal: AbortSignal.timeout(options.timeoutMs),
          redirect: 'error',
        });
        annotateSpan({ 'http.response.status_code': answer.status });
        return { response: answer, text: await answer.text() };
      }));
    } catch (error) {
      throw new AuthorizationServerUnavailableError(
        isTimeout(error)
          ? 'the authorization server did not answer in time'
          : 'the authorization server cannot be reached',
      );
    }
    if (response.status === 401 || response.status === 403) {
      logger.error(
        'the authorization server refused the gateway credentials: check gateway.client.clientId and gateway.client.secret (the secret must match the authorization server client of role gateway)',
        { status: response.status, client_id: options.clientId, url },
      );
      throw new AuthorizationServerUnavailableError('the gateway cannot check access tokens right now');
    }
    if (response.status >= 500) {
      throw new AuthorizationServerUnavailableError(
        `the authorization server is failing (HTTP ${response.status})`,
      );
    }
    const result =
      response.status === 200
        ? parse(response.headers.get('content-type'), text, response.headers.get(DPOP_JKT_HEADER))
        : undefined;
    if (!result) {
      logger.error(
        'unexpected introspection response: is gateway.authorizationServerUrl a Gatehouse authorization server?',
        { status: response.status, content_type: response.headers.get('content-type'), url },
      );
      throw new AuthorizationServerUnavailableError(
        'the authorization server gave an answer the gateway does not understand',
      );
    }
    return result;
  }

  return {
    endpoint,
    introspect,
    get requests() {
      return requests;
    },
  };
}

/**
 * The metadata's introspection endpoint, moved onto the URL the gateway reaches the server by when
 * that differs from the issuer (e.g. an internal address): same path, reachable host.
 */
function rebase(metadata: { issuer?: unknown; introspection_endpoint?: unknown }, base: string) {
  const { issuer, introspection_endpoint: endpoint } = metadata;
  if (typeof endpoint !== 'string' || !/^https?:\/\//.test(endpoint)) return undefined;
  if (typeof issuer === 'string') {
    const prefix = issuer.replace(/\/$/, '');
    if (endpoint.startsWith(`${prefix}/`)) return `${base}${endpoint.slice(prefix.length)}`;
  }
  return endpoint;
}

/** A 200 answer: the phantom JWT, or `{"active": false}`; anything else is undefined. */
function parse(contentType: string | null, text: string, jkt: string | null): Introspection | undefined {
  const type = (contentType ?? '').split(';')[0]!.trim().toLowerCase();
  if (text.length > MAX_RESPONSE_CHARS) return undefined;
  if (type === 'application/jwt') {
    const jwt = text.trim();
    if (jwt.split('.').length !== 3) return undefined;
    try {
      // Not verified here: it came from the authorization server over the authenticated channel,
      // and the MCP server verifies it (signature, issuer, audience, expiry) before trusting it.
      const claims = decodeJwt(jwt);
      if (typeof claims.exp !== 'number') return undefined;
      // A binding the gateway cannot read must not turn a bound token into a bearer one: fail closed.
      if (jkt !== null && !/^[A-Za-z0-9_-]{43}$/.test(jkt)) return undefined;
      const text = (value: unknown) => (typeof value === 'string' && value.length > 0 ? value : undefined);
      const grantId = text(claims.grant_id);
      const sub = text(claims.sub);
      const clientId = text(claims.client_id);
      return {
        active: true,
        jwt,
        exp: claims.exp,
        ...(jkt !== null ? { jkt } : {}),
        ...(grantId ? { grantId } : {}),
        ...(sub ? { sub } : {}),
        ...(clientId ? { clientId } : {}),
      };
    } catch {
      return undefined;
    }
  }
  if (type === 'application/json') {
    try {
      const body = JSON.parse(text) as { active?: unknown };
      // `active: true` as JSON means the server ignored `Accept: application/jwt`: not a phantom token.
      return body.active === false ? { active: false } : undefined;
    } catch {
      return undefined;
    }
  }
  return undefined;
}
