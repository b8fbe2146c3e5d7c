/**
 * The protected side end to end: an agent's opaque token goes through the real gateway, the real MCP
 * server and a real token exchange to the real APIs, with a real authorization server behind it all.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { decodeJwt } from 'jose';
import { authorize, basic, postForm, redeemCode, toolHeader } from '../helpers/oauth.ts';
import { startTestStack, type TestStack } from '../helpers/stack.ts';

const REDIRECT = 'http://127.0.0.1/callback';

async function register(issuer: string) {
  const response = await fetch(`${issuer}/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      client_name: 'Chain agent',
      redirect_uris: [REDIRECT],
      application_type: 'native',
    }),
  });
  return String(((await response.json()) as { client_id: string }).client_id);
}

/** An agent's opaque access token for the MCP server, for a user and scope. */
async function agentToken(stack: TestStack, clientId: string, scope: string, email = 'alice@example.com') {
  const result = await authorize({
    issuer: stack.issuer,
    clientId,
    redirectUri: REDIRECT,
    scope,
    email,
    resource: stack.mcpUrl,
  });
  const token = await redeemCode(stack.issuer, {
    code: result.callback.searchParams.get('code')!,
    verifier: result.verifier,
    redirectUri: REDIRECT,
    clientId,
    resource: stack.mcpUrl,
  });
  assert.equal(token.status, 200, token.text);
  return String(token.json.access_token);
}

function mcpClient(url: string, token: string, era: '2026-07-28' | '2025-11-25') {
  const transport = new StreamableHTTPClientTransport(new URL(url), {
    requestInit: { headers: { authorization: `Bearer ${token}` } },
  });
  const client = new Client(
    { name: 'chain-test', version: '1.0.0' },
    era === '2026-07-28'
      ? { versionNegotiation: { mode: { pin: '2026-07-28' } } }
      : { supportedProtocolVersions: ['2025-11-25'] },
  );
  return { client, transport };
}

const textOf = (result: { content?: unknown }) =>
  ((result.content as Array<{ type: string; text?: string }>) ?? []).map((c) => c.text ?? '').join('');

function rpc(url: string, token: string | undefined, method: string, params: Record<string, unknown> = {}) {
  return fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': '2025-11-25',
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
  });
}

const secret = (stack: TestStack, client: string) =>
  readFileSync(path.join(stack.dataDir, `secrets/${client}.secret`), 'utf8').trim();

