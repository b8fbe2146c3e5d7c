import assert from 'node:assert/strict';
import { once } from 'node:events';
import * as http from 'node:http';
import * as net from 'node:net';
import { after, afterEach, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createLogger } from '../../shared/logging.ts';
import {
  ClientMetadataDocumentError,
  type ClientMetadataDocumentResolverOptions,
  cacheLifetimeSeconds,
  createClientMetadataDocumentResolver,
  isClientIdMetadataDocumentUrl,
} from './client-metadata-document.ts';

// ---------------------------------------------------------------------------------------------------------------
// Helpers: real servers on 127.0.0.1, port 0
// ---------------------------------------------------------------------------------------------------------------

interface TestServer {
  origin: string;
  /** Requests received, by path. */
  hits: Map<string, number>;
  close(): Promise<void>;
}

const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  await Promise.all(closers.splice(0).map((close) => close()));
});

async function startServer(handler: http.RequestListener, host = '127.0.0.1'): Promise<TestServer> {
  const hits = new Map<string, number>();
  const server = http.createServer((req, res) => {
    hits.set(req.url ?? '', (hits.get(req.url ?? '') ?? 0) + 1);
    handler(req, res);
  });
  server.listen(0, host);
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  const close = async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  closers.push(close);
  return { origin: `http://${host.includes(':') ? `[${host}]` : host}:${port}`, hits, close };
}

/** A bare TCP listener that counts connections: proves whether the resolver connected at all. */
async function startTcpCounter(
  onConnection: (socket: net.Socket) => void = (s) => s.destroy(),
): Promise<{ port: number; connections: () => number }> {
  let count = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    count += 1;
    sockets.add(socket);
    onConnection(socket);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  closers.push(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return { port: (server.address() as net.AddressInfo).port, connections: () => count };
}

function json(res: http.ServerResponse, body: unknown, headers: http.OutgoingHttpHeaders = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(200, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

function validDocument(clientId: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    client_id: clientId,
    client_name: 'Test Agent',
    redirect_uris: ['http://127.0.0.1:33418/callback'],
    grant_types: ['authorization_code', 'refresh_token'],
    ...extra,
  };
}

function makeResolver(overrides: Partial<ClientMetadataDocumentResolverOptions> = {}) {
  const lines: string[] = [];
  const logger = createLogger('test', { level: 'debug', write: (line) => lines.push(line) });
  const resolver = createClientMetadataDocumentResolver({ allowLoopbackHttp: true, logger, ...overrides });
  return { resolver, lines };
}

async function rejection(promise: Promise<unknown>): Promise<ClientMetadataDocumentError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof ClientMetadataDocumentError, `unexpected error: ${String(error)}`);
    return error;
  }
  assert.fail('expected the promise to reject');
}

// ---------------------------------------------------------------------------------------------------------------
// URL syntax
// ---------------------------------------------------------------------------------------------------------------

