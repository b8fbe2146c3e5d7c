/**
 * OAuth 2.0 Token Exchange (RFC 8693) from the MCP server's side: the phantom token in, a JWT for one
 * upstream API out, obtained with the MCP server's own client credentials (client_secret_basic).
 *
 * The agent's token is never sent upstream (design invariant 2): every API call carries a token
 * minted for that API's audience. Exchanged tokens are cached until `refreshBeforeSeconds` before they
 * expire, in a bounded cache; concurrent exchanges for the same key share one request to the
 * authorization server.
 *
 * The cache key is what the subject token stands for, not its bytes: the grant (or, for a workload,
 * the client and subject), the token's expiry and scopes, the audience and the requested scope
 * set. Tools that need the same scopes at the same API share a token: it allows no more for one
 * than for the other, and a token per tool would double what every API verifies and caches. The
 * gateway gets a freshly signed phantom token at each introspection, so a key by token hash made every
 * agent re-exchange every 30 s (defect 11); the same grant and token now reuse one exchanged token.
 * Revocations announced by the authorization server drop entries by grant, token, client or subject.
 *
 * A 429 or 503 from the token endpoint with a short `Retry-After` is waited out and retried once
 * (RFC 9110 §10.2.3); a longer one fails the call at once as `temporarily_unavailable`.
 */
import { LRUCache } from 'lru-cache';
import { tokenHash } from '../shared/jwt.ts';
import { KeyIndex } from '../shared/key-index.ts';
import { toolCallDetailsOf } from '../shared/operation-approval.ts';
import { REQUEST_ID_HEADER } from '../shared/request-id.ts';
import { isPlausibleToolName, TOOL_HEADER } from '../shared/tool-header.ts';
import { annotateSpan, inClientSpan, injectTraceContext } from '../shared/tracing.ts';

const TOKEN_EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
/** The phantom token is a JWT (RFC 8693 §3). */
const JWT_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:jwt';

export interface ExchangedToken {
  accessToken: string;
  /** Seconds since the epoch, from `expires_in`. */
  expiresAt: number;
  scope: string | undefined;
  /** The approval the token was minted against (RFC 9396 §7 `authorization_details`), if any. */
  approvalId?: string | undefined;
}

/** What a verified subject token stands for: the cache key and what revocations name. */
export interface ExchangeSubject {
  grantId?: string | undefined;
  /** The agent's opaque token by hash (`token_hash`): what a workload token's revocation names. */
  tokenHash?: string | undefined;
  sub: string;
  clientId: string;
  /** The subject token's expiry, seconds since the epoch. */
  expiresAt: number;
  scopes: readonly string[];
}

export interface ExchangeRequest {
  subjectToken: string;
  audience: string;
  /** Omitted: the authorization server maps the subject's scopes down for this audience. */
  scope?: string;
  /** The verified claims of the subject token; without them the key is the token's hash. */
  subject?: ExchangeSubject;
  /** The agent request's id (src/shared/request-id.ts), for the authorization server's audit line. */
  requestId?: string | undefined;
  /**
   * The tool whose call needs the token: the authorization server names it in the token (`mcp_tool`,
   * the tool whose call it was exchanged for) and in its audit record, and refuses a tool the
   * subject may not use. Not part of the cache key: a later call of a tool with the same scopes at
   * the same API reuses the token.
   */
  tool?: string | undefined;
  /**
   * RFC 9396 `authorization_details` naming the approved call (shared/operation-approval.ts): the
   * token it gets serves that one call, so it is neither cached nor shared with another call.
   */
  authorizationDetails?: string | undefined;
}

/** The longest Retry-After waited out before one retry; longer ones fail the call at once. */
const MAX_RETRY_AFTER_SECONDS = 5;

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
  /** Told of every lookup: answered from the cache, joined an exchange in flight, or a new exchange. */
  onLookup?: (result: 'hit' | 'shared' | 'miss') => void;
}

