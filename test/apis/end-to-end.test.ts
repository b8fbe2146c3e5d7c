/**
 * The example APIs against a real authorization server: users sign in through a dynamically
 * registered agent, the MCP server's client exchanges their (opaque) tokens for API tokens by
 * RFC 8693, and the APIs authorize on the claims those tokens carry. Every token that is not an
 * API token for the API at hand (the agent's own, the phantom JWT for the MCP server, the other
 * API's, forged ones) is refused.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { decodeJwt, decodeProtectedHeader, generateKeyPair, SignJWT } from 'jose';
import { startTestApis, type TestApis } from '../helpers/apis.ts';
import {
  startTestAuthorizationServer,
  type TestAuthorizationServer,
} from '../helpers/authorization-server.ts';
import { authorize, Browser, basic, postForm, redeemCode, toolHeader } from '../helpers/oauth.ts';

const STOCKS = 'http://localhost:8000/api/stocks';
const CUSTOMERS = 'http://localhost:8000/api/customers';
const REDIRECT = 'http://127.0.0.1/callback';
const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';

let as: TestAuthorizationServer;
let apis: TestApis;
/** The same APIs, but orders need a pre-registered client (assurance level 4). */
let strictApis: TestApis;
let agent: string;
let mcpServer: string;
let gateway: string;
/** Opaque agent tokens: alice (eu) may trade, bob (us) may only read. */
let alice: string;
let bob: string;
const secrets = new Set<string>();

const secretOf = (clientId: string) => {
  const secret = readFileSync(path.join(as.dataDir, `secrets/${clientId}.secret`), 'utf8').trim();
  secrets.add(secret);
  return basic(clientId, secret);
};

