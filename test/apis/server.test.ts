/**
 * The HTTP contract of the example APIs, with tokens signed here by keys this test controls and
 * served from a small JWKS server on loopback: routes and status codes, challenges (RFC 6750 §3),
 * every token check (signature, algorithm, typ, issuer, audience, exp/nbf with skew, unknown kid and
 * key rotation), the JWKS being unreachable (503, fail closed), and the request log.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, mock, test } from 'node:test';
import { exportJWK, exportSPKI, generateKeyPair, type JWK, SignJWT } from 'jose';
import { startTestApis, type TestApis } from '../helpers/apis.ts';

const ISSUER = 'https://issuer.test';
const STOCKS = 'http://localhost:8000/api/stocks';
const CUSTOMERS = 'http://localhost:8000/api/customers';
const MCP = 'http://localhost:8000/mcp';

const now = () => Math.floor(Date.now() / 1000);

interface SigningKey {
  kid: string;
  privateKey: CryptoKey;
  publicJwk: JWK;
  publicPem: string;
}

async function signingKey(kid: string): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  return {
    kid,
    privateKey,
    publicJwk: { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' },
    publicPem: await exportSPKI(publicKey),
  };
}

/** A JWKS endpoint whose keys (and health) the test changes at will; counts fetches. */
interface KeyServer {
  jwksUri: string;
  keys: JWK[];
  failWith: number | undefined;
  fetches: number;
  close(): Promise<void>;
}

