/**
 * Resolver for OAuth Client ID Metadata Documents (CIMD), draft-ietf-oauth-client-id-metadata-document-02.
 *
 * When a client_id is an https URL, the authorization server fetches the JSON document at that URL and uses it
 * as the client's registration metadata (Section 5). The resolver returns plain snake_case client metadata
 * (RFC 7591, Section 2) or throws a ClientMetadataDocumentError carrying an OAuth error code.
 *
 * Security properties, each enforced here rather than left to callers:
 * - SSRF (Section 8.6), no redirects (Section 5) and bounded work (Section 8.7): the document is fetched by the
 *   server's one vetted transport (outbound/vetted-fetch.ts), which refuses special-use addresses before it
 *   connects, pins the vetted address, follows no redirect and caps time and size; any status other than 200,
 *   3xx included, is a failure.
 * - No shared secrets (Section 4.1) and exact client_id match (Sections 3 and 4).
 * - Document bodies are never logged, nor echoed in error descriptions.
 */

import { LRUCache } from 'lru-cache';
import { createLogger, type Logger } from '../../shared/logging.ts';
import {
  type HostLookup,
  OutboundRequestError,
  systemLookup,
  type VettedGet,
  type VettedResponse,
  vettedGet,
} from '../outbound/vetted-fetch.ts';

// ---------------------------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------------------------

/** Internal classification of a failure: for logs, metrics and tests. Never sent to the client as such. */
export type ClientMetadataDocumentFailure =
  | 'invalid_url'
  | 'forbidden_address'
  | 'network'
  | 'timeout'
  | 'http_status'
  | 'too_large'
  | 'invalid_json'
  | 'invalid_document';

export type ClientMetadataDocumentErrorCode = 'invalid_client' | 'invalid_client_metadata';

/**
 * A client metadata document could not be used. `error` is the OAuth error code to return (RFC 6749,
 * Section 5.2 `invalid_client`; RFC 7591, Section 3.2.2 `invalid_client_metadata`), `description` a short,
 * safe `error_description`: it never contains document content, and transport failures (DNS, refused address,
 * connection, timeout) share one generic text so the endpoint cannot be used as an oracle for what internal
 * names resolve to or which internal hosts answer.
 */
export class ClientMetadataDocumentError extends Error {
  readonly error: ClientMetadataDocumentErrorCode;
  readonly description: string;
  readonly reason: ClientMetadataDocumentFailure;
  /** True when thrown from the failure backoff without a fetch. */
  readonly backoff: boolean;

  constructor(
    error: ClientMetadataDocumentErrorCode,
    description: string,
    reason: ClientMetadataDocumentFailure,
    backoff = false,
  ) {
    super(description);
    this.name = 'ClientMetadataDocumentError';
    this.error = error;
    this.description = description;
    this.reason = reason;
    this.backoff = backoff;
  }
}

const UNREACHABLE = 'client metadata document could not be retrieved';

function transportError(reason: 'forbidden_address' | 'network' | 'timeout'): ClientMetadataDocumentError {
  return new ClientMetadataDocumentError('invalid_client', UNREACHABLE, reason);
}

function metadataError(description: string): ClientMetadataDocumentError {
  return new ClientMetadataDocumentError('invalid_client_metadata', description, 'invalid_document');
}

// ---------------------------------------------------------------------------------------------------------------
// Client Identifier URL syntax
// ---------------------------------------------------------------------------------------------------------------

const LOOPBACK_HTTP_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);

/**
 * True when `id` is a Client Identifier URL this server will fetch (draft Section 3):
 * - MUST use the https scheme. With `allowLoopbackHttp` (development only, Section 8.6 allows relaxing the
 *   SSRF rule for loopback in development) `http://localhost`, `http://127.0.0.1` and `http://[::1]` with any
 *   port are accepted too.
 * - MUST NOT contain userinfo; MUST NOT contain a fragment.
 * - MUST contain a path component; MUST NOT contain single-dot or double-dot path segments.
 * - SHOULD NOT contain a query: we refuse one (also an empty "?"), since a query adds nothing a path cannot
 *   say and invites confusion between URLs that compare unequal as strings.
 * - A path of exactly "/" is NOT RECOMMENDED by Section 3 (the document would live at the root of the origin,
 *   clashing with whatever is published there); we refuse it.
 *
 * Client IDs are compared by simple string comparison (Section 3, RFC 3986 Section 6.2.1), and we fetch
 * exactly the client_id. So the string must already be in the form WHATWG URL serialises it to: anything
 * the parser would rewrite (upper-case host, default port ":443", IDN, percent-encoded dot segments,
 * backslashes, whitespace, "127.1"-style addresses) is refused rather than silently normalised, which keeps
 * "the URL we fetched" and "the client_id" the same string.
 */
