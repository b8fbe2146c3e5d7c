/**
 * The MCP server against a real authorization server (tokens minted by it, token exchange done by
 * it) and a real upstream API server started here that verifies nothing but records what it got.
 *
 * The phantom token is obtained the way the gateway obtains it: an agent registers (DCR), a user
 * signs in and consents, the agent redeems the code for an opaque token, and the gateway's client
 * introspects it asking for `application/jwt`.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { decodeJwt, importJWK, type JWK, SignJWT } from 'jose';
import { type RunningMcpServer, startMcpServer } from '../../src/mcp-server/server.ts';
import { parseConfig } from '../../src/shared/config/load.ts';
import { close as closeServer } from '../../src/shared/http.ts';
import { createLogger } from '../../src/shared/logging.ts';
import {
  startTestAuthorizationServer,
  type TestAuthorizationServer,
} from '../helpers/authorization-server.ts';
import { authorize, basic, postForm, redeemCode, toolHeader } from '../helpers/oauth.ts';

const RESOURCE = 'http://localhost:8000/mcp';
const PRM_URL = 'http://localhost:8000/.well-known/oauth-protected-resource/mcp';
const STOCKS = 'http://localhost:8000/api/stocks';
const CUSTOMERS = 'http://localhost:8000/api/customers';
const REDIRECT = 'http://127.0.0.1/callback';
const MCP_SERVER_CLIENT = 'gatehouse-mcp-server';
const UPSTREAM_TIMEOUT_MS = 400;

// ---------------------------------------------------------------------------------------------
// A stand-in API: records every request and answers per path.

interface UpstreamHit {
  method: string;
  url: string;
  authorization: string | undefined;
  body: string;
}

async function startUpstream() {
  const hits: UpstreamHit[] = [];
  const server = createServer(async (req: IncomingMessage, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const hit = {
      method: req.method ?? '',
      url: req.url ?? '',
      authorization: req.headers.authorization,
      body: Buffer.concat(chunks).toString('utf8'),
    };
    hits.push(hit);
    const answer = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (hit.url === '/stocks/BROKEN') return answer(500, { error: 'boom', stack: 'at secret.js:1' });
    if (hit.url === '/stocks/SLOW') {
      setTimeout(() => answer(200, { symbol: 'SLOW' }), UPSTREAM_TIMEOUT_MS * 5).unref();
      return;
    }
    if (hit.url === '/stocks/MISSING')
      return answer(404, { error: 'not_found', error_description: 'no stock MISSING' });
    if (hit.url.startsWith('/stocks/')) return answer(200, { symbol: hit.url.slice(8), price: 42 });
    if (hit.url === '/customers/me') return answer(200, { name: 'Alice' });
    return answer(404, { error: 'not_found' });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, hits, server };
}

// ---------------------------------------------------------------------------------------------
// Tokens, obtained as the agent and the gateway would.

async function registerAgent(issuer: string): Promise<string> {
  const response = await fetch(`${issuer}/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      client_name: 'MCP server test agent',
      redirect_uris: [REDIRECT],
      application_type: 'native',
    }),
  });
  const body = (await response.json()) as { client_id: string };
  assert.equal(response.status, 201, JSON.stringify(body));
  return body.client_id;
}

/** An opaque token for the MCP server with `scope`, then the phantom JWT the gateway would forward. */
async function phantomToken(as: TestAuthorizationServer, clientId: string, scope: string): Promise<string> {
  const result = await authorize({
    issuer: as.issuer,
    clientId,
    redirectUri: REDIRECT,
    scope,
    resource: RESOURCE,
  });
  const code = result.callback.searchParams.get('code');
  assert.ok(code, result.callback.href);
  const token = await redeemCode(as.issuer, {
    code,
    verifier: result.verifier,
    redirectUri: REDIRECT,
    clientId,
    resource: RESOURCE,
  });
  assert.equal(token.status, 200, token.text);
  const gatewaySecret = readFileSync(
    path.join(as.dataDir, 'secrets/gatehouse-gateway.secret'),
    'utf8',
  ).trim();
  const introspection = await postForm(
    `${as.issuer}/introspect`,
    { token: String(token.json.access_token) },
    { authorization: basic('gatehouse-gateway', gatewaySecret), accept: 'application/jwt' },
  );
  assert.equal(introspection.status, 200, introspection.text);
  assert.match(introspection.headers.get('content-type') ?? '', /application\/jwt/);
  return introspection.text;
}