export interface TokenExchangeClient {
  exchange(request: ExchangeRequest): Promise<ExchangedToken>;
  /** Revocation: drop cached tokens exchanged for this grant, client or subject; the count dropped. */
  dropGrant(grantId: string): number;
  /** The agent's opaque token by hash: what a `token` revocation names. */
  dropToken(tokenHash: string): number;
  dropClient(clientId: string): number;
  dropSubject(sub: string): number;
  clear(): void;
  /** While revocations cannot be heard: cache nothing (true), or as configured (false). */
  suspend(suspended: boolean): void;
  /** A cached token is reused only while `heard()` says revocations are being heard right now. */
  trustWhile(heard: () => boolean): void;
  /** Requests actually sent to the authorization server (cache misses). */
  readonly exchanges: number;
  readonly cacheSize: number;
}

/** RFC 6749 §2.3.1: the client id and secret are form-encoded before going into Basic. */
function basicAuthorization(clientId: string, secret: string): string {
  const encode = (value: string) => encodeURIComponent(value).replace(/%20/g, '+');
  return `Basic ${Buffer.from(`${encode(clientId)}:${encode(secret)}`).toString('base64')}`;
}

/** The cache key: what the subject stands for, or a hash of the subject token; never the token itself. */
export function exchangeCacheKey(request: ExchangeRequest): string {
  const { subject } = request;
  const who = subject
    ? `${subject.grantId ? `grant:${subject.grantId}` : `client:${subject.clientId}:${subject.sub}`} ${subject.expiresAt} ${[...subject.scopes].sort().join(',')}`
    : `token:${tokenHash(request.subjectToken)}`;
  // The requested scope as a set (its order is not its meaning).
  const scope = [...new Set((request.scope ?? '').split(' ').filter(Boolean))].sort().join(' ');
  return `${who} ${request.audience} ${scope}`;
}

const indexNames = (subject: ExchangeSubject | undefined) =>
  subject
    ? [
        ...(subject.grantId ? [`grant:${subject.grantId}`] : []),
        ...(subject.tokenHash ? [`token:${subject.tokenHash}`] : []),
        `client:${subject.clientId}`,
        `sub:${subject.sub}`,
      ]
    : [];

