/**
 * Header rules of a reverse proxy: hop-by-hop fields stay on their hop (RFC 9110 §7.6.1), the
 * upstream learns who asked through X-Forwarded-*, and browsers may read the headers an MCP client
 * needs.
 */
import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders } from 'node:http';
import ipaddr from 'ipaddr.js';

/**
 * Fields that describe one connection, not the message (RFC 9110 §7.6.1, RFC 9112 §6.1, §7.4),
 * plus `proxy-connection` (a non-standard alias) and `expect` (the gateway already answered any
 * `100-continue` itself).
 */
export const HOP_BY_HOP_HEADERS: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'expect',
]);

/** W3C Trace Context and Baggage fields: what a client says about its own trace. */
export const TRACE_CONTEXT_HEADERS = ['traceparent', 'tracestate', 'baggage'] as const;

/**
 * A copy of `headers` without hop-by-hop fields, including every field the `Connection` header
 * names (RFC 9110 §7.6.1: "a proxy or gateway MUST ... remove any header field ... listed in the
 * Connection header field"). Names are lowercase, as Node delivers them.
 */
export function stripHopByHop<T extends IncomingHttpHeaders | OutgoingHttpHeaders>(headers: T): T {
  // On every request, both ways: plain loops, no array or set unless `Connection` names fields.
  const named = connectionFields(headers.connection);
  const out: Record<string, unknown> = {};
  for (const name in headers) {
    if (!Object.hasOwn(headers, name)) continue;
    const value = headers[name];
    if (value === undefined) continue;
    const lower = name.toLowerCase();
    if (HOP_BY_HOP_HEADERS.has(lower) || named?.has(lower)) continue;
    out[lower] = value;
  }
  return out as T;
}

/** The field names a `Connection` header lists (RFC 9110 §7.6.1); undefined when it lists none. */
function connectionFields(connection: string | string[] | number | undefined): Set<string> | undefined {
  if (connection === undefined) return undefined;
  let named: Set<string> | undefined;
  for (const value of Array.isArray(connection) ? connection : [connection]) {
    for (const part of String(value).split(',')) {
      const name = part.trim().toLowerCase();
      if (!name) continue;
      named ??= new Set();
      named.add(name);
    }
  }
  return named;
}

/**
 * The request headers to send upstream: hop-by-hop fields and `host` removed (the upstream gets its
 * own host; the original travels in X-Forwarded-Host), X-Forwarded-For/Proto/Host set. Values a
 * client sent in X-Forwarded-* or Forwarded are kept only behind a trusted proxy (`trustProxy`);
 * otherwise they are replaced, so a client cannot claim another address. A client's trace context
 * (`traceparent`, `tracestate`, `baggage`) is removed.
 */
export function upstreamRequestHeaders(req: IncomingMessage, trustProxy: boolean): OutgoingHttpHeaders {
  const headers: OutgoingHttpHeaders = stripHopByHop(req.headers);
  delete headers.host;
  // An agent's trace context stays at the edge, like its X-Request-Id: the gateway starts the trace
  // (and adds its own `traceparent` when tracing is on; shared/tracing.ts, docs/security.md).
  for (const name of TRACE_CONTEXT_HEADERS) delete headers[name];
  const remote = req.socket.remoteAddress ?? '';
  const proto = 'encrypted' in req.socket && req.socket.encrypted ? 'https' : 'http';
  const received = {
    for: req.headers['x-forwarded-for'],
    proto: req.headers['x-forwarded-proto'],
    host: req.headers['x-forwarded-host'],
  };
  if (!trustProxy) delete headers.forwarded;
  headers['x-forwarded-for'] = trustProxy && received.for ? `${received.for}, ${remote}` : remote;
  headers['x-forwarded-proto'] = (trustProxy && received.proto) || proto;
  const host = (trustProxy && received.host) || req.headers.host;
  if (host) headers['x-forwarded-host'] = host;
  else delete headers['x-forwarded-host'];
  return headers;
}

/** Response headers an MCP client in a browser must be able to read (CORS, Fetch §3.2.5). */
export const EXPOSED_HEADERS =
  'WWW-Authenticate, Mcp-Session-Id, MCP-Protocol-Version, DPoP-Nonce, X-Request-Id';

/**
 * Adds `Access-Control-Expose-Headers` when the request came from a browser (it has an `Origin`)
 * and the upstream did not decide itself; the upstream still decides whether CORS is allowed at all.
 */
export function withExposedHeaders(
  req: IncomingMessage,
  headers: OutgoingHttpHeaders | Record<string, string>,
): void {
  if (req.headers.origin === undefined) return;
  const present = Object.keys(headers).some((name) => name.toLowerCase() === 'access-control-expose-headers');
  if (!present) headers['access-control-expose-headers'] = EXPOSED_HEADERS;
}

/**
 * The gateway removed a token the authorization server called inactive (expired, revoked, unknown),
 * so the upstream answered as if none was sent. RFC 6750 §3.1 wants `error="invalid_token"` when a
 * token was presented and is not valid; clients use it to refresh or re-authorize. Added to a
 * Bearer challenge that carries no error of its own.
 */
export function markInvalidToken(status: number, headers: OutgoingHttpHeaders): void {
  const challenge = headers['www-authenticate'];
  if (
    status !== 401 ||
    typeof challenge !== 'string' ||
    !/^Bearer\b/i.test(challenge) ||
    /\berror=/i.test(challenge)
  ) {
    return;
  }
  const params = challenge.replace(/^Bearer\s*/i, '');
  headers['www-authenticate'] = `Bearer error="invalid_token"${params ? `, ${params}` : ''}`;
}

/**
 * The client's address, for limits: the socket's peer, or behind a trusted proxy the last
 * X-Forwarded-For entry (the one that proxy appended; earlier entries are the client's to forge).
 * An IPv6 client controls at least a /64, so it counts as one.
 */
export function clientAddress(req: IncomingMessage, trustProxy: boolean): string {
  const forwarded = trustProxy
    ? String(req.headers['x-forwarded-for'] ?? '')
        .split(',')
        .pop()
        ?.trim()
    : undefined;
  const raw = forwarded || req.socket.remoteAddress || '';
  try {
    const parsed = ipaddr.process(raw);
    if (parsed.kind() === 'ipv6')
      return `${Buffer.from(parsed.toByteArray().slice(0, 8)).toString('hex')}::/64`;
    return parsed.toString();
  } catch {
    return raw;
  }
}