describe('the protected side, end to end', () => {
  let stack: TestStack;
  let clientId: string;
  let readToken: string;
  before(async () => {
    stack = await startTestStack({ gateway: { introspectionCache: { maxSeconds: 1, maxEntries: 1000 } } });
    clientId = await register(stack.issuer);
    readToken = await agentToken(stack, clientId, 'stocks:read customers:read');
  });
  after(() => stack.close());

  for (const era of ['2026-07-28', '2025-11-25'] as const) {
    test(`a ${era} client lists and calls tools through the gateway`, async () => {
      const { client, transport } = mcpClient(stack.mcpUrl, readToken, era);
      await client.connect(transport);
      assert.equal(client.getNegotiatedProtocolVersion(), era);
      const { tools } = await client.listTools();
      assert.ok(tools.some((tool) => tool.name === 'place_order'));
      const list = await client.callTool({ name: 'list_stocks', arguments: {} });
      assert.notEqual(list.isError, true, textOf(list));
      const symbols = (JSON.parse(textOf(list)) as { stocks: Array<{ symbol: string; region: string }> })
        .stocks;
      assert.ok(symbols.length > 0);
      assert.ok(
        symbols.every((stock) => stock.region === 'eu'),
        'alice is in the eu region: the API filtered by her claim',
      );
      const me = await client.callTool({ name: 'get_my_customer_record', arguments: {} });
      assert.match(textOf(me), /alice@example\.com/);
      await client.close();
    });
  }

  test('the API is called with an exchanged token for its own audience, never the agent token', async () => {
    const exchangesBefore = stack.audit('token.exchange').filter((r) => r.outcome === 'success').length;
    const { client, transport } = mcpClient(stack.mcpUrl, readToken, '2026-07-28');
    await client.connect(transport);
    const result = await client.callTool({ name: 'get_stock', arguments: { symbol: 'SAP' } });
    await client.close();
    assert.notEqual(result.isError, true, textOf(result));
    const exchanges = stack.audit('token.exchange').filter((r) => r.outcome === 'success');
    assert.ok(exchanges.length >= exchangesBefore, 'exchanges are audited');
    assert.ok(
      exchanges.some(
        (r) => r.audience === `${stack.gatewayUrl}/api/stocks` && r.actor === 'gatehouse-mcp-server',
      ),
    );
    // The agent's opaque token, sent straight to the API, is refused: the 200 above was not it.
    const direct = await fetch(`${stack.apisUrl}/stocks`, {
      headers: { authorization: `Bearer ${readToken}` },
    });
    assert.equal(direct.status, 401);
    assert.match(direct.headers.get('www-authenticate')!, /error="invalid_token"/);
    assert.ok(!stack.logs.some((line) => line.includes(readToken)), 'no token in any log line');
  });

  test('an agent token at an API through the gateway is refused: its phantom token is for the MCP server', async () => {
    const response = await fetch(`${stack.gatewayUrl}/api/stocks`, {
      headers: { authorization: `Bearer ${readToken}` },
    });
    assert.equal(response.status, 401);
    assert.match(response.headers.get('www-authenticate')!, /invalid_token/);
  });

  test('an API token at the MCP server is refused', async () => {
    const exchanged = await postForm(
      `${stack.issuer}/token`,
      {
        grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
        subject_token: readToken,
        subject_token_type: 'urn:ietf:params:oauth:token-type:access_token',
        audience: `${stack.gatewayUrl}/api/stocks`,
      },
      {
        authorization: basic('gatehouse-mcp-server', secret(stack, 'gatehouse-mcp-server')),
        ...toolHeader('stocks'),
      },
    );
    assert.equal(exchanged.status, 200, exchanged.text);
    const apiToken = String(exchanged.json.access_token);
    assert.equal(
      decodeJwt(apiToken).grant_id,
      undefined,
      'the grant reference never leaves the phantom token',
    );
    // Through the gateway: a JWT bearer is never trusted there, so the MCP server sees no token.
    const viaGateway = await rpc(stack.mcpUrl, apiToken, 'tools/list');
    assert.equal(viaGateway.status, 401);
    assert.doesNotMatch(viaGateway.headers.get('www-authenticate')!, /error=/);
    // Straight at the MCP server: the audience is wrong.
    const direct = await rpc(`${stack.mcpServerUrl}/mcp`, apiToken, 'tools/list');
    assert.equal(direct.status, 401);
    assert.match(direct.headers.get('www-authenticate')!, /error="invalid_token"/);
  });

  test('no token: 401 with the resource metadata and base scope, and the metadata is reachable through the gateway', async () => {
    const response = await rpc(stack.mcpUrl, undefined, 'tools/list');
    assert.equal(response.status, 401);
    const challenge = response.headers.get('www-authenticate')!;
    const metadataUrl = /resource_metadata="([^"]+)"/.exec(challenge)![1]!;
    assert.equal(metadataUrl, `${stack.gatewayUrl}/.well-known/oauth-protected-resource/mcp`);
    assert.match(challenge, /scope="stocks:read customers:read"/);
    const metadata = (await (await fetch(metadataUrl)).json()) as Record<string, unknown>;
    assert.equal(metadata.resource, stack.mcpUrl);
    assert.deepEqual(metadata.authorization_servers, [stack.issuer]);
  });

  test('a tool needing more scope gets 403 insufficient_scope before any upstream call, and works after step-up', async () => {
    const ordersBefore = stack.logs.filter((line) => line.includes('"stocks.order"')).length;
    const denied = await rpc(stack.mcpUrl, readToken, 'tools/call', {
      name: 'place_order',
      arguments: { symbol: 'SAP', side: 'buy', quantity: 1 },
    });
    assert.equal(denied.status, 403);
    const challenge = denied.headers.get('www-authenticate')!;
    assert.match(challenge, /error="insufficient_scope"/);
    assert.match(challenge, /scope="[^"]*stocks:trade/);
    assert.equal(
      stack.logs.filter((line) => line.includes('"stocks.order"')).length,
      ordersBefore,
      'the API was not called',
    );
    // Step-up: the union of scopes, consent only for the new one.
    const tradeToken = await agentToken(stack, clientId, 'stocks:read customers:read stocks:trade');
    const { client, transport } = mcpClient(stack.mcpUrl, tradeToken, '2026-07-28');
    await client.connect(transport);
    const placed = await client.callTool({
      name: 'place_order',
      arguments: { symbol: 'SAP', side: 'buy', quantity: 3 },
    });
    await client.close();
    assert.notEqual(placed.isError, true, textOf(placed));
    const order = JSON.parse(textOf(placed)) as {
      status: string;
      client: string;
      actor: string;
      quantity: number;
    };
    assert.equal(order.status, 'accepted');
    assert.equal(order.client, clientId);
    assert.equal(order.actor, 'gatehouse-mcp-server');
    assert.equal(order.quantity, 3);
    assert.equal(
      stack.logs.filter((line) => line.includes('"stocks.order"')).length,
      ordersBefore + 1,
      'the API audited the order',
    );
  });

  test('a revoked token stops working once the gateway cache entry lapses', async () => {
    const token = await agentToken(stack, clientId, 'stocks:read');
    assert.equal((await rpc(stack.mcpUrl, token, 'tools/list')).status, 200);
    const revoked = await postForm(`${stack.issuer}/revoke`, { token, client_id: clientId });
    assert.equal(revoked.status, 200);
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const after = await rpc(stack.mcpUrl, token, 'tools/list');
    assert.equal(after.status, 401);
    // RFC 6750 §3.1: a token was presented and is not valid.
    assert.match(after.headers.get('www-authenticate')!, /^Bearer error="invalid_token", resource_metadata=/);
  });
});