async function startKeyServer(keys: JWK[]): Promise<KeyServer> {
  const state: KeyServer = { jwksUri: '', keys, failWith: undefined, fetches: 0, close: async () => {} };
  const server: Server = createServer((_req, res) => {
    state.fetches += 1;
    if (state.failWith) {
      res.writeHead(state.failWith).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: state.keys }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.jwksUri = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks`;
  state.close = () =>
    new Promise((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  return state;
}

const tokensSeen = new Set<string>();

interface TokenOptions {
  key?: SigningKey;
  header?: Record<string, unknown>;
}

/** An RFC 9068 access token for the stocks API by default; `claims` override or (undefined) remove. */
async function token(claims: Record<string, unknown> = {}, options: TokenOptions = {}): Promise<string> {
  const key = options.key ?? k1;
  const payload: Record<string, unknown> = {
    iss: ISSUER,
    aud: STOCKS,
    sub: 'user-alice',
    client_id: 'agent-1',
    scope: 'stocks.read stocks.trade',
    region: 'us',
    email: 'alice@example.com',
    email_verified: true,
    client_assurance_level: 4,
    act: { sub: 'gatehouse-mcp-server' },
    iat: now(),
    exp: now() + 300,
    jti: crypto.randomUUID(),
    ...claims,
  };
  for (const [name, value] of Object.entries(payload)) if (value === undefined) delete payload[name];
  const jwt = await new SignJWT(payload)
    .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: key.kid, ...options.header })
    .sign(key.privateKey);
  tokensSeen.add(jwt);
  return jwt;
}

const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

interface CallOptions {
  token?: string;
  method?: string;
  body?: string;
  headers?: Record<string, string>;
}

async function call(base: string, path: string, options: CallOptions = {}) {
  const headers: Record<string, string> = { ...options.headers };
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  if (options.body !== undefined) headers['content-type'] ??= 'application/json';
  const response = await fetch(`${base}${path}`, {
    method: options.method ?? (options.body !== undefined ? 'POST' : 'GET'),
    headers,
    body: options.body,
  });
  const text = await response.text();
  assert.doesNotMatch(text, /\n\s+at /, 'never a stack trace');
  return {
    status: response.status,
    headers: response.headers,
    json: JSON.parse(text) as Record<string, unknown>,
  };
}

const order = (body: Record<string, unknown>) =>
  JSON.stringify({ symbol: 'ACME', side: 'buy', quantity: 5, ...body });

let k1: SigningKey;
let keyServer: KeyServer;
let apis: TestApis;
const others: Array<{ close(): Promise<void> }> = [];
const get = (path: string, options: CallOptions = {}) => call(apis.url, path, options);

before(async () => {
  k1 = await signingKey('k1');
  keyServer = await startKeyServer([k1.publicJwk]);
  apis = await startTestApis({ issuer: ISSUER, jwksUri: keyServer.jwksUri });
});

after(async () => {
  // No token ever reaches a log line.
  for (const line of [...apis.logs]) {
    for (const jwt of tokensSeen) assert.ok(!line.includes(jwt), `a token was logged: ${line}`);
  }
  await apis.close();
  for (const other of others) await other.close();
  await keyServer.close();
});

describe('routing', () => {
  test('paths outside /stocks and /customers are 404 JSON, token or not', async () => {
    for (const path of ['/', '/api/stocks', '/stocksx', '/stock']) {
      const response = await get(path);
      assert.equal(response.status, 404, path);
      assert.equal(response.json.error, 'not_found');
      assert.equal(typeof response.json.error_description, 'string');
    }
  });

  test('unknown path under an API: 404; known path, wrong method: 405 with Allow', async () => {
    const jwt = await token();
    assert.equal((await get('/stocks/ACME/history', { token: jwt })).status, 404);
    const wrongMethod = await get('/stocks', { token: jwt, method: 'DELETE' });
    assert.equal(wrongMethod.status, 405);
    assert.equal(wrongMethod.headers.get('allow'), 'GET');
    assert.equal(wrongMethod.json.error, 'method_not_allowed');
    assert.equal((await get('/stocks/ACME', { token: jwt, method: 'POST', body: '{}' })).status, 405);
  });

  test('a badly encoded path is a 400', async () => {
    const response = await get('/stocks/%E0%A4%A', { token: await token() });
    assert.equal(response.status, 400);
    assert.equal(response.json.error, 'invalid_request');
  });
});

describe('challenges (RFC 6750 §3)', () => {
  test('no token: 401 with a bare Bearer challenge naming the realm, no error attribute', async () => {
    const stocks = await get('/stocks');
    assert.equal(stocks.status, 401);
    assert.equal(stocks.headers.get('www-authenticate'), 'Bearer realm="Stocks API"');
    assert.equal(stocks.json.error, 'unauthorized');
    const customers = await get('/customers/me');
    assert.equal(customers.status, 401);
    assert.equal(customers.headers.get('www-authenticate'), 'Bearer realm="Customers API"');
  });

  test('a non-Bearer Authorization header counts as no token', async () => {
    const response = await get('/stocks', { headers: { authorization: 'Basic dXNlcjpwYXNz' } });
    assert.equal(response.status, 401);
    assert.equal(response.headers.get('www-authenticate'), 'Bearer realm="Stocks API"');
  });

  test('a token that is not a JWT: 401 invalid_token with a description', async () => {
    const response = await get('/stocks', { token: 'opaque-agent-token-0123456789' });
    assert.equal(response.status, 401);
    assert.equal(response.json.error, 'invalid_token');
    assert.match(
      response.headers.get('www-authenticate') ?? '',
      /^Bearer realm="Stocks API", error="invalid_token", error_description="[^"]+"$/,
    );
  });

  test('a missing scope: 403 insufficient_scope naming the scope needed', async () => {
    const tradeOnly = await token({ scope: 'stocks.trade' });
    const list = await get('/stocks', { token: tradeOnly });
    assert.equal(list.status, 403);
    assert.equal(list.json.error, 'insufficient_scope');
    assert.match(
      list.headers.get('www-authenticate') ?? '',
      /^Bearer realm="Stocks API", error="insufficient_scope", scope="stocks\.read"/,
    );
    const readOnly = await token({ scope: 'stocks.read' });
    const placed = await get('/stocks/orders', { token: readOnly, body: order({}) });
    assert.equal(placed.status, 403);
    assert.match(
      placed.headers.get('www-authenticate') ?? '',
      /error="insufficient_scope", scope="stocks\.trade"/,
    );
    const noScope = await get('/customers/me', { token: await token({ aud: CUSTOMERS, scope: undefined }) });
    assert.equal(noScope.status, 403);
    assert.match(noScope.headers.get('www-authenticate') ?? '', /scope="customers\.read"/);
  });
});

describe('stocks API', () => {
  test('the list shows the caller’s region only, with or without a trailing slash', async () => {
    const us = await get('/stocks', { token: await token({ region: 'us' }) });
    assert.equal(us.status, 200);
    assert.equal(us.headers.get('cache-control'), 'no-store');
    const symbols = (us.json.stocks as Array<{ symbol: string; region: string; price: number }>).map(
      (s) => s.symbol,
    );
    assert.deepEqual(symbols, ['ACME', 'GLOBEX', 'INITECH']);
    const eu = await get('/stocks/', { token: await token({ region: 'eu' }) });
    assert.deepEqual(
      (eu.json.stocks as Array<{ symbol: string }>).map((s) => s.symbol),
      ['ASML', 'SAP', 'NESN'],
    );
  });

  test('a caller without a region sees no stocks', async () => {
    const response = await get('/stocks', { token: await token({ region: undefined }) });
    assert.equal(response.status, 200);
    assert.deepEqual(response.json.stocks, []);
  });

  test('one stock; another region’s stock is as unknown as a missing one', async () => {
    const jwt = await token({ region: 'us' });
    const acme = await get('/stocks/acme', { token: jwt });
    assert.equal(acme.status, 200);
    assert.equal(acme.json.symbol, 'ACME');
    assert.equal(typeof acme.json.price, 'number');
    const otherRegion = await get('/stocks/SAP', { token: jwt });
    const missing = await get('/stocks/NOPE', { token: jwt });
    assert.equal(otherRegion.status, 404);
    assert.equal(missing.status, 404);
    assert.equal(
      String(otherRegion.json.error_description).replace('SAP', 'X'),
      String(missing.json.error_description).replace('NOPE', 'X'),
    );
  });

  test('an order is accepted: 201 with who, through which client and actor', async () => {
    const response = await get('/stocks/orders', { token: await token(), body: order({ symbol: 'globex' }) });
    assert.equal(response.status, 201);
    assert.equal(response.json.symbol, 'GLOBEX');
    assert.equal(response.json.side, 'buy');
    assert.equal(response.json.quantity, 5);
    assert.equal(response.json.status, 'accepted');
    assert.equal(response.json.placedBy, 'user-alice');
    assert.equal(response.json.client, 'agent-1');
    assert.equal(response.json.actor, 'gatehouse-mcp-server');
    assert.equal(typeof response.json.id, 'string');
    const audit = apis
      .records('audit')
      .filter((r) => r.event === 'stocks.order')
      .at(-1);
    assert.equal(audit?.outcome, 'success');
    assert.equal(audit?.order_id, response.json.id);
  });

  test('orders need the configured client assurance level: 403 without a scope challenge', async () => {
    for (const level of [0, undefined, '4']) {
      const response = await get('/stocks/orders', {
        token: await token({ client_assurance_level: level }),
        body: order({}),
      });
      assert.equal(response.status, 403, String(level));
      assert.equal(response.json.error, 'insufficient_client_assurance');
      assert.match(String(response.json.error_description), /at least 1/);
      assert.equal(response.headers.get('www-authenticate'), null, 'more scope would not help');
    }
    assert.equal(
      apis
        .records('audit')
        .filter((r) => r.event === 'stocks.order')
        .at(-1)?.outcome,
      'denied',
    );
  });

  test('bad order bodies: 400 naming the problem', async () => {
    const jwt = await token();
    const cases: Array<[string, RegExp]> = [
      ['not json', /not valid JSON/],
      ['[]', /JSON object/],
      [order({ quantity: 0 }), /quantity/],
      [order({ quantity: 10_001 }), /quantity/],
      [order({ quantity: 2.5 }), /quantity/],
      [order({ side: 'hold' }), /side/],
      [order({ symbol: 'A1' }), /symbol/],
      [order({ extra: true }), /unknown field/],
    ];
    for (const [body, message] of cases) {
      const response = await get('/stocks/orders', { token: jwt, body });
      assert.equal(response.status, 400, body);
      assert.equal(response.json.error, 'invalid_request');
      assert.match(String(response.json.error_description), message);
    }
  });

  test('an order for another region’s stock: 404, as for an unknown one', async () => {
    const response = await get('/stocks/orders', {
      token: await token({ region: 'us' }),
      body: order({ symbol: 'SAP' }),
    });
    assert.equal(response.status, 404);
  });

  test('only JSON bodies, and at most 16 KiB', async () => {
    const jwt = await token();
    const form = await get('/stocks/orders', {
      token: jwt,
      body: 'symbol=ACME',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    assert.equal(form.status, 415);
    const withCharset = await get('/stocks/orders', {
      token: jwt,
      body: order({}),
      headers: { 'content-type': 'application/json; charset=utf-8' },
    });
    assert.equal(withCharset.status, 201);
    const huge = await get('/stocks/orders', { token: jwt, body: order({ pad: 'x'.repeat(17 * 1024) }) });
    assert.equal(huge.status, 413);
    assert.equal(huge.json.error, 'request_too_large');
  });
});

describe('customers API', () => {
  const customerToken = (claims: Record<string, unknown> = {}) =>
    token({ aud: CUSTOMERS, scope: 'customers.read', ...claims });

  test('/customers/me is the caller’s own record, matched on the verified email', async () => {
    const alice = await get('/customers/me', { token: await customerToken() });
    assert.equal(alice.status, 200);
    assert.equal(alice.json.id, 'cus-1001');
    assert.equal(alice.json.email, 'alice@example.com');
    const bob = await get('/customers/me', {
      token: await customerToken({ sub: 'user-bob', email: 'bob@example.com' }),
    });
    assert.equal(bob.json.id, 'cus-1002');
  });

  test('no record for the caller (or an unverified email): 404', async () => {
    const carol = await get('/customers/me', { token: await customerToken({ email: 'carol@example.com' }) });
    assert.equal(carol.status, 404);
    const unverified = await get('/customers/me', {
      token: await customerToken({ email_verified: undefined }),
    });
    assert.equal(unverified.status, 404);
  });

  test('/customers/{id}: one’s own record only; another’s or an unknown id are alike 403', async () => {
    const jwt = await customerToken();
    assert.equal((await get('/customers/cus-1001', { token: jwt })).status, 200);
    const other = await get('/customers/cus-1002', { token: jwt });
    assert.equal(other.status, 403);
    assert.equal(other.json.error, 'forbidden');
    const unknown = await get('/customers/cus-9999', { token: jwt });
    assert.equal(unknown.status, 403);
    assert.deepEqual(unknown.json, other.json);
  });
});

describe('token checks', () => {
  async function refused(jwt: string, path = '/stocks', description?: RegExp) {
    const response = await get(path, { token: jwt });
    assert.equal(response.status, 401, JSON.stringify(response.json));
    assert.equal(response.json.error, 'invalid_token');
    assert.match(response.headers.get('www-authenticate') ?? '', /error="invalid_token"/);
    if (description) assert.match(String(response.json.error_description), description);
  }

  test('each API accepts only its own audience; an MCP server token is refused by both', async () => {
    await refused(await token({ aud: CUSTOMERS }), '/stocks', /aud/);
    await refused(await token({ aud: STOCKS, scope: 'customers.read' }), '/customers/me', /aud/);
    const mcp = await token({ aud: MCP, scope: 'stocks:read customers:read stocks.read customers.read' });
    await refused(mcp, '/stocks');
    await refused(mcp, '/customers/me');
    await refused(await token({ aud: undefined }));
  });

  test('expiry: beyond the 30 s skew refused, within it accepted', async () => {
    await refused(await token({ exp: now() - 60, iat: now() - 400 }), '/stocks', /expired/);
    assert.equal(
      (await get('/stocks', { token: await token({ exp: now() - 10, iat: now() - 300 }) })).status,
      200,
    );
  });

  test('not before: beyond the skew refused, within it accepted', async () => {
    await refused(await token({ nbf: now() + 120 }));
    assert.equal((await get('/stocks', { token: await token({ nbf: now() + 10 }) })).status, 200);
  });

  test('wrong issuer, missing exp, sub or client_id: refused', async () => {
    await refused(await token({ iss: 'https://evil.test' }), '/stocks', /iss/);
    await refused(await token({ iss: undefined }));
    await refused(await token({ exp: undefined }));
    await refused(await token({ sub: undefined }));
    await refused(await token({ client_id: undefined }));
  });

  test('typ must be at+jwt (RFC 9068 §4)', async () => {
    await refused(await token({}, { header: { typ: 'JWT' } }));
    await refused(await token({}, { header: { typ: undefined } }));
  });

  test('alg none is refused', async () => {
    const claims = {
      iss: ISSUER,
      aud: STOCKS,
      sub: 'user-alice',
      client_id: 'agent-1',
      scope: 'stocks.read',
      exp: now() + 300,
    };
    await refused(`${encode({ alg: 'none', typ: 'at+jwt', kid: 'k1' })}.${encode(claims)}.`);
  });

  test('HS256 signed with the public key’s bytes is refused', async () => {
    for (const secret of [k1.publicPem, JSON.stringify(k1.publicJwk)]) {
      const forged = await new SignJWT({ sub: 'user-alice', client_id: 'agent-1', scope: 'stocks.read' })
        .setProtectedHeader({ alg: 'HS256', typ: 'at+jwt', kid: 'k1' })
        .setIssuer(ISSUER)
        .setAudience(STOCKS)
        .setExpirationTime('5m')
        .sign(new TextEncoder().encode(secret));
      tokensSeen.add(forged);
      await refused(forged, '/stocks', /algorithm/);
    }
  });

  test('a key not in the JWKS is refused, with its own kid or the trusted one', async () => {
    const stranger = await signingKey('stranger');
    await refused(await token({}, { key: stranger }), '/stocks', /unknown key/);
    await refused(await token({}, { key: { ...stranger, kid: 'k1' } }), '/stocks', /signature/);
    await refused(`${(await token()).slice(0, -4)}AAAA`);
  });

  test('key rotation: an unknown kid refetches the JWKS (at most once per 30 s)', async (t) => {
    const rotating = await startKeyServer([k1.publicJwk]);
    const rotated = await startTestApis({ issuer: ISSUER, jwksUri: rotating.jwksUri });
    others.push(rotated, rotating);
    assert.equal((await call(rotated.url, '/stocks', { token: await token() })).status, 200);
    assert.equal(rotating.fetches, 1);

    const k2 = await signingKey('k2');
    rotating.keys = [k2.publicJwk];
    const newToken = await token({}, { key: k2 });
    // Just after a fetch, an unknown kid does not make the API refetch: a flood of made-up kids
    // cannot turn it into a load on the authorization server.
    assert.equal((await call(rotated.url, '/stocks', { token: newToken })).status, 401);
    assert.equal(rotating.fetches, 1);

    t.after(() => mock.timers.reset());
    mock.timers.enable({ apis: ['Date'], now: Date.now() + 31_000 });
    const accepted = await call(rotated.url, '/stocks', { token: newToken });
    assert.equal(accepted.status, 200, JSON.stringify(accepted.json));
    assert.equal(rotating.fetches, 2);
  });
});

describe('signing keys unavailable: fail closed', () => {
  test('JWKS unreachable: 503 with Retry-After, nothing let through', async () => {
    const keys = await startKeyServer([k1.publicJwk]);
    const port = new URL(keys.jwksUri).port;
    await keys.close();
    const isolated = await startTestApis({ issuer: ISSUER, jwksUri: `http://127.0.0.1:${port}/jwks` });
    others.push(isolated);
    const jwt = await token();
    for (const path of ['/stocks', '/customers/me']) {
      const response = await call(isolated.url, path, { token: jwt });
      assert.equal(response.status, 503, path);
      assert.equal(response.headers.get('retry-after'), '30');
      assert.equal(response.json.error, 'temporarily_unavailable');
      assert.equal(response.headers.get('www-authenticate'), null);
    }
  });

  test('JWKS answering an error: 503; once it answers, the token is accepted', async () => {
    const keys = await startKeyServer([k1.publicJwk]);
    keys.failWith = 500;
    const isolated = await startTestApis({ issuer: ISSUER, jwksUri: keys.jwksUri });
    others.push(isolated, keys);
    const jwt = await token();
    assert.equal((await call(isolated.url, '/stocks', { token: jwt })).status, 503);
    keys.failWith = undefined;
    assert.equal((await call(isolated.url, '/stocks', { token: jwt })).status, 200);
  });
});

describe('request log', () => {
  test('one line per request: method, path, status, sub, client_id, duration; refusals say why', async () => {
    const before = apis.records('request').length;
    await get('/stocks/ACME?access_token=should-not-be-logged', { token: await token() });
    await get('/stocks', { token: await token({ exp: now() - 120 }) });
    const lines = apis.records('request').slice(before);
    assert.equal(lines.length, 2);
    const [ok, refused] = lines;
    assert.equal(ok?.method, 'GET');
    assert.equal(ok?.path, '/stocks/ACME');
    assert.equal(ok?.status, 200);
    assert.equal(ok?.api, 'stocks');
    assert.equal(ok?.sub, 'user-alice');
    assert.equal(ok?.client_id, 'agent-1');
    assert.equal(typeof ok?.duration_ms, 'number');
    assert.equal(refused?.status, 401);
    assert.equal(refused?.error, 'invalid_token');
    assert.match(String(refused?.reason), /expired/);
    assert.ok(!apis.logs.some((line) => line.includes('should-not-be-logged')));
  });
});