export function isClientIdMetadataDocumentUrl(id: string, options: { allowLoopbackHttp: boolean }): boolean {
  if (typeof id !== 'string') return false;
  const url = URL.parse(id);
  if (url === null || url.href !== id) return false;

  if (url.protocol === 'http:') {
    if (!options.allowLoopbackHttp || !LOOPBACK_HTTP_HOSTS.has(url.hostname)) return false;
  } else if (url.protocol !== 'https:') {
    return false;
  }

  // userinfo: an empty one ("https://@host/") is dropped by the serialiser, so the canonical check caught it.
  if (url.username !== '' || url.password !== '') return false;
  if (id.includes('#') || id.includes('?')) return false;
  if (url.pathname === '' || url.pathname === '/') return false;

  // Canonical serialisation already removed dot segments; this also rejects their percent-encoded spellings
  // explicitly, so the rule does not depend on parser details.
  for (const segment of url.pathname.split('/')) {
    const decoded = segment.replace(/%2e/gi, '.');
    if (decoded === '.' || decoded === '..') return false;
  }
  return true;
}

/** The transport's failure as this resolver's error: transport problems share one generic text. */
function fromTransport(error: unknown, maxBytes: number): ClientMetadataDocumentError {
  if (error instanceof ClientMetadataDocumentError) return error;
  if (!(error instanceof OutboundRequestError)) return transportError('network');
  switch (error.reason) {
    case 'too_large':
      return tooLarge(maxBytes);
    case 'encoded':
      return new ClientMetadataDocumentError(
        'invalid_client',
        'client metadata document must not be content-encoded',
        'http_status',
      );
    case 'forbidden_address':
    case 'timeout':
      return transportError(error.reason);
    default:
      return transportError('network');
  }
}

function tooLarge(maxBytes: number): ClientMetadataDocumentError {
  return new ClientMetadataDocumentError(
    'invalid_client',
    `client metadata document exceeds ${maxBytes} bytes`,
    'too_large',
  );
}

// ---------------------------------------------------------------------------------------------------------------
// Document validation
// ---------------------------------------------------------------------------------------------------------------

/** Section 4.1: methods built on a shared symmetric secret, which a public document cannot establish. */
const SHARED_SECRET_AUTH_METHODS = new Set([
  'client_secret_basic',
  'client_secret_post',
  'client_secret_jwt',
]);

/** JWK members that only private or symmetric keys carry (RFC 7518, Sections 6.2.2, 6.3.2 and 6.4.1). */
const PRIVATE_JWK_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];

/**
 * URLs the server may fetch or show to the user. Section 8.6 asks to only accept known, supported schemes (a
 * `javascript:` logo_uri rendered on a consent page is the classic example), so these must be https (or
 * loopback http in development mode).
 */
const WEB_URI_PROPERTIES = [
  'client_uri',
  'logo_uri',
  'policy_uri',
  'tos_uri',
  'jwks_uri',
  'sector_identifier_uri',
  'initiate_login_uri',
];

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function parseDocument(body: Uint8Array): Record<string, unknown> {
  let parsed: unknown;
  try {
    // RFC 8259, Section 8.1: JSON exchanged between systems MUST be UTF-8; `fatal` refuses malformed UTF-8
    // instead of substituting U+FFFD. (The decoder drops a leading BOM, which Section 8.1 permits.)
    const text = new TextDecoder('utf-8', { fatal: true }).decode(body);
    // "__proto__" keys are dropped: JSON.parse makes them own properties, but a later Object.assign or
    // merge by a caller would turn them into a prototype change.
    parsed = JSON.parse(text, (key, value: unknown) => (key === '__proto__' ? undefined : value));
  } catch {
    // Deliberately no detail: V8's SyntaxError message quotes the input, i.e. the document body.
    throw new ClientMetadataDocumentError(
      'invalid_client',
      'client metadata document is not valid JSON',
      'invalid_json',
    );
  }
  if (!isObject(parsed)) throw metadataError('client metadata document must be a JSON object');
  return parsed;
}