describe('when the authorization server is down', () => {
  test('the gateway answers 503 with Retry-After and lets nothing through', async () => {
    const stack = await startTestStack();
    try {
      const clientId = await register(stack.issuer);
      const token = await agentToken(stack, clientId, 'stocks:read');
      await stack.running.authorizationServer.close();
      const response = await rpc(stack.mcpUrl, token, 'tools/call', { name: 'list_stocks', arguments: {} });
      assert.equal(response.status, 503);
      assert.ok(Number(response.headers.get('retry-after')) > 0);
      assert.ok(
        !stack.logs.some((line) => line.includes('"mcp.tool_call"')),
        'the MCP server never saw the call',
      );
    } finally {
      await stack.running.mcpServer.close();
      await stack.running.apis.close();
      await stack.running.gateway.close();
    }
  });
});

describe('revocation at once', () => {
  test('a revoked token stops within a second everywhere: tools/list, tool calls, and its phantom token at the MCP server', async () => {
    const stack = await startTestStack();
    try {
      const clientId = await register(stack.issuer);
      const token = await agentToken(stack, clientId, 'stocks:read customers:read');
      // Warm every cache: the gateway's introspection, the MCP server's verified token and exchange.
      assert.equal((await rpc(stack.mcpUrl, token, 'tools/list')).status, 200);
      const call = await rpc(stack.mcpUrl, token, 'tools/call', {
        name: 'get_stock',
        arguments: { symbol: 'SAP' },
      });
      assert.equal(call.status, 200);
      assert.doesNotMatch(await call.text(), /"isError":true/);
      // The phantom token the gateway forwards, as a replay from inside would carry it.
      const phantom = await postForm(
        `${stack.issuer}/introspect`,
        { token },
        {
          authorization: basic('gatehouse-gateway', secret(stack, 'gatehouse-gateway')),
          accept: 'application/jwt',
        },
      );
      assert.equal(phantom.status, 200);
      assert.equal((await rpc(`${stack.mcpServerUrl}/mcp`, phantom.text, 'tools/list')).status, 200);

      const apiCallsBefore = stack.logs.filter((line) => line.includes('"path":"/stocks/SAP"')).length;
      assert.equal((await postForm(`${stack.issuer}/revoke`, { token, client_id: clientId })).status, 200);
      const revokedAt = Date.now();
      for (;;) {
        const listed = await rpc(stack.mcpUrl, token, 'tools/list');
        if (listed.status === 401) break;
        assert.ok(Date.now() - revokedAt < 1000, 'the gateway still serves the revoked token after 1 s');
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
      const again = await rpc(stack.mcpUrl, token, 'tools/call', {
        name: 'get_stock',
        arguments: { symbol: 'SAP' },
      });
      assert.equal(again.status, 401);
      assert.match(again.headers.get('www-authenticate')!, /^Bearer error="invalid_token"/);
      // Straight at the MCP server, the cached phantom token is refused too: its grant was announced.
      const direct = await rpc(`${stack.mcpServerUrl}/mcp`, phantom.text, 'tools/list');
      assert.equal(direct.status, 401);
      assert.match(direct.headers.get('www-authenticate')!, /revoked/);
      assert.ok(Date.now() - revokedAt < 1500);
      assert.equal(
        stack.logs.filter((line) => line.includes('"path":"/stocks/SAP"')).length,
        apiCallsBefore,
        'the API was not called again',
      );
    } finally {
      await stack.close();
    }
  });
});
