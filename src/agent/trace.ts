/**
 * `--trace`: every HTTP request and response the agent makes, and every MCP JSON-RPC message, as
 * readable lines, with every credential redacted.
 *
 * Redacted: the Authorization header (`Bearer [redacted]`), cookies, DPoP proofs; form fields and JSON
 * members whose names say they hold a secret (code, code_verifier, refresh_token, access_token,
 * client_secret, client_assertion, registration_access_token, …, as shared/logging.ts decides); the
 * same names in URL query strings (the authorization code on the callback). Only the value goes: the
 * reader still sees that a token was sent, and where.
 */
import { STATUS_CODES } from 'node:http';
import type { FetchLike, JSONRPCMessage, Transport } from '@modelcontextprotocol/client';
import { isSensitiveKey } from '../shared/logging.ts';

export type TraceSink = (line: string) => void;

const REDACTED = '[redacted]';
const CREDENTIAL_HEADERS = new Set(['authorization', 'proxy-authorization', 'cookie', 'set-cookie', 'dpop']);
const QUIET_RESPONSE_HEADERS = new Set([
  'date',
  'connection',
  'keep-alive',
  'content-length',
  'transfer-encoding',
  'vary',
  'etag',
  'x-content-type-options',
  'x-frame-options',
  'referrer-policy',
  'content-security-policy',
  'strict-transport-security',
  'x-dns-prefetch-control',
  'x-download-options',
  'x-permitted-cross-domain-policies',
  'x-xss-protection',
  'cross-origin-opener-policy',
  'cross-origin-resource-policy',
  'origin-agent-cluster',
  'access-control-allow-origin',
  'access-control-expose-headers',
]);

/** A header as it may be printed: credentials keep their scheme (`Bearer`, `Basic`) and lose their value. */
export function redactHeader(name: string, value: string): string {
  const lower = name.toLowerCase();
  if (lower === 'authorization' || lower === 'proxy-authorization') {
    const scheme = /^(\S+)\s/.exec(value)?.[1];
    return scheme ? `${scheme} ${REDACTED}` : REDACTED;
  }
  if (CREDENTIAL_HEADERS.has(lower) || isSensitiveKey(lower)) return REDACTED;
  if (lower === 'location' || lower === 'content-location') return redactUrl(value);
  return value;
}

/** A URL with the values of sensitive query parameters (`code`, `access_token`, …) redacted. */
export function redactUrl(url: string): string {
  const question = url.indexOf('?');
  if (question < 0) return url;
  const hash = url.indexOf('#', question);
  const query = url.slice(question + 1, hash < 0 ? undefined : hash);
  return `${url.slice(0, question + 1)}${redactForm(query)}${hash < 0 ? '' : url.slice(hash)}`;
}

/** An `application/x-www-form-urlencoded` body (or query string) with sensitive fields redacted. */
export function redactForm(form: string): string {
  return [...new URLSearchParams(form)]
    .map(([key, value]) => `${key}=${isSensitiveKey(key) ? REDACTED : value}`)
    .join('&');
}

/**
 * A JSON value with sensitive members redacted, however deep. Numbers and booleans are kept (a
 * JSON-RPC error `code` is not a secret); strings, arrays and objects under a sensitive name go.
 */
export function redactJson(value: unknown, depth = 0): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (depth > 32) return '[…]';
  if (Array.isArray(value)) return value.map((item) => redactJson(item, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [key, inner] of Object.entries(value)) {
    const secret =
      isSensitiveKey(key) && inner !== null && typeof inner !== 'number' && typeof inner !== 'boolean';
    out[key] = secret ? REDACTED : redactJson(inner, depth + 1);
  }
  return out;
}

/** A body for printing: JSON and forms redacted, anything else summarized, never printed raw. */
export function redactBody(body: string, contentType: string | null): string {
  const type = (contentType ?? '').toLowerCase();
  const trimmed = body.trim();
  if (type.includes('json') || (!type && (trimmed.startsWith('{') || trimmed.startsWith('[')))) {
    try {
      return JSON.stringify(redactJson(JSON.parse(body)));
    } catch {
      return `(${body.length} bytes, not valid JSON)`;
    }
  }
  if (type.includes('x-www-form-urlencoded')) return redactForm(body);
  return `(${body.length} bytes of ${type || 'unknown type'})`;
}

function bodyText(body: unknown): string | undefined {
  if (body === undefined || body === null) return undefined;
  if (typeof body === 'string') return body;
  if (body instanceof URLSearchParams) return body.toString();
  return '(stream body)';
}

export interface TracedFetchOptions {
  /** Print request and response bodies (OAuth traffic). MCP bodies are traced as JSON-RPC messages instead. */
  bodies: boolean;
}

/** Wraps `fetch` so each request and response is written to `sink`, redacted. */
export function tracedFetch(
  sink: TraceSink,
  options: TracedFetchOptions,
  base: FetchLike = fetch,
): FetchLike {
  return async (input, init) => {
    const request = input instanceof Request ? input : undefined;
    const url = request ? request.url : String(input);
    const method = (init?.method ?? request?.method ?? 'GET').toUpperCase();
    const headers = new Headers(init?.headers ?? request?.headers);
    const lines = [`HTTP → ${method} ${redactUrl(url)}`];
    headers.forEach((value, name) => {
      lines.push(`       ${name}: ${redactHeader(name, value)}`);
    });
    const body = bodyText(init?.body);
    if (options.bodies && body !== undefined) {
      const type =
        headers.get('content-type') ??
        (init?.body instanceof URLSearchParams ? 'application/x-www-form-urlencoded' : null);
      lines.push(`       ${redactBody(body, type)}`);
    }
    sink(lines.join('\n'));
    const started = performance.now();
    let response: Response;
    try {
      response = await base(input, init);
    } catch (error) {
      sink(`HTTP ✗ ${method} ${redactUrl(url)}: ${error instanceof Error ? error.message : String(error)}`);
      throw error;
    }
    const elapsed = Math.round(performance.now() - started);
    const out = [
      `HTTP ← ${response.status} ${response.statusText || STATUS_CODES[response.status] || ''} for ${method} ${redactUrl(url)} (${elapsed} ms)`,
    ];
    response.headers.forEach((value, name) => {
      if (!QUIET_RESPONSE_HEADERS.has(name)) out.push(`       ${name}: ${redactHeader(name, value)}`);
    });
    const type = response.headers.get('content-type');
    if (options.bodies && response.status !== 204 && !type?.includes('text/event-stream')) {
      const text = await response.clone().text();
      if (text) out.push(`       ${redactBody(text, type)}`);
    }
    sink(out.join('\n'));
    return response;
  };
}

const describeMessage = (message: JSONRPCMessage) => JSON.stringify(redactJson(message));

/**
 * Traces the JSON-RPC messages a transport carries, both ways. The Client sets `onmessage` after
 * this runs, so the property becomes an accessor that wraps whatever handler is installed.
 */
export function traceTransport<T extends Transport>(transport: T, sink: TraceSink): T {
  const send = transport.send.bind(transport);
  transport.send = (message, options) => {
    sink(`MCP  → ${describeMessage(message)}`);
    return send(message, options);
  };
  let handler: Transport['onmessage'];
  Object.defineProperty(transport, 'onmessage', {
    configurable: true,
    enumerable: true,
    get: () => handler,
    set: (next: Transport['onmessage']) => {
      handler = next
        ? (message, extra) => {
            sink(`MCP  ← ${describeMessage(message)}`);
            next(message, extra);
          }
        : undefined;
    },
  });
  return transport;
}