describe('isClientIdMetadataDocumentUrl', () => {
  const strict = { allowLoopbackHttp: false };
  const dev = { allowLoopbackHttp: true };

  it('accepts https URLs with a path', () => {
    for (const id of [
      'https://example.com/client',
      'https://example.com/oauth/client.json',
      'https://app.example.com:8443/client',
      'https://127.0.0.1/client', // syntax only: the address is refused at fetch time
      'https://[2001:db8::1]/client',
      'https://example.com/a%20b',
      'https://example.com/@agent/client', // "@" in the path is not userinfo
    ]) {
      assert.equal(isClientIdMetadataDocumentUrl(id, strict), true, id);
    }
  });

  it('refuses what Section 3 forbids', () => {
    for (const id of [
      'http://example.com/client', // not https
      'ftp://example.com/client',
      'https://example.com', // no path
      'https://example.com/', // root path, NOT RECOMMENDED
      'https://user:pass@example.com/client', // userinfo
      'https://user@example.com/client',
      'https://@example.com/client',
      'https://:pw@example.com/client',
      'https://example.com/client#frag', // fragment
      'https://example.com/client#',
      'https://example.com/client?x=1', // query (SHOULD NOT; refused)
      'https://example.com/client?',
      'https://example.com/a/./b', // dot segments
      'https://example.com/a/../b',
      'https://example.com/a/%2e%2e/b',
      'https://example.com/a/.%2E/b',
      'https://example.com/a/%2e/b',
      'https://example.com/..',
    ]) {
      assert.equal(isClientIdMetadataDocumentUrl(id, dev), false, id);
    }
  });

  it('refuses URLs that are not in canonical form, since client_id is compared as a string', () => {
    for (const id of [
      'https://EXAMPLE.com/client',
      'https://example.com:443/client',
      'https://bücher.example/client',
      'https://example.com/a b',
      'https:\\\\example.com\\client',
      ' https://example.com/client',
      'https://example.com/client\n',
      'https://2130706433/client',
      'https://127.1/client',
      'HTTPS://example.com/client',
      'https:example.com/client',
    ]) {
      assert.equal(isClientIdMetadataDocumentUrl(id, dev), false, JSON.stringify(id));
    }
  });

  it('accepts loopback http only with allowLoopbackHttp', () => {
    for (const id of [
      'http://localhost:3000/client',
      'http://127.0.0.1:8080/c.json',
      'http://[::1]:9000/c',
      'http://localhost/c',
    ]) {
      assert.equal(isClientIdMetadataDocumentUrl(id, dev), true, id);
      assert.equal(isClientIdMetadataDocumentUrl(id, strict), false, id);
    }
    for (const id of [
      'http://127.0.0.2:3000/c',
      'http://localhost.example.com/c',
      'http://10.0.0.1/c',
      'http://localhost:3000/',
    ]) {
      assert.equal(isClientIdMetadataDocumentUrl(id, dev), false, id);
    }
  });

  it('refuses non-strings and garbage', () => {
    for (const id of ['', 'client-123', 'urn:x:y', 'https://', 'https:///path']) {
      assert.equal(isClientIdMetadataDocumentUrl(id, dev), false, id);
    }
    assert.equal(isClientIdMetadataDocumentUrl(undefined as unknown as string, dev), false);
  });
});

