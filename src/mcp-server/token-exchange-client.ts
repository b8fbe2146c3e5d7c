/**
 * OAuth 2.0 Token Exchange (RFC 8693) from the MCP server's side: the phantom token in, a JWT for one
 * upstream API out, obtained with the MCP server's own client credentials (client_secret_basic).
 *
 * The agent's token is never sent upstream (design invariant 2): every API call carries a token
 * minted for that API's audience. Exchanged tokens are cached per subject token (by hash, never the
 * token itself), audience and scope until `refreshBeforeSeconds` before they expire, in a bounded
 * cache; concurrent exchanges for the same key share one request to the authorization server.
 */
import { LRUCache } from 'lru-cache';
import { tokenHash } from '../shared/jwt.ts';

const TOKEN_EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
/** The phantom token is a JWT (RFC 8693 §3). */
const JWT_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:jwt';

export interface ExchangedToken {
  accessToken: string;
  /** Seconds since the epoch, from `expires_in`. */
  expiresAt: number;
  scope: string | undefined;
}

export interface ExchangeRequest {
  subjectToken: string;
  audience: string;
  /** Omitted: the authorization server maps the subject's scopes down for this audience. */
  scope?: string;
}

/** The authorization server refused or could not be asked; `code` is the OAuth error or a transport one. */
export class TokenExchangeError extends Error {
  override name = 'TokenExchangeError';
  readonly code: string;
  /** HTTP status of the token endpoint, when it answered. */
  readonly status: number | undefined;
  constructor(code: string, message: string, status?: number) {
    super(message);
    this.code = code;
    this.status = status;
  }
}

export interface TokenExchangeClientOptions {
  tokenEndpoint: string;
  clientId: string;
  clientSecret: string;
  maxEntries: number;
  /** Tokens are dropped this long before they expire, so an upstream never sees one expire in flight. */
  refreshBeforeSeconds: number;
  timeoutMs: number;
  fetch?: typeof fetch;
  /** Seconds since the epoch; tests pass a clock. */
  now?: () => number;
}

export interface TokenExchangeClient {
  exchange(request: ExchangeRequest): Promise<ExchangedToken>;
  /** Requests actually sent to the authorization server (cache misses). */
  readonly exchanges: number;
  readonly cacheSize: number;
}

/** RFC 6749 §2.3.1: the client id and secret are form-encoded before going into Basic. */
function basicAuthorization(clientId: string, secret: string): string {
  const encode = (value: string) => encodeURIComponent(value).replace(/%20/g, '+');
  return `Basic ${Buffer.from(`${encode(clientId)}:${encode(secret)}`).toString('base64')}`;
}

/** The cache key: a hash of the subject token, never the token itself. */
export function exchangeCacheKey(request: ExchangeRequest): string {
  return `${tokenHash(request.subjectToken)} ${request.audience} ${request.scope ?? ''}`;
}

export function createTokenExchangeClient(options: TokenExchangeClientOptions): TokenExchangeClient {
  const doFetch = options.fetch ?? fetch;
  const now = options.now ?? (() => Date.now() / 1000);
  const cache = new LRUCache<string, ExchangedToken>({ max: options.maxEntries });
  const inflight = new Map<string, Promise<ExchangedToken>>();
  const authorization = basicAuthorization(options.clientId, options.clientSecret);
  let exchanges = 0;

  async function requestToken(request: ExchangeRequest): Promise<ExchangedToken> {
    exchanges += 1;
    const body = new URLSearchParams({
      grant_type: TOKEN_EXCHANGE_GRANT,
      subject_token: request.subjectToken,
      subject_token_type: JWT_TOKEN_TYPE,
      audience: request.audience,
    });
    if (request.scope) body.set('scope', request.scope);
    const issuedAt = now();
    let response: Response;
    try {
      response = await doFetch(options.tokenEndpoint, {
        method: 'POST',
        headers: {
          authorization,
          'content-type': 'application/x-www-form-urlencoded',
          accept: 'application/json',
        },
        body,
        redirect: 'error',
        signal: AbortSignal.timeout(options.timeoutMs),
      });
    } catch (error) {
      const timedOut = (error as Error).name === 'TimeoutError';
      throw new TokenExchangeError(
        timedOut ? 'timeout' : 'unreachable',
        timedOut
          ? `the authorization server did not answer within ${options.timeoutMs} ms`
          : 'the authorization server could not be reached',
      );
    }
    let json: Record<string, unknown> = {};
    try {
      json = (await response.json()) as Record<string, unknown>;
    } catch {
      // A non-JSON answer is reported by status below.
    }
    if (!response.ok) {
      const code = typeof json.error === 'string' ? json.error : 'server_error';
      const description = typeof json.error_description === 'string' ? json.error_description : undefined;
      throw new TokenExchangeError(
        code,
        `the authorization server refused the token exchange (${code}${description ? `: ${description}` : ''})`,
        response.status,
      );
    }
    if (typeof json.access_token !== 'string' || typeof json.expires_in !== 'number') {
      throw new TokenExchangeError(
        'invalid_response',
        'the authorization server answered the token exchange without a usable token',
        response.status,
      );
    }
    return {
      accessToken: json.access_token,
      expiresAt: issuedAt + json.expires_in,
      scope: typeof json.scope === 'string' ? json.scope : undefined,
    };
  }

  return {
    get exchanges() {
      return exchanges;
    },
    get cacheSize() {
      return cache.size;
    },
    exchange(request) {
      const key = exchangeCacheKey(request);
      const cached = cache.get(key);
      if (cached && cached.expiresAt - options.refreshBeforeSeconds > now()) return Promise.resolve(cached);
      if (cached) cache.delete(key);
      const pending = inflight.get(key);
      if (pending) return pending;
      const promise = requestToken(request)
        .then((token) => {
          // Cached only while it has more than refreshBeforeSeconds to live; failures are never cached.
          if (token.expiresAt - options.refreshBeforeSeconds > now()) cache.set(key, token);
          return token;
        })
        .finally(() => inflight.delete(key));
      inflight.set(key, promise);
      return promise;
    },
  };
}
