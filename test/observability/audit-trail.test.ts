/**
 * The audit trail end to end (issue 9): one tool call through the whole stack is found in the
 * authorization server's trail by its request id, joined to the grant and the consent it rests on;
 * the tool's name is taken from the MCP server only.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { AuditTrail } from '../../src/authorization-server/audit/audit-trail.ts';
import { basic, postForm, registerNativeClient, userToken } from '../helpers/oauth.ts';
import { callGetStock, internalSecret, phantomFor, until } from '../helpers/revocation.ts';
import { startTestStack, type TestStack } from '../helpers/stack.ts';

const REDIRECT_URI = 'http://127.0.0.1/callback';
const EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const JWT_TYPE = 'urn:ietf:params:oauth:token-type:jwt';

async function collect(lines: AsyncIterable<string>): Promise<string[]> {
  const all: string[] = [];
  for await (const line of lines) all.push(line);
  return all;
}

describe('the audit trail of a tool call', () => {
  let stack: TestStack;
  let clientId: string;
  let accessToken: string;
  let trail: AuditTrail;
  let STOCKS: string;
  before(async () => {
    stack = await startTestStack();
    trail = stack.running.authorizationServer.audit;
    STOCKS = `${stack.gatewayUrl}/api/stocks`;
    clientId = await registerNativeClient(stack.issuer, [REDIRECT_URI]);
    const { token } = await userToken({
      issuer: stack.issuer,
      clientId,
      redirectUri: REDIRECT_URI,
      scope: 'stocks:read',
      resource: stack.mcpUrl,
    });
    accessToken = String(token.json.access_token);
  });
  after(() => stack.close());

  test("the request id finds the exchange with its tool, grant, audience and scope; the grant finds the user's consent", async () => {
    const call = await callGetStock(stack.gatewayUrl, accessToken);
    assert.equal(call.status, 200);
    await call.text();
    const requestId = call.headers.get('x-request-id') ?? '';
    assert.ok(requestId);

    const { records } = await trail.search({ requestId });
    const exchange = records.find((r) => r.event === 'token.exchange');
    assert.ok(exchange, 'the token exchange of this request is in the trail');
    assert.equal(exchange.outcome, 'success');
    assert.equal(exchange.tool, 'get_stock');
    assert.equal(exchange.client_id, clientId, "the agent's client, not the MCP server");
    assert.equal(exchange.fields.actor, 'gatehouse-mcp-server');
    assert.equal(exchange.audience, STOCKS);
    assert.equal(exchange.scope, 'stocks.read');
    assert.ok(exchange.sub);
    assert.ok(exchange.grant_id, 'the grant the call rests on');

    const joined = await trail.search({ grantId: exchange.grant_id });
    const consent = joined.records.find((r) => r.event === 'consent');
    assert.ok(consent, 'the consent the tool call rests on');
    assert.equal(consent.outcome, 'success');
    assert.equal(consent.sub, exchange.sub, 'the same user allowed it');
    assert.equal(consent.client_id, clientId, 'the same client was allowed');
    assert.equal(consent.scope, 'stocks:read', 'these scopes');
    assert.ok(Date.parse(consent.at) <= Date.parse(exchange.at), 'before the call');
    assert.ok(joined.records.some((r) => r.event === 'token.issued' && r.client_id === clientId));
    assert.ok(joined.records.some((r) => r.id === exchange.id));

    // Searchable the other ways too, and exported as the same records.
    assert.ok((await trail.search({ tool: 'get_stock', api: STOCKS, sub: exchange.sub })).records.length > 0);
    const lines = await collect(await trail.exportLines({ requestId }));
    assert.deepEqual(
      lines.map((line) => JSON.parse(line)),
      records,
    );
    // Never a token in the trail.
    const everything = (await collect(await trail.exportLines({}))).join('');
    assert.ok(!everything.includes(accessToken), "the agent's token is nowhere in the trail");
  });

  test('every tool call is in the trail, joined to its grant, also when the exchanged token came from the cache', async () => {
    const requestIds: string[] = [];
    for (let call = 0; call < 3; call++) {
      const answer = await callGetStock(stack.gatewayUrl, accessToken);
      assert.equal(answer.status, 200);
      await answer.text();
      requestIds.push(answer.headers.get('x-request-id') ?? '');
    }
    const reported = async () => (await trail.search({ event: 'tool.call', tool: 'get_stock' })).records;
    await until(
      async () => (await reported()).filter((r) => requestIds.includes(r.request_id ?? '')).length === 3,
      'the MCP server reported the three calls',
      5000,
    );
    const calls = (await reported()).filter((r) => requestIds.includes(r.request_id ?? ''));
    const exchanges = (
      await Promise.all(
        requestIds.map(
          async (id) => (await trail.search({ requestId: id, event: 'token.exchange' })).records,
        ),
      )
    ).flat();
    assert.ok(
      exchanges.length < 3,
      `some calls were answered from the exchange cache (${exchanges.length} exchanges)`,
    );
    const grantId = calls[0]!.grant_id;
    assert.ok(grantId);
    for (const call of calls) {
      assert.equal(call.outcome, 'success');
      assert.equal(call.grant_id, grantId);
      assert.equal(call.client_id, clientId);
      assert.equal(call.audience, STOCKS);
      assert.equal(call.fields.actor, 'gatehouse-mcp-server');
      assert.equal(call.fields.upstream_status, 200);
    }
    const joined = (await trail.search({ grantId, event: 'tool.call' })).records;
    assert.ok(
      requestIds.every((id) => joined.some((r) => r.request_id === id)),
      'the grant finds every call',
    );
  });

  test('only the MCP server reports tool calls, and what it sends is checked', async () => {
    const report = (authorization: string, body: unknown, type = 'application/json') =>
      fetch(`${stack.issuer}/events/tool-calls`, {
        method: 'POST',
        headers: { authorization, 'content-type': type },
        body: JSON.stringify(body),
      });
    const record = {
      outcome: 'success',
      tool: 'get_stock',
      sub: 'user_x',
      client_id: 'c',
      grant_id: 'forged',
    };
    const gateway = await report(basic('gatehouse-gateway', internalSecret(stack, 'gatehouse-gateway')), {
      records: [record],
    });
    assert.equal(gateway.status, 401);
    assert.equal((await report('Basic eDp5', { records: [record] })).status, 401);
    const mcp = basic('gatehouse-mcp-server', internalSecret(stack, 'gatehouse-mcp-server'));
    assert.equal((await report(mcp, { nothing: true })).status, 400);
    assert.equal((await report(mcp, { records: [record] }, 'text/plain')).status, 415);
    const mixed = await report(mcp, {
      records: [
        record,
        { ...record, outcome: 'pwned' },
        { ...record, tool: 'a\nb' },
        { ...record, duration_ms: -1 },
      ],
    });
    assert.equal(mixed.status, 200);
    assert.deepEqual(await mixed.json(), { recorded: 1, refused: 3 });
    assert.equal(
      (await trail.search({ grantId: 'forged' })).records[0]?.fields.actor,
      'gatehouse-mcp-server',
    );
  });
  test('a Gatehouse-Tool header is taken from the MCP server only', async () => {
    const phantom = await phantomFor(stack, accessToken);
    const exchangeAs = (client: string, tool: string) =>
      postForm(
        `${stack.issuer}/token`,
        {
          grant_type: EXCHANGE,
          subject_token: phantom,
          subject_token_type: JWT_TYPE,
          audience: STOCKS,
        },
        {
          authorization: basic(client, internalSecret(stack, client)),
          'gatehouse-tool': tool,
        },
      );
    const forged = await exchangeAs('gatehouse-gateway', 'forged_tool');
    assert.ok(forged.status >= 400, 'the gateway may not exchange');
    const fromMcp = await exchangeAs('gatehouse-mcp-server', 'list_stocks');
    assert.equal(fromMcp.status, 200);

    assert.equal((await trail.search({ tool: 'list_stocks', event: 'token.exchange' })).records.length, 1);
    assert.equal((await trail.search({ tool: 'forged_tool' })).records.length, 0);
    assert.ok(
      !(await collect(await trail.exportLines({}))).join('').includes('forged_tool'),
      'nowhere in the trail',
    );
    assert.ok(!stack.logs.some((line) => line.includes('forged_tool')), 'nor in any log line');
  });
});
