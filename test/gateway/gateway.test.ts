/**
 * The gateway end to end: a real authorization server mints opaque tokens, the gateway translates
 * them into phantom JWTs, and a real upstream HTTP server records what reaches it.
 */
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import http, { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { EXPOSED_HEADERS } from '../../src/gateway/headers.ts';
import { type RunningGateway, startGateway } from '../../src/gateway/server.ts';
import { parseConfig } from '../../src/shared/config/load.ts';
import { close } from '../../src/shared/http.ts';
import { createLogger } from '../../src/shared/logging.ts';
import {
  startTestAuthorizationServer,
  type TestAuthorizationServer,
} from '../helpers/authorization-server.ts';
import { authorize, Browser, basic, postForm, redeemCode } from '../helpers/oauth.ts';

const MCP = 'http://localhost:8000/mcp';
const REDIRECT = 'http://127.0.0.1/callback';
const MAX_BODY = 4096;

// ---------------------------------------------------------------------------------------------
// A real upstream standing in for the MCP server and an API: it records every request.

interface Seen {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
}

interface Upstream {
  url: string;
  seen: Seen[];
  /** SSE: set once the second event is written; `releaseSecondEvent` lets it be written. */
  sse: { secondWritten: boolean; releaseSecondEvent: () => void; endlessClosed: boolean };
  close(): Promise<void>;
}

async function startUpstream(): Promise<Upstream> {
  const seen: Seen[] = [];
  let release!: () => void;
  const gate = new Promise<void>((resolve) => {
    release = resolve;
  });
  const sse = { secondWritten: false, releaseSecondEvent: () => release(), endlessClosed: false };
  const server = createServer(async (req, res) => {
    let body = '';
    for await (const chunk of req) body += chunk;
    const url = req.url ?? '';
    seen.push({ method: req.method ?? '', url, headers: req.headers, body });
    if (url.startsWith('/.well-known/oauth-protected-resource')) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ resource: MCP, authorization_servers: ['http://as.example'] }));
    } else if (req.method === 'OPTIONS') {
      res.writeHead(204, {
        'access-control-allow-origin': String(req.headers.origin),
        'access-control-allow-methods': 'GET, POST, DELETE',
        'access-control-allow-headers': 'authorization, content-type, mcp-protocol-version',
      });
      res.end();
    } else if (url === '/mcp/stream') {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      res.write('event: message\ndata: one\n\n');
      await gate;
      sse.secondWritten = true;
      res.end('event: message\ndata: two\n\n');
    } else if (url === '/mcp/endless') {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('data: first\n\n');
      res.once('close', () => {
        sse.endlessClosed = true;
      });
    } else if (url === '/mcp/broken') {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': '100' });
      res.write('{"partial":');
      setTimeout(() => req.socket.destroy(), 20);
    } else if (url === '/mcp/slow') {
      // Never answers; the gateway's upstream timeout must.
    } else if (url === '/mcp/own-expose') {
      res.writeHead(200, { 'access-control-expose-headers': 'X-Own', 'content-type': 'text/plain' });
      res.end('ok');
    } else if (!req.headers.authorization) {
      res.writeHead(401, {
        'www-authenticate':
          'Bearer resource_metadata="http://localhost:8000/.well-known/oauth-protected-resource/mcp"',
        'content-type': 'application/json',
      });
      res.end('{"error":"unauthorized"}');
    } else {
      res.writeHead(200, {
        'content-type': 'application/json',
        connection: 'x-upstream-hop',
        'x-upstream-hop': '1',
      });
      res.end('{"ok":true}');
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    sse,
    close: () => close(server),
  };
}

// ---------------------------------------------------------------------------------------------
// Helpers.

let as: TestAuthorizationServer;
let asClosed = false;
let upstream: Upstream;
let gateway: RunningGateway;
let clientId: string;
const browser = new Browser();
const gatewayLogs: string[] = [];
/** Every opaque token and phantom JWT seen: none may appear in a gateway log line. */
const secrets = new Set<string>();

