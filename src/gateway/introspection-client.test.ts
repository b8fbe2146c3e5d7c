/**
 * The introspection client against a scripted authorization server: what it sends, and how every
 * kind of answer is read. Anything but a phantom JWT or `{"active": false}` must fail closed.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, beforeEach, describe, test } from 'node:test';
import { close } from '../shared/http.ts';
import { createLogger } from '../shared/logging.ts';
import { AuthorizationServerUnavailableError, createIntrospectionClient } from './introspection-client.ts';

type Handler = (req: IncomingMessage, res: ServerResponse, body: string) => void;

const SECRET = 'gateway-secret-0123456789-abcdefghijklmnop';
const now = () => Math.floor(Date.now() / 1000);
const fakeJwt = (payload: Record<string, unknown>) =>
  [{ alg: 'ES256', typ: 'at+jwt' }, payload, 'sig']
    .map((part) =>
      typeof part === 'string' ? part : Buffer.from(JSON.stringify(part)).toString('base64url'),
    )
    .join('.');

let server: Server;
let base: string;
let handler: Handler;
const received: Array<{ method: string; url: string; headers: IncomingMessage['headers']; body: string }> =
  [];
let logs: string[] = [];

before(async () => {
  server = createServer(async (req, res) => {
    let body = '';
    for await (const chunk of req) body += chunk;
    received.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
    handler(req, res, body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => close(server));
beforeEach(() => {
  received.length = 0;
  logs = [];
});

function client(options: { timeoutMs?: number; url?: string } = {}) {
  return createIntrospectionClient({
    authorizationServerUrl: options.url ?? base,
    clientId: 'gatehouse-gateway',
    clientSecret: SECRET,
    timeoutMs: options.timeoutMs ?? 1000,
    logger: createLogger('gateway', { level: 'debug', write: (line) => logs.push(line) }),
  });
}

/** Answers metadata with 404 (so the fallback path is used) and introspection with `answer`. */
function introspectionAnswers(answer: (res: ServerResponse) => void): Handler {
  return (req, res) => {
    if (req.url?.startsWith('/.well-known/')) {
      res.writeHead(404).end();
      return;
    }
    answer(res);
  };
}