function validateDocument(
  clientId: string,
  document: Record<string, unknown>,
  options: { allowLoopbackHttp: boolean },
): Record<string, unknown> {
  // Sections 3 and 4: the document's client_id MUST equal the URL it was fetched from, by simple string
  // comparison. This is what binds the metadata to the URL's owner.
  if (document.client_id !== clientId) {
    throw metadataError('client_id in the client metadata document does not match the document URL');
  }

  // Section 4.1: no shared-secret authentication, no client_secret / client_secret_expires_at.
  const method = document.token_endpoint_auth_method;
  if (method !== undefined && typeof method !== 'string') {
    throw metadataError('token_endpoint_auth_method must be a string');
  }
  if (method !== undefined && SHARED_SECRET_AUTH_METHODS.has(method)) {
    throw metadataError('token_endpoint_auth_method must not be a shared-secret method');
  }
  if (Object.hasOwn(document, 'client_secret') || Object.hasOwn(document, 'client_secret_expires_at')) {
    throw metadataError(
      'client metadata document must not contain client_secret or client_secret_expires_at',
    );
  }

  // Section 4.1: private key material MUST NOT be included; only public keys may be published.
  if (document.jwks !== undefined) {
    const keys = isObject(document.jwks) ? document.jwks.keys : undefined;
    if (!Array.isArray(keys) || !keys.every(isObject)) throw metadataError('jwks must be a JWK Set');
    if (
      keys.some(
        (key) => key.kty === 'oct' || PRIVATE_JWK_MEMBERS.some((member) => Object.hasOwn(key, member)),
      )
    ) {
      throw metadataError('jwks must contain public keys only');
    }
  }

  // Section 4.2 with RFC 9700, Section 2.1: redirect URIs must be registered, here by the document itself.
  // Gatehouse serves MCP clients, which use the authorization code flow, so the list is required.
  const redirectUris = document.redirect_uris;
  if (
    !Array.isArray(redirectUris) ||
    redirectUris.length === 0 ||
    !redirectUris.every((uri) => typeof uri === 'string' && uri !== '')
  ) {
    throw metadataError('redirect_uris must be a non-empty array of strings');
  }

  for (const property of WEB_URI_PROPERTIES) {
    const value = document[property];
    if (value === undefined) continue;
    const url = typeof value === 'string' ? URL.parse(value) : null;
    const ok =
      url !== null &&
      (url.protocol === 'https:' ||
        (options.allowLoopbackHttp && url.protocol === 'http:' && LOOPBACK_HTTP_HOSTS.has(url.hostname)));
    if (!ok) throw metadataError(`${property} must be an https URL`);
  }

  // oidc-provider defaults token_endpoint_auth_method to client_secret_basic, which Section 4.1 forbids here;
  // a document that says nothing describes a public client.
  return method === undefined ? { ...document, token_endpoint_auth_method: 'none' } : { ...document };
}

// ---------------------------------------------------------------------------------------------------------------
// Caching
// ---------------------------------------------------------------------------------------------------------------

/**
 * Cache lifetime from Cache-Control (Section 5.2: SHOULD respect HTTP caching, RFC 9111, within the server's
 * own bounds). `max-age` (RFC 9111, Section 5.2.2.1) sets it; `no-store`/`no-cache` mean "do not reuse", which
 * the lower bound then overrides: the floor exists so that a client cannot make us refetch on every request.
 * Without a usable directive the lower bound applies.
 */