describe('cacheLifetimeSeconds', () => {
  const bounds = { minSeconds: 60, maxSeconds: 86400 };
  it('clamps max-age into the configured bounds', () => {
    assert.equal(cacheLifetimeSeconds('public, max-age=3600', bounds), 3600);
    assert.equal(cacheLifetimeSeconds('max-age=5', bounds), 60);
    assert.equal(cacheLifetimeSeconds('max-age=999999999', bounds), 86400);
    assert.equal(cacheLifetimeSeconds('max-age="120"', bounds), 120);
    assert.equal(cacheLifetimeSeconds('max-age=600, max-age=300', bounds), 300);
  });
  it('falls back to the lower bound', () => {
    assert.equal(cacheLifetimeSeconds(undefined, bounds), 60);
    assert.equal(cacheLifetimeSeconds('no-store', bounds), 60);
    assert.equal(cacheLifetimeSeconds('no-cache, max-age=3600', bounds), 60);
    assert.equal(cacheLifetimeSeconds('max-age=abc', bounds), 60);
    assert.equal(cacheLifetimeSeconds('max-age=-5', bounds), 60);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Resolver against real HTTP servers
// ---------------------------------------------------------------------------------------------------------------

describe('createClientMetadataDocumentResolver', () => {
  after(async () => {
    await Promise.all(closers.splice(0).map((close) => close()));
  });

  it('warns at creation when loopback http is allowed, and only then', () => {
    const { lines } = makeResolver();
    assert.ok(
      lines.some((line) => line.includes('development only: loopback http client metadata documents')),
    );
    const strict = makeResolver({ allowLoopbackHttp: false });
    assert.equal(strict.lines.length, 0);
  });

  it('resolves a valid document, defaults token_endpoint_auth_method to none, and caches it', async () => {
    const server = await startServer((_req, res) => json(res, validDocument(`${server.origin}/client.json`)));
    const clientId = `${server.origin}/client.json`;
    const { resolver } = makeResolver();

    const first = await resolver.resolve(clientId);
    assert.equal(first.client_id, clientId);
    assert.equal(first.token_endpoint_auth_method, 'none');
    assert.deepEqual(first.redirect_uris, ['http://127.0.0.1:33418/callback']);

    first.client_name = 'mutated by caller';
    const second = await resolver.resolve(clientId);
    assert.equal(second.client_name, 'Test Agent', 'callers get independent copies');
    assert.equal(server.hits.get('/client.json'), 1);
  });

  it('resolves loopback http documents at localhost and [::1] in development mode', async () => {
    const v4 = await startServer((req, res) =>
      json(res, validDocument(`http://localhost:${req.socket.localPort}/c`)),
    );
    const v6 = await startServer((_req, res) => json(res, validDocument(`${v6.origin}/c`)), '::1');
    const { resolver } = makeResolver();
    const port = new URL(v4.origin).port;
    assert.equal(
      (await resolver.resolve(`http://localhost:${port}/c`)).client_id,
      `http://localhost:${port}/c`,
    );
    assert.equal((await resolver.resolve(`${v6.origin}/c`)).client_id, `${v6.origin}/c`);
  });

  it('sends GET with Accept: application/json', async () => {
    let seen: http.IncomingMessage | undefined;
    const server = await startServer((req, res) => {
      seen = req;
      json(res, validDocument(`${server.origin}/c`));
    });
    await makeResolver().resolver.resolve(`${server.origin}/c`);
    assert.equal(seen?.method, 'GET');
    assert.equal(seen?.headers.accept, 'application/json');
  });

  it('keeps an explicit public-key auth method', async () => {
    const server = await startServer((_req, res) =>
      json(
        res,
        validDocument(`${server.origin}/c`, {
          token_endpoint_auth_method: 'private_key_jwt',
          jwks: { keys: [{ kty: 'EC', crv: 'P-256', x: 'x', y: 'y', kid: '1' }] },
        }),
      ),
    );
    const document = await makeResolver().resolver.resolve(`${server.origin}/c`);
    assert.equal(document.token_endpoint_auth_method, 'private_key_jwt');
  });

  it('shares one fetch between concurrent resolves of the same URL', async () => {
    const server = await startServer((_req, res) => {
      setTimeout(() => json(res, validDocument(`${server.origin}/c`)), 50);
    });
    const { resolver } = makeResolver();
    const results = await Promise.all(
      Array.from({ length: 5 }, () => resolver.resolve(`${server.origin}/c`)),
    );
    assert.equal(results.length, 5);
    assert.equal(server.hits.get('/c'), 1);
  });

  it('honours Cache-Control max-age within the bounds and refetches after expiry', async () => {
    const server = await startServer((_req, res) =>
      json(res, validDocument(`${server.origin}/c`), { 'cache-control': 'max-age=0' }),
    );
    const { resolver } = makeResolver({ minCacheSeconds: 0.05, maxCacheSeconds: 10 });
    await resolver.resolve(`${server.origin}/c`);
    await resolver.resolve(`${server.origin}/c`);
    assert.equal(server.hits.get('/c'), 1);
    await sleep(120);
    await resolver.resolve(`${server.origin}/c`);
    assert.equal(server.hits.get('/c'), 2);
  });

  it('forget() drops the cached document', async () => {
    const server = await startServer((_req, res) => json(res, validDocument(`${server.origin}/c`)));
    const { resolver } = makeResolver();
    await resolver.resolve(`${server.origin}/c`);
    resolver.forget(`${server.origin}/c`);
    await resolver.resolve(`${server.origin}/c`);
    assert.equal(server.hits.get('/c'), 2);
  });

  describe('document validation', () => {
    const cases: Array<[string, (clientId: string) => unknown]> = [
      ['a mismatched client_id', (id) => validDocument(`${id}/other`)],
      ['a client_id differing only by a trailing slash', (id) => validDocument(`${id}/`)],
      ['a missing client_id', (id) => ({ ...validDocument(id), client_id: undefined })],
      [
        'client_secret_basic',
        (id) => validDocument(id, { token_endpoint_auth_method: 'client_secret_basic' }),
      ],
      ['client_secret_post', (id) => validDocument(id, { token_endpoint_auth_method: 'client_secret_post' })],
      ['client_secret_jwt', (id) => validDocument(id, { token_endpoint_auth_method: 'client_secret_jwt' })],
      ['a non-string auth method', (id) => validDocument(id, { token_endpoint_auth_method: ['none'] })],
      ['a client_secret', (id) => validDocument(id, { client_secret: 'shh' })],
      ['a client_secret_expires_at', (id) => validDocument(id, { client_secret_expires_at: 0 })],
      ['missing redirect_uris', (id) => ({ ...validDocument(id), redirect_uris: undefined })],
      [
        'redirect_uris that is a string',
        (id) => validDocument(id, { redirect_uris: 'https://a.example/cb' }),
      ],
      [
        'redirect_uris with a non-string',
        (id) => validDocument(id, { redirect_uris: ['https://a.example/cb', 7] }),
      ],
      ['empty redirect_uris', (id) => validDocument(id, { redirect_uris: [] })],
      [
        'a private JWK',
        (id) => validDocument(id, { jwks: { keys: [{ kty: 'EC', crv: 'P-256', x: 'x', y: 'y', d: 'd' }] } }),
      ],
      ['a symmetric JWK', (id) => validDocument(id, { jwks: { keys: [{ kty: 'oct', k: 'c2VjcmV0' }] } })],
      ['a javascript: logo_uri', (id) => validDocument(id, { logo_uri: 'javascript:alert(1)' })],
      ['a JSON array', (id) => [validDocument(id)]],
      ['a JSON string', () => 'hello'],
      ['JSON null', () => null],
    ];

    for (const [name, makeBody] of cases) {
      it(`rejects ${name} with invalid_client_metadata`, async () => {
        const server = await startServer((_req, res) => json(res, makeBody(`${server.origin}/c`)));
        const error = await rejection(makeResolver().resolver.resolve(`${server.origin}/c`));
        assert.equal(error.error, 'invalid_client_metadata');
        assert.equal(error.reason, 'invalid_document');
        assert.equal(server.hits.get('/c'), 1);
      });
    }
  });

  it('never logs or echoes the document body', async () => {
    const marker = 'SENSITIVE-BODY-MARKER';
    const server = await startServer((req, res) => {
      if (req.url === '/json') json(res, { client_id: 'https://elsewhere.example/c', note: marker });
      else res.end(`{ not json ${marker}`);
    });
    const { resolver, lines } = makeResolver();
    for (const path of ['/json', '/text']) {
      const error = await rejection(resolver.resolve(`${server.origin}${path}`));
      assert.ok(!error.message.includes(marker));
      assert.ok(!error.description.includes(marker));
    }
    assert.ok(lines.length > 0);
    assert.ok(!lines.some((line) => line.includes(marker)));
  });

  it('rejects a body larger than maxBytes announced by Content-Length, without waiting for it', async () => {
    const server = await startServer((_req, res) => {
      // Announces 1 MB and sends nothing: only the header check can end this before the timeout.
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': 1_000_000 });
      res.flushHeaders();
    });
    const { resolver } = makeResolver({ maxBytes: 5120, timeoutMs: 2000 });
    const started = Date.now();
    const error = await rejection(resolver.resolve(`${server.origin}/big`));
    assert.equal(error.reason, 'too_large');
    assert.equal(error.error, 'invalid_client');
    assert.ok(Date.now() - started < 1500);
  });

  it('rejects an oversized chunked body (no Content-Length) while streaming', async () => {
    let bytesWritten = 0;
    const server = await startServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' }); // chunked
      const padding = 'x'.repeat(1024);
      res.write(`{"client_id":"${server.origin}/chunked","pad":"`);
      const timer = setInterval(() => {
        if (res.destroyed || bytesWritten > 1_000_000) {
          clearInterval(timer);
          res.destroy();
          return;
        }
        bytesWritten += padding.length;
        res.write(padding);
      }, 1);
    });
    const { resolver } = makeResolver({ maxBytes: 5120 });
    const error = await rejection(resolver.resolve(`${server.origin}/chunked`));
    assert.equal(error.reason, 'too_large');
    assert.ok(bytesWritten < 1_000_000, 'the resolver stopped reading early');
  });

  it('accepts a body of exactly maxBytes', async () => {
    const server = await startServer((_req, res) => {
      const base = JSON.stringify(validDocument(`${server.origin}/exact`, { pad: '' }));
      const text = JSON.stringify(
        validDocument(`${server.origin}/exact`, { pad: 'x'.repeat(600 - base.length) }),
      );
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(text);
    });
    const document = await makeResolver({ maxBytes: 600 }).resolver.resolve(`${server.origin}/exact`);
    assert.equal(document.client_id, `${server.origin}/exact`);
  });

  it('rejects a redirect and never fetches its target', async () => {
    const server = await startServer((req, res) => {
      if (req.url === '/moved') {
        res.writeHead(302, { location: `${server.origin}/target` });
        res.end();
      } else {
        json(res, validDocument(`${server.origin}/moved`));
      }
    });
    const error = await rejection(makeResolver().resolver.resolve(`${server.origin}/moved`));
    assert.equal(error.error, 'invalid_client');
    assert.equal(error.reason, 'http_status');
    assert.match(error.description, /302/);
    assert.equal(server.hits.get('/target'), undefined);
  });

  for (const status of [201, 204, 304, 404, 500]) {
    it(`rejects HTTP ${status}`, async () => {
      const server = await startServer((_req, res) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(
          status === 204 || status === 304 ? undefined : JSON.stringify(validDocument(`${server.origin}/s`)),
        );
      });
      const error = await rejection(makeResolver().resolver.resolve(`${server.origin}/s`));
      assert.equal(error.reason, 'http_status');
      assert.equal(error.error, 'invalid_client');
    });
  }

  it('rejects a body that is not JSON', async () => {
    const server = await startServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<html>hello</html>');
    });
    const error = await rejection(makeResolver().resolver.resolve(`${server.origin}/html`));
    assert.equal(error.reason, 'invalid_json');
    assert.equal(error.error, 'invalid_client');
  });

  it('rejects a body that is not valid UTF-8', async () => {
    const server = await startServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d]));
    });
    const error = await rejection(makeResolver().resolver.resolve(`${server.origin}/bytes`));
    assert.equal(error.reason, 'invalid_json');
  });

  it('rejects a content-encoded body', async () => {
    const server = await startServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip' });
      res.end('not really gzip');
    });
    const error = await rejection(makeResolver().resolver.resolve(`${server.origin}/gz`));
    assert.equal(error.error, 'invalid_client');
  });

  it('drops __proto__ keys from the document', async () => {
    const server = await startServer((_req, res) => {
      const text = JSON.stringify(validDocument(`${server.origin}/p`)).replace(
        /^\{/,
        '{"__proto__":{"polluted":true},',
      );
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(text);
    });
    const document = await makeResolver().resolver.resolve(`${server.origin}/p`);
    assert.equal(Object.hasOwn(document, '__proto__'), false);
    assert.equal(Object.assign({}, document).polluted, undefined);
  });

  it('remembers a failure for failureBackoffSeconds without refetching', async () => {
    const server = await startServer((_req, res) => {
      res.writeHead(500);
      res.end();
    });
    const { resolver } = makeResolver({ failureBackoffSeconds: 60 });
    const first = await rejection(resolver.resolve(`${server.origin}/fail`));
    const second = await rejection(resolver.resolve(`${server.origin}/fail`));
    assert.equal(server.hits.get('/fail'), 1);
    assert.equal(first.backoff, false);
    assert.equal(second.backoff, true);
    assert.equal(second.error, first.error);
    assert.equal(second.description, first.description);
    assert.equal(second.reason, first.reason);

    resolver.forget(`${server.origin}/fail`);
    await rejection(resolver.resolve(`${server.origin}/fail`));
    assert.equal(server.hits.get('/fail'), 2);
  });

  it('fetches again once the backoff has expired', async () => {
    let fail = true;
    const server = await startServer((_req, res) => {
      if (fail) {
        res.writeHead(503);
        res.end();
      } else {
        json(res, validDocument(`${server.origin}/flaky`));
      }
    });
    const { resolver } = makeResolver({ failureBackoffSeconds: 0.05 });
    await rejection(resolver.resolve(`${server.origin}/flaky`));
    fail = false;
    await sleep(120);
    const document = await resolver.resolve(`${server.origin}/flaky`);
    assert.equal(document.client_id, `${server.origin}/flaky`);
    assert.equal(server.hits.get('/flaky'), 2);
  });

  it('refetches on every call when failureBackoffSeconds is 0', async () => {
    const server = await startServer((_req, res) => {
      res.writeHead(404);
      res.end();
    });
    const { resolver } = makeResolver({ failureBackoffSeconds: 0 });
    await rejection(resolver.resolve(`${server.origin}/gone`));
    await rejection(resolver.resolve(`${server.origin}/gone`));
    assert.equal(server.hits.get('/gone'), 2);
  });

  it('honours the timeout against a server that never answers', async () => {
    const silent = await startTcpCounter(() => {
      /* accept and say nothing */
    });
    const { resolver } = makeResolver({ timeoutMs: 150 });
    const started = Date.now();
    const error = await rejection(resolver.resolve(`http://127.0.0.1:${silent.port}/slow`));
    assert.equal(error.reason, 'timeout');
    assert.equal(error.error, 'invalid_client');
    assert.equal(silent.connections(), 1);
    assert.ok(Date.now() - started < 1500);
  });

  it('honours the timeout while DNS is still answering, and ignores the late answer', async () => {
    const counter = await startTcpCounter();
    const { resolver } = makeResolver({
      timeoutMs: 100,
      lookup: async () => {
        await sleep(250);
        return [{ address: '127.0.0.1', family: 4 }];
      },
    });
    const error = await rejection(resolver.resolve(`https://slow-dns.example:${counter.port}/c`));
    assert.equal(error.reason, 'timeout');
    await sleep(300); // the late lookup answer arrives: it must neither connect nor throw
    assert.equal(counter.connections(), 0);
  });

  it('honours the timeout against a server that trickles the body', async () => {
    const server = await startServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{');
      const timer = setInterval(() => (res.destroyed ? clearInterval(timer) : res.write(' ')), 20);
    });
    const { resolver } = makeResolver({ timeoutMs: 200 });
    const error = await rejection(resolver.resolve(`${server.origin}/trickle`));
    assert.equal(error.reason, 'timeout');
  });

  it('reports a refused connection as a generic transport failure', async () => {
    const counter = await startTcpCounter();
    const error = await rejection(makeResolver().resolver.resolve(`http://127.0.0.1:${counter.port}/closed`));
    assert.equal(error.reason, 'network');
    assert.equal(error.description, 'client metadata document could not be retrieved');
  });

  describe('SSRF protection', () => {
    for (const id of [
      'https://10.0.0.1/x',
      'https://169.254.169.254/latest/meta-data',
      'https://[fd00::1]/x',
      'https://[::ffff:a00:1]/x',
      'https://0.0.0.0/x',
      'https://100.64.0.1/x',
    ]) {
      it(`refuses the special-use IP literal ${id} without connecting`, async () => {
        const lookups: string[] = [];
        const { resolver } = makeResolver({
          timeoutMs: 5000,
          lookup: async (host) => {
            lookups.push(host);
            return [];
          },
        });
        const started = Date.now();
        const error = await rejection(resolver.resolve(id));
        assert.equal(error.reason, 'forbidden_address');
        assert.equal(error.error, 'invalid_client');
        // The generic text: no hint about what the address is.
        assert.equal(error.description, 'client metadata document could not be retrieved');
        assert.deepEqual(lookups, []);
        assert.ok(Date.now() - started < 1000, 'refused before any connection attempt');
      });
    }

    it('refuses a loopback literal over https when allowLoopbackHttp is off, without connecting', async () => {
      const counter = await startTcpCounter();
      const { resolver } = makeResolver({ allowLoopbackHttp: false });
      const error = await rejection(resolver.resolve(`https://127.0.0.1:${counter.port}/x`));
      assert.equal(error.reason, 'forbidden_address');
      await sleep(50);
      assert.equal(counter.connections(), 0);
    });

    it('refuses http://127.0.0.1 when allowLoopbackHttp is off', async () => {
      const server = await startServer((_req, res) => json(res, validDocument(`${server.origin}/c`)));
      const { resolver } = makeResolver({ allowLoopbackHttp: false });
      const error = await rejection(resolver.resolve(`${server.origin}/c`));
      assert.equal(error.reason, 'invalid_url');
      assert.equal(error.error, 'invalid_client');
      assert.equal(server.hits.size, 0);
    });

    it('refuses http to a non-loopback host, even with allowLoopbackHttp on', async () => {
      const { resolver } = makeResolver({ allowLoopbackHttp: true });
      for (const id of ['http://example.com/client', 'http://10.0.0.1/x', 'http://169.254.169.254/x']) {
        const error = await rejection(resolver.resolve(id));
        assert.equal(error.reason, 'invalid_url', id);
      }
    });

    it('refuses a hostname that resolves to loopback (localhost) when allowLoopbackHttp is off', async () => {
      const counter = await startTcpCounter();
      const { resolver } = makeResolver({ allowLoopbackHttp: false });
      const error = await rejection(resolver.resolve(`https://localhost:${counter.port}/client`));
      assert.equal(error.reason, 'forbidden_address');
      await sleep(50);
      assert.equal(counter.connections(), 0);
    });

    it('refuses a hostname if any one of its addresses is special-use', async () => {
      const counter = await startTcpCounter();
      const { resolver } = makeResolver({
        allowLoopbackHttp: false,
        lookup: async () => [
          { address: '93.184.216.34', family: 4 },
          { address: '10.0.0.7', family: 4 },
        ],
      });
      const error = await rejection(resolver.resolve(`https://mixed.example:${counter.port}/client`));
      assert.equal(error.reason, 'forbidden_address');
      assert.equal(counter.connections(), 0);
    });

    it('refuses a hostname that resolves to an IPv4-mapped private address', async () => {
      const { resolver } = makeResolver({
        allowLoopbackHttp: false,
        lookup: async () => [{ address: '::ffff:192.168.0.1', family: 6 }],
      });
      const error = await rejection(resolver.resolve('https://mapped.example/client'));
      assert.equal(error.reason, 'forbidden_address');
    });

    it('connects to exactly the vetted address (pinning)', async () => {
      // A name that "resolves" to 127.0.0.1: with the development switch on, loopback is acceptable, and the
      // socket must go to the address the vetting lookup returned (our counter), not anywhere else.
      const counter = await startTcpCounter();
      const looked: string[] = [];
      const { resolver } = makeResolver({
        allowLoopbackHttp: true,
        lookup: async (host) => {
          looked.push(host);
          return [{ address: '127.0.0.1', family: 4 }];
        },
      });
      const error = await rejection(resolver.resolve(`https://pinned.example:${counter.port}/client`));
      assert.equal(error.reason, 'network'); // the counter hangs up before TLS completes
      assert.deepEqual(looked, ['pinned.example']);
      assert.equal(counter.connections(), 1);
    });

    it('refuses loopback http to a name that resolves to a public address', async () => {
      const { resolver } = makeResolver({
        allowLoopbackHttp: true,
        lookup: async () => [{ address: '93.184.216.34', family: 4 }],
      });
      const error = await rejection(resolver.resolve('http://localhost:8080/client'));
      assert.equal(error.reason, 'forbidden_address');
    });

    it('reports a DNS failure as a generic transport failure', async () => {
      const { resolver } = makeResolver({
        allowLoopbackHttp: false,
        lookup: async () => {
          throw Object.assign(new Error('getaddrinfo ENOTFOUND'), { code: 'ENOTFOUND' });
        },
      });
      const error = await rejection(resolver.resolve('https://nowhere.example/client'));
      assert.equal(error.reason, 'network');
      assert.equal(error.description, 'client metadata document could not be retrieved');
    });
  });

  it('rejects an invalid client identifier URL without fetching', async () => {
    const { resolver } = makeResolver({
      lookup: async () => assert.fail('must not resolve'),
    });
    for (const id of [
      'client-123',
      'https://example.com/',
      'https://example.com/c?x=1',
      'https://u@example.com/c',
    ]) {
      const error = await rejection(resolver.resolve(id));
      assert.equal(error.reason, 'invalid_url');
      assert.equal(error.error, 'invalid_client');
    }
  });

  it('validates its options', () => {
    assert.throws(
      () => createClientMetadataDocumentResolver({ allowLoopbackHttp: false, maxBytes: 0 }),
      RangeError,
    );
    assert.throws(
      () => createClientMetadataDocumentResolver({ allowLoopbackHttp: false, timeoutMs: -1 }),
      RangeError,
    );
    assert.throws(
      () =>
        createClientMetadataDocumentResolver({
          allowLoopbackHttp: false,
          minCacheSeconds: 10,
          maxCacheSeconds: 5,
        }),
      RangeError,
    );
  });
});