describe('introspection client', () => {
  test('discovers the endpoint from RFC 8414 metadata, moved onto the URL it reaches the server by', async () => {
    handler = (req, res) => {
      if (req.url === '/.well-known/oauth-authorization-server') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify({
            issuer: 'https://login.example.com',
            introspection_endpoint: 'https://login.example.com/oauth/introspect',
          }),
        );
        return;
      }
      res.writeHead(404).end();
    };
    assert.equal(await client().endpoint(), `${base}/oauth/introspect`);
  });

  test('a DPoP-bound token: the binding header comes along, with the grant, subject and client', async () => {
    const exp = now() + 900;
    const jwt = fakeJwt({ sub: 'alice', exp, grant_id: 'g1', client_id: 'agent' });
    const jkt = 'NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs';
    handler = introspectionAnswers((res) => {
      res.writeHead(200, { 'content-type': 'application/jwt', 'gatehouse-dpop-jkt': jkt });
      res.end(jwt);
    });
    assert.deepEqual(await client().introspect('opaque-token'), {
      active: true,
      jwt,
      exp,
      jkt,
      grantId: 'g1',
      sub: 'alice',
      clientId: 'agent',
    });
  });

  test('an unreadable binding header fails closed (a bound token must never become a bearer token)', async () => {
    const jwt = fakeJwt({ sub: 'alice', exp: now() + 900 });
    handler = introspectionAnswers((res) => {
      res.writeHead(200, { 'content-type': 'application/jwt', 'gatehouse-dpop-jkt': 'not a thumbprint' });
      res.end(jwt);
    });
    await assert.rejects(client().introspect('opaque-token'), AuthorizationServerUnavailableError);
  });

  test('falls back to /introspect when the metadata does not say', async () => {
    handler = introspectionAnswers((res) => res.writeHead(500).end());
    assert.equal(await client().endpoint(), `${base}/introspect`);
  });

  test('asks for the phantom token with client_secret_basic; an active token comes back as a JWT', async () => {
    const exp = now() + 900;
    const jwt = fakeJwt({ sub: 'alice', exp });
    handler = introspectionAnswers((res) => {
      res.writeHead(200, { 'content-type': 'application/jwt; charset=utf-8' });
      res.end(jwt);
    });
    const result = await client().introspect('opaque-token');
    assert.deepEqual(result, { active: true, jwt, exp, sub: 'alice' });
    const request = received.find((r) => r.url === '/introspect')!;
    assert.equal(request.method, 'POST');
    assert.equal(request.headers.accept, 'application/jwt');
    assert.equal(request.headers['content-type'], 'application/x-www-form-urlencoded');
    assert.equal(
      request.headers.authorization,
      `Basic ${Buffer.from(`gatehouse-gateway:${SECRET}`).toString('base64')}`,
    );
    const form = new URLSearchParams(request.body);
    assert.equal(form.get('token'), 'opaque-token');
    assert.equal(form.get('token_type_hint'), 'access_token');
  });

  test('an inactive token is {"active": false}', async () => {
    handler = introspectionAnswers((res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"active":false}');
    });
    const introspection = client();
    assert.deepEqual(await introspection.introspect('dead'), { active: false });
    assert.equal(introspection.requests, 1);
  });

  const failures: Array<[string, (res: ServerResponse) => void, RegExp]> = [
    ['a 5xx', (res) => res.writeHead(502).end('bad gateway'), /failing/],
    [
      'JSON active:true (no phantom token)',
      (res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{"active":true,"sub":"alice"}');
      },
      /does not understand/,
    ],
    [
      'HTML',
      (res) => {
        res.writeHead(200, { 'content-type': 'text/html' });
        res.end('<html>login</html>');
      },
      /does not understand/,
    ],
    [
      'a JWT without exp',
      (res) => {
        res.writeHead(200, { 'content-type': 'application/jwt' });
        res.end(fakeJwt({ sub: 'alice' }));
      },
      /does not understand/,
    ],
    [
      'a JWT that is not one',
      (res) => {
        res.writeHead(200, { 'content-type': 'application/jwt' });
        res.end('not-a-jwt');
      },
      /does not understand/,
    ],
    [
      'a 400',
      (res) => res.writeHead(400, { 'content-type': 'application/json' }).end('{}'),
      /does not understand/,
    ],
  ];
  for (const [name, answer, message] of failures) {
    test(`${name} is a failure, never an answer`, async () => {
      handler = introspectionAnswers(answer);
      await assert.rejects(client().introspect('t'), (error: Error) => {
        assert.ok(error instanceof AuthorizationServerUnavailableError);
        assert.match(error.message, message);
        return true;
      });
    });
  }

  test("a refusal of the gateway's credentials names the settings to fix", async () => {
    handler = introspectionAnswers((res) => {
      res.writeHead(401, { 'content-type': 'application/json' });
      res.end('{"error":"invalid_client"}');
    });
    await assert.rejects(client().introspect('t'), AuthorizationServerUnavailableError);
    const line = logs.map((l) => JSON.parse(l)).find((record) => record.level === 'error');
    assert.ok(line, 'an error is logged');
    assert.match(line.message, /gateway\.client\.secret/);
    assert.ok(!logs.join('\n').includes(SECRET), 'the secret is not logged');
  });

  test('a server that does not answer in time is a failure', async () => {
    handler = introspectionAnswers(() => {
      // never answers
    });
    const started = Date.now();
    await assert.rejects(client({ timeoutMs: 200 }).introspect('t'), /did not answer in time/);
    assert.ok(Date.now() - started < 2000);
  });

  test('a server that cannot be reached is a failure, and discovery is tried again later', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(closed.address() as AddressInfo).port}`;
    await close(closed);
    const introspection = client({ url });
    assert.equal(await introspection.endpoint(), `${url}/introspect`);
    await assert.rejects(introspection.introspect('t'), /cannot be reached/);
  });
});