async function register(): Promise<string> {
  const response = await fetch(`${as.issuer}/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      client_name: 'APIs test agent',
      redirect_uris: [REDIRECT],
      application_type: 'native',
    }),
  });
  const body = (await response.json()) as Record<string, unknown>;
  assert.equal(response.status, 201, JSON.stringify(body));
  return String(body.client_id);
}

/** A user signs in and consents; the agent redeems the code for an opaque token for the MCP server. */
async function userToken(email: string, scope: string): Promise<string> {
  const result = await authorize({
    issuer: as.issuer,
    clientId: agent,
    redirectUri: REDIRECT,
    scope,
    email,
    browser: new Browser(),
  });
  const code = result.callback.searchParams.get('code');
  assert.ok(code, result.callback.href);
  const token = await redeemCode(as.issuer, {
    code,
    verifier: result.verifier,
    redirectUri: REDIRECT,
    clientId: agent,
  });
  assert.equal(token.status, 200, token.text);
  secrets.add(String(token.json.access_token));
  return String(token.json.access_token);
}

/** What the MCP server does before each upstream call: exchange the subject token for the API's audience. */
async function exchange(subjectToken: string, audience: string, tool?: string): Promise<string> {
  const response = await postForm(
    `${as.issuer}/token`,
    {
      grant_type: TOKEN_EXCHANGE,
      subject_token: subjectToken,
      subject_token_type: ACCESS_TOKEN_TYPE,
      audience,
    },
    { authorization: mcpServer, ...toolHeader(audience, tool) },
  );
  assert.equal(response.status, 200, response.text);
  secrets.add(String(response.json.access_token));
  return String(response.json.access_token);
}

/** The phantom token the gateway forwards: a JWT for the same grant, audience the MCP server. */
async function phantomToken(opaque: string): Promise<string> {
  const response = await postForm(
    `${as.issuer}/introspect`,
    { token: opaque },
    { authorization: gateway, accept: 'application/jwt' },
  );
  assert.equal(response.status, 200, response.text);
  assert.match(response.headers.get('content-type') ?? '', /^application\/jwt/);
  secrets.add(response.text);
  return response.text;
}

async function call(base: string, path: string, token?: string, body?: unknown) {
  const headers: Record<string, string> = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(`${base}${path}`, {
    method: body === undefined ? 'GET' : 'POST',
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return {
    status: response.status,
    headers: response.headers,
    json: (await response.json()) as Record<string, unknown>,
  };
}

const symbolsOf = (json: Record<string, unknown>) =>
  (json.stocks as Array<{ symbol: string }>).map((s) => s.symbol);

before(async () => {
  as = await startTestAuthorizationServer();
  apis = await startTestApis({ issuer: as.issuer });
  strictApis = await startTestApis({ issuer: as.issuer, stocks: { minAssuranceLevelForOrders: 4 } });
  agent = await register();
  mcpServer = secretOf('gatehouse-mcp-server');
  gateway = secretOf('gatehouse-gateway');
  alice = await userToken('alice@example.com', 'stocks:read stocks:trade customers:read');
  bob = await userToken('bob@example.com', 'stocks:read customers:read');
});

after(async () => {
  const logs = [...apis.logs, ...strictApis.logs, ...as.logs];
  for (const secret of secrets) {
    assert.ok(!logs.some((line) => line.includes(secret)), 'no token or secret in any log line');
  }
  await strictApis.close();
  await apis.close();
  await as.close();
});

describe('stocks API with exchanged tokens', () => {
  test('the list is filtered by the user’s region: alice eu, bob us', async () => {
    const aliceList = await call(apis.url, '/stocks', await exchange(alice, STOCKS));
    assert.equal(aliceList.status, 200, JSON.stringify(aliceList.json));
    assert.deepEqual(symbolsOf(aliceList.json), ['ASML', 'SAP', 'NESN']);
    const bobList = await call(apis.url, '/stocks/', await exchange(bob, STOCKS));
    assert.deepEqual(symbolsOf(bobList.json), ['ACME', 'GLOBEX', 'INITECH']);
  });

  test('one stock of one’s region; another region’s is 404', async () => {
    const token = await exchange(alice, STOCKS);
    const asml = await call(apis.url, '/stocks/ASML', token);
    assert.equal(asml.status, 200);
    assert.equal(asml.json.region, 'eu');
    const acme = await call(apis.url, '/stocks/ACME', token);
    assert.equal(acme.status, 404);
    assert.equal(acme.json.error, 'not_found');
  });

  test('an order with the trade scope is accepted, on behalf of the user, by the agent, through the MCP server', async () => {
    const token = await exchange(alice, STOCKS, 'place_order');
    const claims = decodeJwt(token);
    // Exactly what place_order needs (mcpServer.tools[].apiScopes), not stocks.read too.
    assert.equal(claims.scope, 'stocks.trade');
    const response = await call(apis.url, '/stocks/orders', token, {
      symbol: 'ASML',
      side: 'buy',
      quantity: 10,
    });
    assert.equal(response.status, 201, JSON.stringify(response.json));
    assert.equal(response.json.status, 'accepted');
    assert.equal(response.json.symbol, 'ASML');
    assert.equal(response.json.placedBy, claims.sub);
    assert.equal(response.json.client, agent);
    assert.equal(response.json.actor, 'gatehouse-mcp-server');
  });

  test('an order with only the read scope: 403 insufficient_scope, scope="stocks.trade"', async () => {
    const token = await exchange(bob, STOCKS);
    assert.equal(decodeJwt(token).scope, 'stocks.read');
    const response = await call(apis.url, '/stocks/orders', token, {
      symbol: 'ACME',
      side: 'sell',
      quantity: 1,
    });
    assert.equal(response.status, 403);
    assert.equal(response.json.error, 'insufficient_scope');
    assert.equal(
      response.headers.get('www-authenticate'),
      'Bearer realm="Stocks API", error="insufficient_scope", scope="stocks.trade", error_description="this request needs the stocks.trade scope"',
    );
  });

  test('an order from a dynamically registered client where level 4 is required: 403 insufficient_client_assurance', async () => {
    const token = await exchange(alice, STOCKS, 'place_order');
    assert.equal(decodeJwt(token).client_assurance_level, 1);
    const response = await call(strictApis.url, '/stocks/orders', token, {
      symbol: 'SAP',
      side: 'buy',
      quantity: 1,
    });
    assert.equal(response.status, 403);
    assert.equal(response.json.error, 'insufficient_client_assurance');
    assert.equal(response.headers.get('www-authenticate'), null);
    // Reading is not affected.
    assert.equal((await call(strictApis.url, '/stocks', await exchange(alice, STOCKS))).status, 200);
  });
});

describe('customers API with exchanged tokens', () => {
  test('/customers/me is the caller’s own record', async () => {
    const aliceRecord = await call(apis.url, '/customers/me', await exchange(alice, CUSTOMERS));
    assert.equal(aliceRecord.status, 200, JSON.stringify(aliceRecord.json));
    assert.equal(aliceRecord.json.email, 'alice@example.com');
    const bobRecord = await call(apis.url, '/customers/me', await exchange(bob, CUSTOMERS));
    assert.equal(bobRecord.json.email, 'bob@example.com');
    assert.notEqual(aliceRecord.json.id, bobRecord.json.id);
  });

  test('another user’s record by id: 403; one’s own by id: 200', async () => {
    const token = await exchange(alice, CUSTOMERS);
    const own = await call(apis.url, '/customers/me', token);
    const bobs = await call(apis.url, '/customers/me', await exchange(bob, CUSTOMERS));
    assert.equal((await call(apis.url, `/customers/${own.json.id}`, token)).status, 200);
    const other = await call(apis.url, `/customers/${bobs.json.id}`, token);
    assert.equal(other.status, 403);
    assert.equal(other.json.email, undefined);
  });
});

describe('tokens that are not for this API are refused', () => {
  const expectInvalidToken = (response: Awaited<ReturnType<typeof call>>, realm: string) => {
    assert.equal(response.status, 401, JSON.stringify(response.json));
    assert.equal(response.json.error, 'invalid_token');
    assert.match(
      response.headers.get('www-authenticate') ?? '',
      new RegExp(`^Bearer realm="${realm}", error="invalid_token"`),
    );
  };

  test('no token: 401 with a bare challenge', async () => {
    const response = await call(apis.url, '/stocks');
    assert.equal(response.status, 401);
    assert.equal(response.headers.get('www-authenticate'), 'Bearer realm="Stocks API"');
  });

  test('a customers API token at the stocks API, and the reverse', async () => {
    expectInvalidToken(await call(apis.url, '/stocks', await exchange(alice, CUSTOMERS)), 'Stocks API');
    expectInvalidToken(await call(apis.url, '/customers/me', await exchange(alice, STOCKS)), 'Customers API');
  });

  test('the phantom JWT for the MCP server is refused by both APIs', async () => {
    const phantom = await phantomToken(alice);
    assert.equal(decodeJwt(phantom).aud, 'http://localhost:8000/mcp');
    expectInvalidToken(await call(apis.url, '/stocks', phantom), 'Stocks API');
    expectInvalidToken(await call(apis.url, '/customers/me', phantom), 'Customers API');
  });

  test('the agent’s own opaque token is refused by both APIs', async () => {
    expectInvalidToken(await call(apis.url, '/stocks', alice), 'Stocks API');
    expectInvalidToken(await call(apis.url, '/customers/me', alice), 'Customers API');
  });

  test('forgeries of a real API token: another key, alg none, HS256 with the server’s public key', async () => {
    const real = await exchange(alice, STOCKS);
    const header = decodeProtectedHeader(real);
    const claims = decodeJwt(real);
    const { privateKey } = await generateKeyPair('ES256');
    const otherKey = await new SignJWT(claims)
      .setProtectedHeader({ ...header, alg: 'ES256' })
      .sign(privateKey);
    expectInvalidToken(await call(apis.url, '/stocks', otherKey), 'Stocks API');

    const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
    const unsigned = `${encode({ ...header, alg: 'none' })}.${encode(claims)}.`;
    expectInvalidToken(await call(apis.url, '/stocks', unsigned), 'Stocks API');

    const jwks = (await (await fetch(`${as.issuer}/jwks`)).json()) as { keys: Array<{ kid?: string }> };
    const publicKey = jwks.keys.find((key) => key.kid === header.kid);
    assert.ok(publicKey);
    const hs256 = await new SignJWT(claims)
      .setProtectedHeader({ ...header, alg: 'HS256' })
      .sign(new TextEncoder().encode(JSON.stringify(publicKey)));
    expectInvalidToken(await call(apis.url, '/stocks', hs256), 'Stocks API');
    for (const forged of [otherKey, unsigned, hs256]) secrets.add(forged);
  });
});