async function startTestGateway(
  overrides: Record<string, unknown> = {},
  logs: string[] = gatewayLogs,
): Promise<RunningGateway> {
  const config = parseConfig({
    dataDir: as.dataDir,
    gateway: {
      publicUrl: 'http://127.0.0.1:8000',
      listen: { host: '127.0.0.1', port: 0 },
      authorizationServerUrl: as.issuer,
      mcpServerUrl: upstream.url,
      routes: [
        { prefix: '/api/stocks', upstream: `${upstream.url}/stocks` },
        { prefix: '/api/down', upstream: 'http://127.0.0.1:1/down' },
      ],
      maxBodyBytes: MAX_BODY,
      upstreamTimeoutMs: 1000,
      ...overrides,
    },
  });
  return startGateway(
    { config, dataDir: as.dataDir, file: undefined },
    { logger: createLogger('gateway', { level: 'debug', write: (line) => logs.push(line) }) },
  );
}

async function register(issuer: string): Promise<string> {
  const response = await fetch(`${issuer}/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      client_name: 'Gateway test agent',
      redirect_uris: [REDIRECT],
      application_type: 'native',
    }),
  });
  const body = (await response.json()) as Record<string, unknown>;
  assert.equal(response.status, 201, JSON.stringify(body));
  return String(body.client_id);
}

/** A user signs in and the agent redeems the code: an opaque access token for the MCP server. */
async function userToken(scope = 'stocks:read'): Promise<string> {
  const result = await authorize({ issuer: as.issuer, clientId, redirectUri: REDIRECT, scope, browser });
  const token = await redeemCode(as.issuer, {
    code: result.callback.searchParams.get('code')!,
    verifier: result.verifier,
    redirectUri: REDIRECT,
    clientId,
  });
  assert.equal(token.status, 200, token.text);
  const accessToken = String(token.json.access_token);
  assert.equal(accessToken.split('.').length, 1, 'agents hold opaque tokens');
  secrets.add(accessToken);
  return accessToken;
}

/** What the authorization server says about a token, as JSON, asked with the gateway's credentials. */
async function introspectJson(token: string) {
  const secret = readFileSync(path.join(as.dataDir, 'secrets/gatehouse-gateway.secret'), 'utf8').trim();
  const response = await postForm(
    `${as.issuer}/introspect`,
    { token },
    { authorization: basic('gatehouse-gateway', secret) },
  );
  return response.json;
}

/** The requests the upstream received while `action` ran. */
async function upstreamRequestsDuring(action: () => Promise<unknown>): Promise<Seen[]> {
  const before = upstream.seen.length;
  await action();
  return upstream.seen.slice(before);
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

/** A request with node:http, which (unlike fetch) sends any header, hop-by-hop ones included. */
function rawRequest(
  url: string,
  options: { method?: string; headers?: Record<string, string>; body?: string[] } = {},
): Promise<{ status: number; headers: IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, {
      method: options.method ?? 'GET',
      headers: options.headers,
      agent: false,
    });
    req.on('error', reject);
    req.on('response', async (res) => {
      let body = '';
      for await (const chunk of res) body += chunk;
      resolve({ status: res.statusCode ?? 0, headers: res.headers, body });
    });
    for (const chunk of options.body ?? []) req.write(chunk);
    req.end();
  });
}

before(async () => {
  as = await startTestAuthorizationServer();
  upstream = await startUpstream();
  clientId = await register(as.issuer);
  gateway = await startTestGateway();
});

after(async () => {
  await gateway.close();
  await upstream.close();
  if (asClosed) rmSync(as.dataDir, { recursive: true, force: true });
  else await as.close();
});

// ---------------------------------------------------------------------------------------------

describe('phantom-token translation', () => {
  test('an opaque token reaches the upstream as an RFC 9068 JWT for the same grant, never as itself', async () => {
    const token = await userToken('stocks:read');
    const seen = await upstreamRequestsDuring(async () => {
      const response = await fetch(`${gateway.url}/mcp`, {
        method: 'POST',
        headers: { ...bearer(token), 'content-type': 'application/json' },
        body: '{"jsonrpc":"2.0","id":1,"method":"tools/list"}',
      });
      assert.equal(response.status, 200);
      assert.deepEqual(await response.json(), { ok: true });
    });
    assert.equal(seen.length, 1);
    const received = seen[0]!;
    assert.equal(received.url, '/mcp');
    assert.equal(received.body, '{"jsonrpc":"2.0","id":1,"method":"tools/list"}');
    const match = /^Bearer (.+)$/.exec(String(received.headers.authorization));
    assert.ok(match, 'the upstream got a bearer token');
    const jwt = match[1]!;
    secrets.add(jwt);
    assert.notEqual(jwt, token);
    assert.ok(!JSON.stringify(received).includes(token), 'the opaque token never reaches the upstream');

    const { payload, protectedHeader } = await jwtVerify(
      jwt,
      createRemoteJWKSet(new URL(`${as.issuer}/jwks`)),
      {
        issuer: as.issuer,
        audience: MCP,
        typ: 'at+jwt',
      },
    );
    assert.equal(protectedHeader.typ, 'at+jwt');
    const introspection = await introspectJson(token);
    assert.equal(introspection.active, true);
    assert.equal(payload.sub, introspection.sub);
    assert.equal(payload.client_id, clientId);
    assert.equal(payload.scope, 'stocks:read');
    assert.equal(payload.aud, MCP);
    assert.equal(payload.exp, introspection.exp);
  });

  test('a second request with the same token is answered from the cache', async () => {
    const token = await userToken();
    await fetch(`${gateway.url}/mcp`, { method: 'POST', headers: bearer(token) }).then((r) =>
      r.arrayBuffer(),
    );
    const before = gateway.stats();
    const seen = await upstreamRequestsDuring(async () => {
      const response = await fetch(`${gateway.url}/mcp`, { method: 'POST', headers: bearer(token) });
      assert.equal(response.status, 200);
      await response.arrayBuffer();
    });
    const after = gateway.stats();
    assert.equal(after.introspections, before.introspections, 'no second introspection');
    assert.equal(after.cacheHits, before.cacheHits + 1);
    assert.match(String(seen[0]!.headers.authorization), /^Bearer [\w-]+\.[\w-]+\.[\w-]+$/);
  });

  test('concurrent requests with one new token share a single introspection', async () => {
    const token = await userToken();
    const before = gateway.stats().introspections;
    const statuses = await Promise.all(
      Array.from({ length: 5 }, () =>
        fetch(`${gateway.url}/mcp`, { method: 'POST', headers: bearer(token) }).then(async (r) => {
          await r.arrayBuffer();
          return r.status;
        }),
      ),
    );
    assert.deepEqual(statuses, [200, 200, 200, 200, 200]);
    assert.equal(gateway.stats().introspections, before + 1);
  });

  test('API routes never receive an agent token or its phantom token: 401 at the gateway (defect 3)', async () => {
    const token = await userToken();
    const before = gateway.stats().introspections;
    const seen = await upstreamRequestsDuring(async () => {
      for (const authorization of [
        `Bearer ${token}`,
        `DPoP ${token}`,
        'Bearer a.b.c',
        'Basic dXNlcjpwYXNz',
      ]) {
        const response = await fetch(`${gateway.url}/api/stocks/ACME?full=1`, { headers: { authorization } });
        assert.equal(response.status, 401, authorization);
        assert.match(response.headers.get('www-authenticate') ?? '', /^Bearer error="invalid_token"/);
        const body = (await response.json()) as { error: string };
        assert.equal(body.error, 'invalid_token');
      }
    });
    assert.equal(seen.length, 0, 'nothing reached the API');
    assert.equal(gateway.stats().introspections, before, 'nothing was introspected either');
  });

  test('API routes map the prefix onto the upstream path, for requests without a token', async () => {
    const seen = await upstreamRequestsDuring(async () => {
      const response = await fetch(`${gateway.url}/api/stocks/ACME?full=1`);
      await response.arrayBuffer();
    });
    assert.equal(seen[0]!.url, '/stocks/ACME?full=1');
    assert.equal(seen[0]!.headers.authorization, undefined);
  });

  test('a token in the query string is refused, not forwarded (RFC 6750 §2.3)', async () => {
    const seen = await upstreamRequestsDuring(async () => {
      const response = await fetch(`${gateway.url}/mcp?access_token=abc`, { method: 'POST' });
      assert.equal(response.status, 400);
      assert.equal(((await response.json()) as { error: string }).error, 'invalid_request');
    });
    assert.equal(seen.length, 0);
  });

  test('a made-up token is removed without an introspection: it carries no tag of the authorization server', async () => {
    await waitFor(async () => (await fetch(`${gateway.url}/readyz`)).status === 200, 'the tag key is known');
    const before = gateway.stats().introspections;
    for (const made of ['no-such-token-0123456789abcdefghijklmnopq', 'A'.repeat(54)]) {
      const seen = await upstreamRequestsDuring(async () => {
        const response = await fetch(`${gateway.url}/mcp`, { method: 'POST', headers: bearer(made) });
        assert.equal(response.status, 401);
        assert.match(response.headers.get('www-authenticate') ?? '', /^Bearer error="invalid_token"/);
        await response.arrayBuffer();
      });
      assert.equal(seen.length, 1);
      assert.equal(seen[0]!.headers.authorization, undefined);
    }
    assert.equal(gateway.stats().introspections, before, 'the authorization server was not asked');
  });

  test('an inactive token is removed, so the upstream answers with its own 401 challenge; the answer is cached', async () => {
    const token = await userToken();
    assert.equal((await postForm(`${as.issuer}/revoke`, { token, client_id: clientId })).status, 200);
    await new Promise((resolve) => setTimeout(resolve, 200));
    const before = gateway.stats().introspections;
    for (let i = 0; i < 2; i += 1) {
      const seen = await upstreamRequestsDuring(async () => {
        const response = await fetch(`${gateway.url}/mcp`, { method: 'POST', headers: bearer(token) });
        assert.equal(response.status, 401);
        assert.match(response.headers.get('www-authenticate') ?? '', /resource_metadata=/);
        await response.arrayBuffer();
      });
      assert.equal(seen.length, 1);
      assert.equal(seen[0]!.headers.authorization, undefined);
    }
    assert.equal(gateway.stats().introspections, before + 1, 'the inactive answer is cached too');
  });

  test('a JWT bearer from outside is never passed through, nor introspected', async () => {
    const token = await userToken();
    // Even a genuine phantom JWT, replayed from outside, is not accepted at the gateway.
    const [first] = await upstreamRequestsDuring(() =>
      fetch(`${gateway.url}/mcp`, { method: 'POST', headers: bearer(token) }).then((r) => r.arrayBuffer()),
    );
    const jwt = String(first!.headers.authorization).slice('Bearer '.length);
    const before = gateway.stats().introspections;
    for (const credential of [
      `Bearer ${jwt}`,
      'Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.',
      `Basic ${btoa('a:b')}`,
    ]) {
      const seen = await upstreamRequestsDuring(async () => {
        const response = await fetch(`${gateway.url}/mcp`, {
          method: 'POST',
          headers: { authorization: credential },
        });
        assert.equal(response.status, 401);
        await response.arrayBuffer();
      });
      assert.equal(seen[0]!.headers.authorization, undefined, credential.slice(0, 12));
    }
    assert.equal(gateway.stats().introspections, before);
  });
});

/** Polls `check` every 20 ms until it is true; fails after 2 s. */
async function waitFor(check: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 2000;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('revocation and the cache lifetime', () => {
  test('a revoked token stops at once: the announcement drops its cache entry, well before maxSeconds', async () => {
    const longLived = await startTestGateway({ introspectionCache: { maxSeconds: 3600, maxEntries: 100 } });
    try {
      await waitFor(async () => (await fetch(`${longLived.url}/readyz`)).status === 200, 'revocations heard');
      const token = await userToken();
      const call = async () => {
        const [seen] = await upstreamRequestsDuring(() =>
          fetch(`${longLived.url}/mcp`, { method: 'POST', headers: bearer(token) }).then((r) =>
            r.arrayBuffer(),
          ),
        );
        return seen!.headers.authorization;
      };
      assert.match(String(await call()), /^Bearer /);
      assert.match(String(await call()), /^Bearer /, 'cached');
      const revoked = await postForm(`${as.issuer}/revoke`, { token, client_id: clientId });
      assert.equal(revoked.status, 200, revoked.text);
      const started = Date.now();
      await waitFor(async () => (await call()) === undefined, 'the revoked token is no longer forwarded');
      assert.ok(Date.now() - started < 1000, `seen in ${Date.now() - started} ms, within a second`);
    } finally {
      await longLived.close();
    }
  });
});

describe('proxying', () => {
  test('hop-by-hop headers, including those named in Connection, are not forwarded', async () => {
    const token = await userToken();
    const seen = await upstreamRequestsDuring(async () => {
      const response = await rawRequest(`${gateway.url}/mcp`, {
        method: 'POST',
        headers: {
          ...bearer(token),
          connection: 'x-secret',
          'x-secret': 'do-not-forward',
          'keep-alive': 'timeout=5',
          te: 'trailers',
          upgrade: 'websocket',
          'proxy-authorization': 'Basic cHJveHk6c2VjcmV0',
          'x-forwarded-for': '10.9.8.7',
          'x-end-to-end': 'kept',
        },
      });
      assert.equal(response.status, 200);
      assert.equal(
        response.headers['x-upstream-hop'],
        undefined,
        'response hop-by-hop fields are stripped too',
      );
    });
    const headers = seen[0]!.headers;
    for (const name of ['x-secret', 'keep-alive', 'te', 'upgrade', 'proxy-authorization']) {
      assert.equal(headers[name], undefined, name);
    }
    assert.notEqual(headers.connection, 'x-secret');
    assert.equal(headers['x-end-to-end'], 'kept');
    assert.equal(headers['x-forwarded-for'], '127.0.0.1', 'a client cannot claim another address');
    assert.equal(headers['x-forwarded-proto'], 'http');
    assert.equal(headers['x-forwarded-host'], new URL(gateway.url).host);
  });

  test('a body over the limit is refused with 413 and never reaches the upstream', async () => {
    const token = await userToken();
    const big = 'x'.repeat(MAX_BODY + 1);
    const seen = await upstreamRequestsDuring(async () => {
      const declared = await fetch(`${gateway.url}/mcp`, {
        method: 'POST',
        headers: { ...bearer(token), 'content-type': 'application/json' },
        body: big,
      });
      assert.equal(declared.status, 413);
      assert.equal(((await declared.json()) as { error: string }).error, 'request_too_large');
      // Chunked, so the size is only known while reading.
      const chunked = await rawRequest(`${gateway.url}/mcp`, {
        method: 'POST',
        headers: { ...bearer(token), 'content-type': 'application/json' },
        body: [big.slice(0, 3000), big.slice(3000)],
      });
      assert.equal(chunked.status, 413);
    });
    assert.equal(seen.length, 0);
    const within = await upstreamRequestsDuring(async () => {
      const response = await fetch(`${gateway.url}/mcp`, {
        method: 'POST',
        headers: bearer(token),
        body: 'y'.repeat(MAX_BODY),
      });
      assert.equal(response.status, 200);
      await response.arrayBuffer();
    });
    assert.equal(within[0]!.body.length, MAX_BODY);
  });

  test('Server-Sent Events are streamed: the first event arrives before the second is written', async () => {
    const token = await userToken();
    // A buffering proxy would hold the first event back until the stream ends: fail fast, do not hang.
    const response = await fetch(`${gateway.url}/mcp/stream`, {
      headers: { ...bearer(token), accept: 'text/event-stream' },
      signal: AbortSignal.timeout(5000),
    });
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /^text\/event-stream/);
    const reader = response.body!.getReader();
    const decoder = new TextDecoder();
    let text = '';
    while (!text.includes('data: one')) {
      const { value, done } = await reader.read();
      assert.ok(!done, 'the stream ended before the first event');
      text += decoder.decode(value, { stream: true });
    }
    assert.equal(upstream.sse.secondWritten, false, 'the first event was not held back');
    upstream.sse.releaseSecondEvent();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
    }
    assert.ok(upstream.sse.secondWritten);
    assert.match(text, /data: one\n\n(.|\n)*data: two\n\n/);
  });

  test('a client that leaves a stream closes the upstream stream too', async () => {
    const token = await userToken();
    const controller = new AbortController();
    const response = await fetch(`${gateway.url}/mcp/endless`, {
      headers: bearer(token),
      signal: controller.signal,
    });
    const reader = response.body!.getReader();
    const { value } = await reader.read();
    assert.match(new TextDecoder().decode(value), /data: first/);
    controller.abort();
    for (let i = 0; i < 100 && !upstream.sse.endlessClosed; i += 1)
      await new Promise((r) => setTimeout(r, 20));
    assert.ok(upstream.sse.endlessClosed, 'the upstream stream was closed');
  });

  test('an upstream that breaks off mid-response cuts the response, so the client sees it incomplete', async () => {
    const token = await userToken();
    const response = await fetch(`${gateway.url}/mcp/broken`, { headers: bearer(token) });
    assert.equal(response.status, 200);
    await assert.rejects(response.text());
  });

  test('Protected Resource Metadata and CORS preflight pass without a token', async () => {
    const before = gateway.stats().introspections;
    for (const path of [
      '/.well-known/oauth-protected-resource',
      '/.well-known/oauth-protected-resource/mcp',
    ]) {
      const response = await fetch(`${gateway.url}${path}`);
      assert.equal(response.status, 200, path);
      assert.equal(((await response.json()) as { resource: string }).resource, MCP);
    }
    const seen = await upstreamRequestsDuring(async () => {
      const preflight = await fetch(`${gateway.url}/mcp`, {
        method: 'OPTIONS',
        headers: {
          origin: 'http://localhost:6274',
          'access-control-request-method': 'POST',
          'access-control-request-headers': 'authorization, mcp-protocol-version',
        },
      });
      assert.equal(preflight.status, 204);
      assert.equal(preflight.headers.get('access-control-allow-origin'), 'http://localhost:6274');
    });
    assert.equal(seen[0]!.method, 'OPTIONS');
    assert.equal(seen[0]!.headers.origin, 'http://localhost:6274');
    assert.equal(gateway.stats().introspections, before);
  });

  test('browser requests can read WWW-Authenticate and the MCP headers', async () => {
    const challenged = await fetch(`${gateway.url}/mcp`, {
      method: 'POST',
      headers: { origin: 'http://localhost:6274' },
    });
    assert.equal(challenged.status, 401);
    assert.equal(challenged.headers.get('access-control-expose-headers'), EXPOSED_HEADERS);
    await challenged.arrayBuffer();
    const own = await fetch(`${gateway.url}/mcp/own-expose`, {
      headers: { origin: 'http://localhost:6274' },
    });
    assert.equal(
      own.headers.get('access-control-expose-headers'),
      'X-Own',
      "the upstream's own value is kept",
    );
    await own.arrayBuffer();
    const noOrigin = await fetch(`${gateway.url}/mcp`, { method: 'POST' });
    assert.equal(noOrigin.headers.get('access-control-expose-headers'), null);
    await noOrigin.arrayBuffer();
  });

  test('unknown paths are 404 JSON; encoded slashes are refused', async () => {
    for (const [target, status] of [
      ['/nothing-here', 404],
      ['/api/stocksX', 404],
      ['/api/stocks/..%2F..%2Fmcp', 400],
    ] as const) {
      const seen = await upstreamRequestsDuring(async () => {
        const response = await fetch(`${gateway.url}${target}`);
        assert.equal(response.status, status, target);
        assert.match(response.headers.get('content-type') ?? '', /^application\/json/);
        assert.equal(typeof ((await response.json()) as { error: unknown }).error, 'string');
      });
      assert.equal(seen.length, 0);
    }
  });

  test('an upstream that is down is 502, one that does not answer in time is 504', async () => {
    const down = await fetch(`${gateway.url}/api/down/x`);
    assert.equal(down.status, 502);
    assert.equal(((await down.json()) as { error: string }).error, 'bad_gateway');
    const started = Date.now();
    const slow = await fetch(`${gateway.url}/mcp/slow`);
    assert.equal(slow.status, 504);
    assert.equal(((await slow.json()) as { error: string }).error, 'gateway_timeout');
    assert.ok(Date.now() - started < 5000);
  });
});

describe('failing closed', () => {
  test('wrong gateway credentials: 503, and an error log naming the setting to fix', async () => {
    const logs: string[] = [];
    const misconfigured = await startTestGateway(
      { client: { clientId: 'gatehouse-gateway', secret: 'not-the-right-secret-0123456789abcdef' } },
      logs,
    );
    try {
      const token = await userToken();
      const seen = await upstreamRequestsDuring(async () => {
        const response = await fetch(`${misconfigured.url}/mcp`, { method: 'POST', headers: bearer(token) });
        assert.equal(response.status, 503);
        assert.equal(response.headers.get('retry-after'), '5');
        await response.arrayBuffer();
      });
      assert.equal(seen.length, 0);
      const errors = logs.map((line) => JSON.parse(line)).filter((record) => record.level === 'error');
      assert.ok(
        errors.some((record) => /gateway\.client\.secret/.test(record.message)),
        JSON.stringify(errors),
      );
    } finally {
      await misconfigured.close();
    }
  });

  test('the authorization server down: 503 with Retry-After, and nothing reaches the upstream', async () => {
    const token = await userToken();
    await as.running.close();
    asClosed = true;
    const seen = await upstreamRequestsDuring(async () => {
      for (let i = 0; i < 2; i += 1) {
        const response = await fetch(`${gateway.url}/mcp`, {
          method: 'POST',
          headers: bearer(token),
          body: '{}',
        });
        assert.equal(response.status, 503);
        assert.equal(response.headers.get('retry-after'), '5');
        const body = (await response.json()) as { error: string; error_description: string };
        assert.equal(body.error, 'temporarily_unavailable');
        assert.match(body.error_description, /authorization server/);
      }
    });
    assert.equal(seen.length, 0);
    // Discovery still works: requests without a token need no authorization server.
    const metadata = await fetch(`${gateway.url}/.well-known/oauth-protected-resource/mcp`);
    assert.equal(metadata.status, 200);
    await metadata.arrayBuffer();
  });
});

describe('logging', () => {
  test('one line per request, with method, path, status, upstream, duration and cache; no token', () => {
    const lines = gatewayLogs.map((line) => JSON.parse(line) as Record<string, unknown>);
    const requests = lines.filter((record) => record.message === 'request');
    assert.ok(requests.length > 10);
    for (const record of requests) {
      for (const field of ['method', 'status', 'duration_ms'])
        assert.ok(field in record, `${field} in ${JSON.stringify(record)}`);
    }
    assert.ok(
      requests.some(
        (r) =>
          r.cache === 'hit' && r.bearer === 'phantom' && r.upstream === 'mcp-server' && r.path === '/mcp',
      ),
    );
    assert.ok(requests.some((r) => r.cache === 'miss'));
    assert.ok(requests.some((r) => r.status === 503 && r.error));
    assert.ok(requests.some((r) => r.path === '/mcp/endless' && r.error === 'client_closed'));
    assert.ok(requests.some((r) => r.path === '/mcp/broken' && r.error === 'upstream_aborted'));
    assert.ok(
      requests.some((r) => r.path === '/mcp/slow' && r.status === 504 && r.error === 'upstream_timeout'),
    );
    const text = gatewayLogs.join('\n');
    for (const secret of secrets) assert.ok(!text.includes(secret), 'a token appears in the gateway log');
  });
});