export function createTokenExchangeClient(options: TokenExchangeClientOptions): TokenExchangeClient {
  const doFetch = options.fetch ?? fetch;
  const now = options.now ?? (() => Date.now() / 1000);
  const index = new KeyIndex();
  const cache = new LRUCache<string, { token: ExchangedToken; names: string[] }>({
    max: options.maxEntries,
    dispose: (entry, key) => {
      for (const name of entry.names) index.remove(name, key);
    },
  });
  /** Exchanges under way, with the generation they started in (see exchange). */
  const inflight = new Map<string, { promise: Promise<ExchangedToken>; generation: number }>();
  let suspended = false;
  let heard: () => boolean = () => true;
  /** Bumped by every revocation: an exchange that straddles one is not cached. */
  let generation = 0;
  const drop = (name: string) => {
    generation += 1;
    let dropped = 0;
    for (const key of index.take(name)) if (cache.delete(key)) dropped += 1;
    return dropped;
  };
  const authorization = basicAuthorization(options.clientId, options.clientSecret);
  let exchanges = 0;

  /** Seconds a 429/503 asks to wait, or undefined when it does not say (RFC 9110 §10.2.3). */
  const retryAfter = (response: Response): number | undefined => {
    if (response.status !== 429 && response.status !== 503) return undefined;
    const value = response.headers.get('retry-after');
    if (value === null || !/^\d+$/.test(value.trim())) return undefined;
    return Number(value.trim());
  };

  async function requestToken(request: ExchangeRequest, retried = false): Promise<ExchangedToken> {
    exchanges += 1;
    const body = new URLSearchParams({
      grant_type: TOKEN_EXCHANGE_GRANT,
      subject_token: request.subjectToken,
      subject_token_type: JWT_TOKEN_TYPE,
      audience: request.audience,
    });
    if (request.scope) body.set('scope', request.scope);
    if (request.authorizationDetails) {
      body.set('authorization_details', request.authorizationDetails);
      // oidc-provider wants a resource indicator beside authorization_details (RFC 9396 §6.2): the
      // same API as `audience`, which the exchange accepts when both name one target.
      body.set('resource', request.audience);
    }
    const issuedAt = now();
    let response: Response;
    try {
      // The audience is a configured API URL, not a secret: it tells which exchange this was.
      response = await inClientSpan(
        'POST token exchange',
        { 'gatehouse.audience': request.audience },
        async () => {
          const headers: Record<string, string> = {
            authorization,
            'content-type': 'application/x-www-form-urlencoded',
            accept: 'application/json',
            ...(request.requestId ? { [REQUEST_ID_HEADER]: request.requestId } : {}),
            ...(request.tool && isPlausibleToolName(request.tool) ? { [TOOL_HEADER]: request.tool } : {}),
          };
          injectTraceContext(headers);
          const answer = await doFetch(options.tokenEndpoint, {
            method: 'POST',
            headers,
            body,
            redirect: 'error',
            signal: AbortSignal.timeout(options.timeoutMs),
          });
          annotateSpan({ 'http.response.status_code': answer.status });
          return answer;
        },
      );
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
    const wait = retryAfter(response);
    if (
      wait !== undefined &&
      !retried &&
      wait <= MAX_RETRY_AFTER_SECONDS &&
      wait * 1000 < options.timeoutMs
    ) {
      await new Promise((resolve) => setTimeout(resolve, wait * 1000));
      return requestToken(request, true);
    }
    if (!response.ok) {
      const code =
        wait !== undefined || response.status === 429
          ? 'temporarily_unavailable'
          : typeof json.error === 'string'
            ? json.error
            : 'server_error';
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
      ...(typeof toolCallDetailsOf(json.authorization_details)?.approval_id === 'string'
        ? { approvalId: toolCallDetailsOf(json.authorization_details)!.approval_id }
        : {}),
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
      // One approved call, one token: never from or into the cache, never joined.
      if (request.authorizationDetails) {
        options.onLookup?.('miss');
        return requestToken(request);
      }
      const key = exchangeCacheKey(request);
      const cached = cache.get(key)?.token;
      const usable = cached && cached.expiresAt - options.refreshBeforeSeconds > now();
      // The stream unheard lately (stalled with its connection up): a revocation may be held back.
      if (usable && heard()) {
        options.onLookup?.('hit');
        return Promise.resolve(cached);
      }
      if (cached && !usable) cache.delete(key);
      // Joined only when no revocation arrived since it started: its token may predate one.
      const pending = inflight.get(key);
      if (pending && pending.generation === generation) {
        options.onLookup?.('shared');
        return pending.promise;
      }
      options.onLookup?.('miss');
      const started = generation;
      const promise = requestToken(request)
        .then((token) => {
          // Cached only while it has more than refreshBeforeSeconds to live, while revocations can be
          // heard, and when no revocation arrived meanwhile; failures are never cached.
          const fresh = token.expiresAt - options.refreshBeforeSeconds > now();
          if (fresh && !suspended && generation === started) {
            const names = indexNames(request.subject);
            cache.set(key, { token, names });
            for (const name of names) index.add(name, key);
          }
          return token;
        })
        .finally(() => {
          if (inflight.get(key) === entry) inflight.delete(key);
        });
      const entry = { promise, generation: started };
      inflight.set(key, entry);
      return promise;
    },
    dropGrant: (grantId) => drop(`grant:${grantId}`),
    dropToken: (hash) => drop(`token:${hash}`),
    dropClient: (clientId) => drop(`client:${clientId}`),
    dropSubject: (sub) => drop(`sub:${sub}`),
    clear() {
      generation += 1;
      cache.clear();
      index.clear();
    },
    suspend(value) {
      suspended = value;
      if (value) {
        generation += 1;
        cache.clear();
        index.clear();
      }
    },
    trustWhile(check) {
      heard = check;
    },
  };
}