/** A JWT signed with the authorization server's own key: for tokens it would never issue. */
async function signWithServerKey(
  as: TestAuthorizationServer,
  claims: Record<string, unknown>,
  issuer = as.issuer,
) {
  const keys = JSON.parse(readFileSync(path.join(as.dataDir, 'keys.json'), 'utf8')) as { signingKeys: JWK[] };
  const jwk = keys.signingKeys.find((key) => key.alg === 'ES256')!;
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: jwk.kid! })
    .setIssuer(issuer)
    .sign(await importJWK(jwk, 'ES256'));
}

// ---------------------------------------------------------------------------------------------
// Talking to the MCP server.

function sdkClient(endpoint: string, token: string, era: 'modern' | '2025-11-25', recordInto?: Response[]) {
  const transport = new StreamableHTTPClientTransport(new URL(endpoint), {
    requestInit: { headers: { authorization: `Bearer ${token}` } },
    ...(recordInto
      ? {
          fetch: async (input: string | URL, init?: RequestInit) => {
            const response = await fetch(input, init);
            recordInto.push(response.clone());
            return response;
          },
        }
      : {}),
  });
  const client = new Client(
    { name: 'gatehouse-test', version: '1.0.0' },
    era === 'modern'
      ? { versionNegotiation: { mode: { pin: '2026-07-28' } } }
      : { supportedProtocolVersions: ['2025-11-25'] },
  );
  return { client, transport };
}