export function cacheLifetimeSeconds(
  cacheControl: string | string[] | undefined,
  bounds: { minSeconds: number; maxSeconds: number },
): number {
  let maxAge: number | undefined;
  const header = Array.isArray(cacheControl) ? cacheControl.join(',') : (cacheControl ?? '');
  for (const directive of header.split(',')) {
    const [rawName = '', rawValue] = directive.split('=', 2);
    const name = rawName.trim().toLowerCase();
    if (name === 'no-store' || name === 'no-cache') {
      maxAge = 0;
    } else if (name === 'max-age' && rawValue !== undefined) {
      // RFC 9111, Section 5.2: the quoted form is tolerated. With conflicting values keep the shortest.
      const value = rawValue.trim().replace(/^"(.*)"$/, '$1');
      if (/^\d+$/.test(value)) maxAge = Math.min(maxAge ?? Number.POSITIVE_INFINITY, Number(value));
    }
  }
  return Math.max(bounds.minSeconds, Math.min(bounds.maxSeconds, maxAge ?? bounds.minSeconds));
}

// ---------------------------------------------------------------------------------------------------------------
// Resolver
// ---------------------------------------------------------------------------------------------------------------

export interface ClientMetadataDocumentResolverOptions {
  /** Development only: accept http://localhost|127.0.0.1|[::1] URLs and loopback peers (Section 8.6). */
  allowLoopbackHttp: boolean;
  /** Body size cap in bytes. Section 8.7 recommends 5 kilobytes. Default 5120. */
  maxBytes?: number;
  /** Deadline for the whole fetch (DNS, connect, TLS, headers, body). Default 3000. */
  timeoutMs?: number;
  /** Bound on cached documents and, separately, on remembered failures. Default 1000. */
  cacheMaxEntries?: number;
  /** Lower bound on the cache lifetime of a document. Default 60. */
  minCacheSeconds?: number;
  /** Upper bound on the cache lifetime of a document. Default 86400. */
  maxCacheSeconds?: number;
  /** How long a failure is remembered before the URL is fetched again; 0 disables. Default 60. */
  failureBackoffSeconds?: number;
  logger?: Logger;
  /** Replaces the transport. It must give every guarantee of outbound/vetted-fetch.ts. */
  fetchImpl?: VettedGet;
  /** Replaces DNS resolution for the default transport (tests, custom resolvers). Its answers are still vetted. */
  lookup?: HostLookup;
}

export interface ClientMetadataDocumentResolver {
  /** The validated client metadata for a Client Identifier URL; throws ClientMetadataDocumentError. */
  resolve(clientId: string): Promise<Record<string, unknown>>;
  /** Drops the cached document and any remembered failure for this client_id. */
  forget(clientId: string): void;
}

interface RememberedFailure {
  error: ClientMetadataDocumentErrorCode;
  description: string;
  reason: ClientMetadataDocumentFailure;
}

function positive(name: string, value: number, integer: boolean): number {
  if (!Number.isFinite(value) || value <= 0 || (integer && !Number.isInteger(value))) {
    throw new RangeError(`${name} must be a positive ${integer ? 'integer' : 'number'}`);
  }
  return value;
}

