import assert from 'node:assert/strict';
import type { IncomingMessage, OutgoingHttpHeaders } from 'node:http';
import { describe, test } from 'node:test';
import {
  EXPOSED_HEADERS,
  markInvalidToken,
  stripHopByHop,
  upstreamRequestHeaders,
  withExposedHeaders,
} from './headers.ts';

/** Just enough of a request for the header functions. */
const request = (headers: Record<string, string>, remoteAddress = '203.0.113.7') =>
  ({ headers, socket: { remoteAddress } }) as unknown as IncomingMessage;

describe('hop-by-hop headers (RFC 9110 §7.6.1)', () => {
  test('the standard hop-by-hop fields are removed, end-to-end fields kept', () => {
    const out = stripHopByHop({
      connection: 'keep-alive',
      'keep-alive': 'timeout=5',
      'proxy-connection': 'keep-alive',
      'proxy-authorization': 'Basic c2VjcmV0',
      'proxy-authenticate': 'Basic',
      te: 'trailers',
      trailer: 'x-checksum',
      'transfer-encoding': 'chunked',
      upgrade: 'websocket',
      expect: '100-continue',
      authorization: 'Bearer abc',
      'content-type': 'application/json',
      'mcp-protocol-version': '2025-11-25',
      accept: 'text/event-stream',
    });
    assert.deepEqual(out, {
      authorization: 'Bearer abc',
      'content-type': 'application/json',
      'mcp-protocol-version': '2025-11-25',
      accept: 'text/event-stream',
    });
  });

  test('fields named in Connection are removed too, whatever their case and however listed', () => {
    const out = stripHopByHop({
      connection: 'X-Secret , x-other,Keep-Alive',
      'x-secret': 'leak',
      'x-other': 'leak',
      'x-kept': 'fine',
    });
    assert.deepEqual(out, { 'x-kept': 'fine' });
  });

  test('response headers: multi-valued fields survive, Connection-named ones do not', () => {
    const out = stripHopByHop({
      connection: 'close, x-hop',
      'x-hop': '1',
      'set-cookie': ['a=1', 'b=2'],
      'www-authenticate': 'Bearer resource_metadata="http://x/.well-known/oauth-protected-resource/mcp"',
    });
    assert.deepEqual(out, {
      'set-cookie': ['a=1', 'b=2'],
      'www-authenticate': 'Bearer resource_metadata="http://x/.well-known/oauth-protected-resource/mcp"',
    });
  });

  test('the input is not modified', () => {
    const input = { connection: 'x-a', 'x-a': '1', 'x-b': '2' };
    stripHopByHop(input);
    assert.deepEqual(input, { connection: 'x-a', 'x-a': '1', 'x-b': '2' });
  });
});

describe('X-Forwarded-* headers', () => {
  test('set from the connection; values a client sent are replaced unless a proxy is trusted', () => {
    const req = request({
      host: 'gateway.example:8000',
      'x-forwarded-for': '10.0.0.1',
      'x-forwarded-host': 'evil.example',
      'x-forwarded-proto': 'https',
      forwarded: 'for=10.0.0.1',
      connection: 'close',
    });
    const out = upstreamRequestHeaders(req, false);
    assert.equal(out['x-forwarded-for'], '203.0.113.7');
    assert.equal(out['x-forwarded-host'], 'gateway.example:8000');
    assert.equal(out['x-forwarded-proto'], 'http');
    assert.equal(out.forwarded, undefined);
    assert.equal(out.host, undefined, 'the upstream gets its own Host');
    assert.equal(out.connection, undefined);
  });

  test('behind a trusted proxy the chain is extended and its host and proto kept', () => {
    const req = request({
      host: 'internal:8000',
      'x-forwarded-for': '198.51.100.1',
      'x-forwarded-host': 'gatehouse.example.com',
      'x-forwarded-proto': 'https',
    });
    const out = upstreamRequestHeaders(req, true);
    assert.equal(out['x-forwarded-for'], '198.51.100.1, 203.0.113.7');
    assert.equal(out['x-forwarded-host'], 'gatehouse.example.com');
    assert.equal(out['x-forwarded-proto'], 'https');
  });

  test("a client's trace context stays at the edge, trusted proxy or not (docs/security.md, Traces)", () => {
    const req = request({
      traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
      tracestate: 'agent=chosen',
      baggage: 'tenant=acme',
      accept: 'application/json',
    });
    for (const trustProxy of [false, true]) {
      const out = upstreamRequestHeaders(req, trustProxy);
      assert.equal(out.traceparent, undefined);
      assert.equal(out.tracestate, undefined);
      assert.equal(out.baggage, undefined);
      assert.equal(out.accept, 'application/json');
    }
  });
});

describe('Access-Control-Expose-Headers', () => {
  test('added for browser requests (with Origin) when the upstream did not set it', () => {
    const headers: Record<string, string> = {};
    withExposedHeaders(request({ origin: 'http://localhost:6274' }), headers);
    assert.equal(headers['access-control-expose-headers'], EXPOSED_HEADERS);
    assert.match(EXPOSED_HEADERS, /WWW-Authenticate/);
    assert.match(EXPOSED_HEADERS, /Mcp-Session-Id/);
    assert.match(EXPOSED_HEADERS, /MCP-Protocol-Version/);
  });

  test("the upstream's own value is kept, and requests without Origin get none", () => {
    const upstream: Record<string, string> = { 'Access-Control-Expose-Headers': 'X-Custom' };
    withExposedHeaders(request({ origin: 'http://localhost' }), upstream);
    assert.deepEqual(upstream, { 'Access-Control-Expose-Headers': 'X-Custom' });
    const none: Record<string, string> = {};
    withExposedHeaders(request({}), none);
    assert.deepEqual(none, {});
  });
});

test('markInvalidToken adds error="invalid_token" to a 401 Bearer challenge without an error', () => {
  const headers: OutgoingHttpHeaders = {
    'www-authenticate':
      'Bearer resource_metadata="https://x/.well-known/oauth-protected-resource/mcp", scope="a b"',
  };
  markInvalidToken(401, headers);
  assert.equal(
    headers['www-authenticate'],
    'Bearer error="invalid_token", resource_metadata="https://x/.well-known/oauth-protected-resource/mcp", scope="a b"',
  );
  const bare: OutgoingHttpHeaders = { 'www-authenticate': 'Bearer' };
  markInvalidToken(401, bare);
  assert.equal(bare['www-authenticate'], 'Bearer error="invalid_token"');
  for (const [status, value] of [
    [401, 'Bearer error="insufficient_scope", scope="x"'],
    [403, 'Bearer scope="x"'],
    [401, 'Basic realm="x"'],
  ] as const) {
    const untouched: OutgoingHttpHeaders = { 'www-authenticate': value };
    markInvalidToken(status, untouched);
    assert.equal(untouched['www-authenticate'], value);
  }
});