/** A raw JSON-RPC POST in the 2025 style (no `_meta` envelope). */
function rpc(endpoint: string, body: unknown, headers: Record<string, string> = {}) {
  return fetch(endpoint, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      ...headers,
    },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

/** The JSON-RPC message of a response that may be JSON or a one-event SSE stream. */
async function rpcResult(response: Response): Promise<Record<string, unknown>> {
  const text = await response.text();
  if ((response.headers.get('content-type') ?? '').includes('text/event-stream')) {
    const data = text
      .split('\n')
      .filter((line) => line.startsWith('data: '))
      .map((line) => line.slice(6))
      .find((line) => line.includes('"jsonrpc"'));
    assert.ok(data, text);
    return JSON.parse(data) as Record<string, unknown>;
  }
  return JSON.parse(text) as Record<string, unknown>;
}

const textOf = (result: { content?: unknown }) =>
  ((result.content as Array<{ type: string; text?: string }>) ?? [])
    .map((block) => block.text ?? '')
    .join('\n');

// ---------------------------------------------------------------------------------------------

describe('MCP server', () => {
  let as: TestAuthorizationServer;
  let upstream: Awaited<ReturnType<typeof startUpstream>>;
  let mcp: RunningMcpServer;
  let endpoint: string;
  const logs: string[] = [];
  let agentId: string;
  /** stocks:read customers:read — the base consent. */
  let readToken: string;
  /** stocks:read stocks:trade customers:read. */
  let tradeToken: string;

  before(async () => {
    as = await startTestAuthorizationServer();
    upstream = await startUpstream();
    const config = parseConfig({
      dataDir: as.dataDir,
      authorizationServer: { issuer: as.issuer },
      mcpServer: {
        listen: { host: '127.0.0.1', port: 0 },
        authorizationServerUrl: as.issuer,
        apis: {
          stocks: { baseUrl: `${upstream.url}/stocks`, audience: STOCKS },
          customers: { baseUrl: `${upstream.url}/customers`, audience: CUSTOMERS },
        },
        upstreamTimeoutMs: UPSTREAM_TIMEOUT_MS,
      },
    });
    mcp = await startMcpServer(
      { config, dataDir: as.dataDir, file: undefined },
      { logger: createLogger('mcp-server', { level: 'debug', write: (line) => logs.push(line) }) },
    );
    endpoint = mcp.endpoint;
    agentId = await registerAgent(as.issuer);
    readToken = await phantomToken(as, agentId, 'stocks:read customers:read');
    tradeToken = await phantomToken(as, agentId, 'stocks:read stocks:trade customers:read');
  });

  after(async () => {
    await mcp?.close();
    if (upstream) await closeServer(upstream.server);
    await as?.close();
  });

  describe('Protected Resource Metadata (RFC 9728)', () => {
    for (const at of ['/.well-known/oauth-protected-resource/mcp', '/.well-known/oauth-protected-resource']) {
      test(`is served at ${at}, built from the canonical URI, readable from any origin`, async () => {
        const response = await fetch(`${mcp.url}${at}`, { headers: { origin: 'https://elsewhere.example' } });
        assert.equal(response.status, 200);
        assert.equal(response.headers.get('access-control-allow-origin'), '*');
        assert.deepEqual(await response.json(), {
          resource: RESOURCE,
          authorization_servers: [as.issuer],
          scopes_supported: ['stocks:read', 'stocks:trade', 'customers:read'],
          resource_name: 'Gatehouse MCP server',
          bearer_methods_supported: ['header'],
          dpop_signing_alg_values_supported: ['ES256', 'ES384', 'PS256', 'RS256', 'EdDSA', 'Ed25519'],
          dpop_bound_access_tokens_required: false,
        });
      });
    }

    test('answers a CORS preflight and refuses other methods', async () => {
      const preflight = await fetch(`${mcp.url}/.well-known/oauth-protected-resource/mcp`, {
        method: 'OPTIONS',
        headers: {
          origin: 'https://elsewhere.example',
          'access-control-request-method': 'GET',
          'access-control-request-headers': 'mcp-protocol-version',
        },
      });
      assert.equal(preflight.status, 204);
      assert.equal(preflight.headers.get('access-control-allow-origin'), '*');
      const post = await fetch(`${mcp.url}/.well-known/oauth-protected-resource`, { method: 'POST' });
      assert.equal(post.status, 405);
    });
  });

  describe('challenges', () => {
    test('no token: 401 with resource_metadata and the base scope, and no error (RFC 6750 §3.1)', async () => {
      const response = await rpc(endpoint, { jsonrpc: '2.0', id: 1, method: 'tools/list' });
      assert.equal(response.status, 401);
      // Two challenges (RFC 9110 §11.6.1): Bearer first, for clients that read only one, then DPoP.
      assert.equal(
        response.headers.get('www-authenticate'),
        `Bearer resource_metadata="${PRM_URL}", scope="stocks:read customers:read", DPoP algs="ES256 ES384 PS256 RS256 EdDSA Ed25519"`,
      );
    });

    test('an unsupported authentication scheme is treated as no token', async () => {
      const response = await rpc(
        endpoint,
        { jsonrpc: '2.0', id: 1, method: 'tools/list' },
        { authorization: 'Basic Zm9vOmJhcg==' },
      );
      assert.equal(response.status, 401);
      assert.doesNotMatch(response.headers.get('www-authenticate') ?? '', /error=/);
    });

    const invalidTokens: Array<[string, () => Promise<string>]> = [
      ['a garbage token', async () => 'not-a-jwt'],
      [
        'an expired token',
        () =>
          signWithServerKey(as, {
            sub: 'alice',
            client_id: agentId,
            scope: 'stocks:read',
            aud: RESOURCE,
            iat: Math.floor(Date.now() / 1000) - 600,
            exp: Math.floor(Date.now() / 1000) - 300,
          }),
      ],
      [
        'a token for another audience (an exchanged API token)',
        async () => {
          const secret = readFileSync(
            path.join(as.dataDir, `secrets/${MCP_SERVER_CLIENT}.secret`),
            'utf8',
          ).trim();
          const exchanged = await postForm(
            `${as.issuer}/token`,
            {
              grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
              subject_token: readToken,
              subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
              audience: STOCKS,
            },
            { authorization: basic(MCP_SERVER_CLIENT, secret), ...toolHeader(STOCKS) },
          );
          assert.equal(exchanged.status, 200, exchanged.text);
          return String(exchanged.json.access_token);
        },
      ],
      [
        'an unsigned token (alg none)',
        async () => {
          const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
          const claims = decodeJwt(readToken);
          return `${encode({ alg: 'none', typ: 'at+jwt' })}.${encode(claims)}.`;
        },
      ],
      [
        'a token from another issuer',
        // The right key, the right audience, but another issuer.
        () => signWithServerKey(as, { ...decodeJwt(readToken), iss: undefined }, 'https://evil.example'),
      ],
    ];
    for (const [name, make] of invalidTokens) {
      test(`${name}: 401 invalid_token with resource_metadata`, async () => {
        const token = await make();
        const response = await rpc(
          endpoint,
          { jsonrpc: '2.0', id: 1, method: 'tools/list' },
          { authorization: `Bearer ${token}` },
        );
        assert.equal(response.status, 401);
        const challenge = response.headers.get('www-authenticate') ?? '';
        assert.match(challenge, /^Bearer error="invalid_token", error_description="[^"]+"/);
        assert.ok(challenge.includes(`resource_metadata="${PRM_URL}"`), challenge);
        assert.ok(challenge.includes('scope="stocks:read customers:read"'), challenge);
        const body = (await response.json()) as Record<string, unknown>;
        assert.equal(body.error, 'invalid_token');
        assert.doesNotMatch(JSON.stringify(body), /at .*\.ts:\d+/);
      });
    }

    test('a tool the token lacks the scope for: 403 insufficient_scope before any exchange or upstream call', async () => {
      const exchangesBefore = mcp.exchanges;
      const hitsBefore = upstream.hits.length;
      const seen: Response[] = [];
      const { client, transport } = sdkClient(endpoint, readToken, 'modern', seen);
      await client.connect(transport);
      await assert.rejects(
        client.callTool({ name: 'place_order', arguments: { symbol: 'ACME', side: 'buy', quantity: 1 } }),
      );
      await client.close();
      const refused = seen.find((response) => response.status === 403);
      assert.ok(refused, `statuses: ${seen.map((response) => response.status).join(', ')}`);
      const challenge = refused.headers.get('www-authenticate') ?? '';
      assert.match(challenge, /^Bearer error="insufficient_scope"/);
      // 2026-07-28 (SEP-2350): the scopes the operation needs; the client accumulates.
      assert.ok(challenge.includes('scope="stocks:trade"'), challenge);
      assert.ok(challenge.includes(`resource_metadata="${PRM_URL}"`), challenge);
      assert.equal(mcp.exchanges, exchangesBefore, 'no token exchange');
      assert.equal(upstream.hits.length, hitsBefore, 'the API was not called');
    });

    test('a 2025-era client gets the union of its scopes and the tool’s (2025-11-25 recommendation)', async () => {
      const hitsBefore = upstream.hits.length;
      const response = await rpc(
        endpoint,
        {
          jsonrpc: '2.0',
          id: 7,
          method: 'tools/call',
          params: { name: 'place_order', arguments: { symbol: 'ACME', side: 'buy', quantity: 1 } },
        },
        { authorization: `Bearer ${readToken}`, 'mcp-protocol-version': '2025-11-25' },
      );
      assert.equal(response.status, 403);
      const challenge = response.headers.get('www-authenticate') ?? '';
      assert.match(challenge, /^Bearer error="insufficient_scope"/);
      assert.ok(challenge.includes('scope="stocks:read customers:read stocks:trade"'), challenge);
      assert.ok(challenge.includes(`resource_metadata="${PRM_URL}"`), challenge);
      assert.equal(upstream.hits.length, hitsBefore);
    });

    test('WWW-Authenticate is exposed to an allowed browser origin', async () => {
      const response = await rpc(
        endpoint,
        { jsonrpc: '2.0', id: 1, method: 'tools/list' },
        { origin: 'http://localhost:6274' },
      );
      assert.equal(response.status, 401);
      assert.equal(response.headers.get('access-control-allow-origin'), 'http://localhost:6274');
      assert.match(response.headers.get('access-control-expose-headers') ?? '', /WWW-Authenticate/i);
      const preflight = await fetch(endpoint, {
        method: 'OPTIONS',
        headers: {
          origin: 'http://localhost:6274',
          'access-control-request-method': 'POST',
          'access-control-request-headers': 'authorization, content-type, mcp-protocol-version',
        },
      });
      assert.equal(preflight.status, 204);
      assert.match(preflight.headers.get('access-control-allow-headers') ?? '', /Mcp-Protocol-Version/i);
    });

    test('an Origin that is not allowed: 403, even with a valid token', async () => {
      const response = await rpc(
        endpoint,
        { jsonrpc: '2.0', id: 1, method: 'tools/list' },
        { origin: 'https://evil.example', authorization: `Bearer ${readToken}` },
      );
      assert.equal(response.status, 403);
      assert.equal(response.headers.get('access-control-allow-origin'), null);
    });
  });

  for (const era of ['modern', '2025-11-25'] as const) {
    describe(`a ${era === 'modern' ? '2026-07-28' : '2025-11-25'} client`, () => {
      test('lists every configured tool with its title, schema and annotations', async () => {
        const { client, transport } = sdkClient(endpoint, readToken, era);
        await client.connect(transport);
        assert.equal(client.getProtocolEra(), era === 'modern' ? 'modern' : 'legacy');
        assert.equal(client.getNegotiatedProtocolVersion(), era === 'modern' ? '2026-07-28' : '2025-11-25');
        const { tools } = await client.listTools();
        await client.close();
        assert.deepEqual(
          tools.map((tool) => tool.name),
          ['list_stocks', 'get_stock', 'place_order', 'get_my_customer_record'],
        );
        const placeOrder = tools.find((tool) => tool.name === 'place_order')!;
        assert.equal(placeOrder.title, 'Place a stock order');
        assert.equal(placeOrder.annotations?.destructiveHint, true);
        assert.equal(placeOrder.annotations?.readOnlyHint, false);
        assert.deepEqual(placeOrder.inputSchema.required, ['symbol', 'side', 'quantity']);
        assert.equal(tools.find((tool) => tool.name === 'get_stock')!.annotations?.readOnlyHint, true);
      });

      test('get_stock calls the API with a token exchanged for it, never the subject token', async () => {
        const { client, transport } = sdkClient(endpoint, readToken, era);
        await client.connect(transport);
        const hitsBefore = upstream.hits.length;
        const result = await client.callTool({ name: 'get_stock', arguments: { symbol: 'ACME' } });
        await client.close();
        assert.equal(result.isError, undefined, textOf(result));
        assert.deepEqual(JSON.parse(textOf(result)), { symbol: 'ACME', price: 42 });
        const hit = upstream.hits.at(-1)!;
        assert.equal(upstream.hits.length, hitsBefore + 1);
        assert.equal(hit.method, 'GET');
        assert.equal(hit.url, '/stocks/ACME');
        const sent = hit.authorization?.replace(/^Bearer /, '') ?? '';
        assert.notEqual(sent, readToken);
        const claims = decodeJwt(sent);
        assert.equal(claims.aud, STOCKS);
        assert.deepEqual(claims.act, { sub: MCP_SERVER_CLIENT });
        assert.equal(claims.sub, decodeJwt(readToken).sub);
        assert.equal(claims.scope, 'stocks.read');
      });
    });
  }

  test('a 2025-06-18 client completes the initialize handshake and lists tools', async () => {
    const initialize = await rpc(
      endpoint,
      {
        jsonrpc: '2.0',
        id: 1,
        method: 'initialize',
        params: {
          protocolVersion: '2025-06-18',
          capabilities: {},
          clientInfo: { name: 'raw-2025-06-18', version: '1.0.0' },
        },
      },
      { authorization: `Bearer ${readToken}` },
    );
    assert.equal(initialize.status, 200);
    const init = await rpcResult(initialize);
    assert.equal((init.result as { protocolVersion: string }).protocolVersion, '2025-06-18');
    const initialized = await rpc(
      endpoint,
      { jsonrpc: '2.0', method: 'notifications/initialized' },
      { authorization: `Bearer ${readToken}`, 'mcp-protocol-version': '2025-06-18' },
    );
    assert.equal(initialized.status, 202);
    const list = await rpc(
      endpoint,
      { jsonrpc: '2.0', id: 2, method: 'tools/list' },
      { authorization: `Bearer ${readToken}`, 'mcp-protocol-version': '2025-06-18' },
    );
    assert.equal(list.status, 200);
    const tools = ((await rpcResult(list)).result as { tools: Array<{ name: string }> }).tools;
    assert.equal(tools.length, 4);
  });

  test('place_order with stocks:trade reaches the API with a JSON body', async () => {
    const { client, transport } = sdkClient(endpoint, tradeToken, 'modern');
    await client.connect(transport);
    const result = await client.callTool({
      name: 'place_order',
      arguments: { symbol: 'ACME', side: 'buy', quantity: 3 },
    });
    await client.close();
    assert.equal(result.isError, undefined, textOf(result));
    const hit = upstream.hits.at(-1)!;
    assert.equal(hit.method, 'POST');
    assert.equal(hit.url, '/stocks/orders');
    assert.deepEqual(JSON.parse(hit.body), { symbol: 'ACME', side: 'buy', quantity: 3 });
    // Least privilege per call: the token carries what place_order needs, not stocks.read too, and
    // names the tool.
    const exchanged = decodeJwt(hit.authorization!.slice(7));
    assert.equal(exchanged.scope, 'stocks.trade');
    assert.equal(exchanged.mcp_tool, 'place_order');
    assert.equal(exchanged.mcp_tools, undefined, 'the list of tools stays with the MCP server');
  });

  test('exchanged tokens are cached: two calls, one exchange at the authorization server', async () => {
    // Its own client and grant: exchanged tokens are cached per grant, token expiry and scopes, so
    // another token of a grant already used here (same expiry second) would share its entry.
    const token = await phantomToken(as, await registerAgent(as.issuer), 'stocks:read customers:read');
    const exchangesAt = () =>
      as.audit('token.exchange').filter((record) => record.outcome === 'success').length;
    const before = exchangesAt();
    const { client, transport } = sdkClient(endpoint, token, 'modern');
    await client.connect(transport);
    await client.callTool({ name: 'get_stock', arguments: { symbol: 'ONE' } });
    await client.callTool({ name: 'get_stock', arguments: { symbol: 'TWO' } });
    // Another API is another audience: one more exchange.
    await client.callTool({ name: 'get_my_customer_record', arguments: {} });
    await client.close();
    assert.equal(exchangesAt() - before, 2);
    const [one, two] = upstream.hits.slice(-3);
    assert.equal(one!.authorization, two!.authorization);
  });

  test('invalid arguments are refused by the schema, before any upstream call', async () => {
    const hitsBefore = upstream.hits.length;
    const { client, transport } = sdkClient(endpoint, readToken, 'modern');
    await client.connect(transport);
    const outcome = await client
      .callTool({ name: 'get_stock', arguments: { symbol: '../../admin' } })
      .then((result) => ({ result }))
      .catch((error: unknown) => ({ error }));
    await client.close();
    if ('result' in outcome) {
      assert.equal(outcome.result.isError, true);
      assert.match(textOf(outcome.result), /Input validation error/);
    } else {
      assert.match(String((outcome.error as Error).message), /Input validation error|Invalid/);
    }
    assert.equal(upstream.hits.length, hitsBefore);
  });

  describe('upstream failures become tool errors with a clear message', () => {
    const cases: Array<[string, string, RegExp]> = [
      ['a 500', 'BROKEN', /The stocks API failed \(HTTP 500\)\. Try again later/],
      ['a timeout', 'SLOW', new RegExp(`did not answer within ${UPSTREAM_TIMEOUT_MS} ms`)],
      ['a 404', 'MISSING', /found nothing there \(HTTP 404\): no stock MISSING/],
    ];
    for (const [name, symbol, message] of cases) {
      test(name, async () => {
        const { client, transport } = sdkClient(endpoint, readToken, 'modern');
        await client.connect(transport);
        const result = await client.callTool({ name: 'get_stock', arguments: { symbol } });
        await client.close();
        assert.equal(result.isError, true);
        const text = textOf(result);
        assert.match(text, message);
        assert.doesNotMatch(text, /stack|secret\.js|at .*:\d+/);
      });
    }
  });

  test('malformed JSON-RPC gets JSON-RPC errors, not stack traces', async () => {
    const parse = await rpc(endpoint, '{"jsonrpc": "2.0", "id": 1, "method": ', {
      authorization: `Bearer ${readToken}`,
    });
    assert.ok(parse.status >= 400 && parse.status < 500, String(parse.status));
    const parseBody = (await parse.json()) as { error: { code: number } };
    assert.equal(parseBody.error.code, -32700);
    const invalid = await rpc(
      endpoint,
      { jsonrpc: '2.0', id: 2, nomethod: true },
      {
        authorization: `Bearer ${readToken}`,
      },
    );
    assert.ok(invalid.status >= 400 && invalid.status < 500, String(invalid.status));
    const invalidBody = (await invalid.json()) as { error: { code: number; message: string } };
    assert.equal(invalidBody.error.code, -32600);
    assert.doesNotMatch(invalidBody.error.message, /at .*:\d+/);
  });

  test('a JSON-RPC batch is refused with one JSON-RPC error, and nothing in it runs (defect 5)', async () => {
    const hitsBefore = upstream.hits.length;
    const call = (id: number) => ({
      jsonrpc: '2.0',
      id,
      method: 'tools/call',
      params: { name: 'get_stock', arguments: { symbol: 'ACME' } },
    });
    for (const batch of [Array.from({ length: 20 }, (_, i) => call(i + 1)), [call(1)], []]) {
      const response = await rpc(endpoint, batch, {
        authorization: `Bearer ${readToken}`,
        'mcp-protocol-version': '2025-06-18',
      });
      assert.equal(response.status, 400);
      const body = (await response.json()) as { id: unknown; error: { code: number; message: string } };
      assert.equal(body.id, null);
      assert.equal(body.error.code, -32600);
      assert.match(body.error.message, /batches are not supported/);
    }
    assert.equal(upstream.hits.length, hitsBefore, 'no API call was made');
  });

  test('one audit line per tool call: subject, client, tool, upstream status, duration; no token', () => {
    const records = logs
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .filter((record) => record.message === 'audit' && record.event === 'mcp.tool_call');
    const success = records.find((record) => record.tool === 'get_stock' && record.outcome === 'success');
    assert.ok(success);
    assert.equal(success.sub, decodeJwt(readToken).sub);
    assert.equal(success.client_id, agentId);
    assert.equal(success.api, 'stocks');
    assert.equal(success.upstream_status, 200);
    assert.equal(typeof success.duration_ms, 'number');
    const failed = records.find((record) => record.tool === 'get_stock' && record.upstream_status === 500);
    assert.equal(failed?.outcome, 'failure');
    const denied = records.find((record) => record.tool === 'place_order' && record.outcome === 'denied');
    assert.equal(denied?.reason, 'insufficient_scope');
    const all = logs.join('\n');
    for (const token of [readToken, tradeToken]) {
      assert.ok(!all.includes(token), 'a subject token is in the log');
    }
    for (const hit of upstream.hits) {
      const sent = hit.authorization?.slice(7);
      if (sent) assert.ok(!all.includes(sent), 'an exchanged token is in the log');
    }
    const secret = readFileSync(path.join(as.dataDir, `secrets/${MCP_SERVER_CLIENT}.secret`), 'utf8').trim();
    assert.ok(!all.includes(secret));
  });
});