export function createClientMetadataDocumentResolver(
  options: ClientMetadataDocumentResolverOptions,
): ClientMetadataDocumentResolver {
  const allowLoopbackHttp = options.allowLoopbackHttp === true;
  const maxBytes = positive('maxBytes', options.maxBytes ?? 5120, true);
  const timeoutMs = positive('timeoutMs', options.timeoutMs ?? 3000, false);
  const cacheMaxEntries = positive('cacheMaxEntries', options.cacheMaxEntries ?? 1000, true);
  const minCacheSeconds = positive('minCacheSeconds', options.minCacheSeconds ?? 60, false);
  const maxCacheSeconds = positive('maxCacheSeconds', options.maxCacheSeconds ?? 86400, false);
  if (maxCacheSeconds < minCacheSeconds) throw new RangeError('maxCacheSeconds must be >= minCacheSeconds');
  const failureBackoffSeconds = options.failureBackoffSeconds ?? 60;
  if (!Number.isFinite(failureBackoffSeconds) || failureBackoffSeconds < 0) {
    throw new RangeError('failureBackoffSeconds must be a number >= 0');
  }
  const logger = options.logger ?? createLogger('client-metadata-document');
  const fetchImpl = options.fetchImpl ?? vettedGet;
  const lookup = options.lookup ?? systemLookup;

  if (allowLoopbackHttp) {
    // Section 8.6: the loopback exception MUST NOT be applied in production deployments.
    logger.warn('development only: loopback http client metadata documents are accepted');
  }

  const documents = new LRUCache<string, Record<string, unknown>>({
    max: cacheMaxEntries,
    ttl: Math.max(1, Math.round(maxCacheSeconds * 1000)),
  });
  // Failure backoff. Section 5.2 forbids caching error responses or invalid documents *as client metadata*;
  // this stores no response, only the fact that the URL failed, so that one failing (or hostile) URL is not
  // fetched again on every request. A success is never served from here.
  const failures =
    failureBackoffSeconds > 0
      ? new LRUCache<string, RememberedFailure>({
          max: cacheMaxEntries,
          ttl: Math.max(1, Math.round(failureBackoffSeconds * 1000)),
        })
      : undefined;
  // Concurrent resolves of one URL share one fetch.
  const pending = new Map<string, Promise<Record<string, unknown>>>();

  const fetchAndValidate = async (
    clientId: string,
  ): Promise<{ document: Record<string, unknown>; ttl: number }> => {
    let response: VettedResponse;
    try {
      response = await fetchImpl(new URL(clientId), {
        maxBytes,
        timeoutMs,
        allowLoopback: allowLoopbackHttp,
        headers: { accept: 'application/json', 'accept-encoding': 'identity', 'user-agent': 'Gatehouse' },
        lookup,
      });
    } catch (error) {
      throw fromTransport(error, maxBytes);
    }
    if (response.status !== 200) {
      const redirect = response.status >= 300 && response.status < 400 ? ' (redirects are not followed)' : '';
      throw new ClientMetadataDocumentError(
        'invalid_client',
        `client metadata document request returned HTTP ${response.status}${redirect}`,
        'http_status',
      );
    }
    // Re-checked here so the cap also binds a replacement transport.
    if (response.body.byteLength > maxBytes) throw tooLarge(maxBytes);
    const document = validateDocument(clientId, parseDocument(response.body), { allowLoopbackHttp });
    const ttl = cacheLifetimeSeconds(response.headers['cache-control'], {
      minSeconds: minCacheSeconds,
      maxSeconds: maxCacheSeconds,
    });
    return { document, ttl };
  };

  const start = (clientId: string): Promise<Record<string, unknown>> => {
    const host = new URL(clientId).host;
    const promise = fetchAndValidate(clientId).then(
      ({ document, ttl }) => {
        // forget() during the fetch removes the pending entry: do not resurrect what was forgotten.
        if (pending.get(clientId) === promise) {
          documents.set(clientId, document, { ttl: Math.max(1, Math.round(ttl * 1000)) });
          failures?.delete(clientId);
        }
        logger.info('client metadata document fetched', { client_id: clientId, host, cache_seconds: ttl });
        return document;
      },
      (cause: unknown) => {
        const error = cause instanceof ClientMetadataDocumentError ? cause : transportError('network');
        if (pending.get(clientId) === promise) {
          failures?.set(clientId, {
            error: error.error,
            description: error.description,
            reason: error.reason,
          });
        }
        // Only our own short texts reach the log: never a body, never a parser message.
        logger.warn('client metadata document rejected', {
          client_id: clientId,
          host,
          reason: error.reason,
          description: error.description,
        });
        throw error;
      },
    );
    pending.set(clientId, promise);
    const cleanup = () => {
      if (pending.get(clientId) === promise) pending.delete(clientId);
    };
    promise.then(cleanup, cleanup);
    return promise;
  };

  return {
    async resolve(clientId) {
      if (!isClientIdMetadataDocumentUrl(clientId, { allowLoopbackHttp })) {
        throw new ClientMetadataDocumentError(
          'invalid_client',
          'client_id is not a valid client identifier URL',
          'invalid_url',
        );
      }
      const cached = documents.get(clientId);
      if (cached !== undefined) return structuredClone(cached);

      const failure = failures?.get(clientId);
      if (failure !== undefined) {
        throw new ClientMetadataDocumentError(failure.error, failure.description, failure.reason, true);
      }

      const document = await (pending.get(clientId) ?? start(clientId));
      // Each caller gets its own copy: a caller mutating its metadata must not alter the cache or other callers.
      return structuredClone(document);
    },

    forget(clientId) {
      documents.delete(clientId);
      failures?.delete(clientId);
      pending.delete(clientId);
    },
  };
}
