/**
 * One id per agent request through the whole chain (issue 9, audit trail): the gateway makes it,
 * and it appears in the gateway's request line, the MCP server's tool-call audit line, the
 * authorization server's token exchange audit lines and the API's request line.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { registerNativeClient, userToken } from '../helpers/oauth.ts';
import { callGetStock } from '../helpers/revocation.ts';
import { startTestStack, type TestStack } from '../helpers/stack.ts';

const REDIRECT_URI = 'http://127.0.0.1/callback';

describe('a request id from the gateway to the API', () => {
  let stack: TestStack;
  let accessToken: string;
  before(async () => {
    stack = await startTestStack();
    const clientId = await registerNativeClient(stack.issuer, [REDIRECT_URI]);
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

  const lines = () => stack.logs.map((line) => JSON.parse(line) as Record<string, unknown>);

  test('every line of one tool call carries the id the gateway answered with; a client-sent one is not used', async () => {
    // An agent's own id could collide with another's or be made to mislead: replaced.
    const call = await callGetStock(stack.gatewayUrl, accessToken, {
      'x-request-id': 'chosen-by-the-agent-0001',
    });
    assert.equal(call.status, 200);
    await call.text();
    const id = call.headers.get('x-request-id') ?? '';
    assert.match(id, /^[0-9a-f-]{36}$/);
    assert.ok(
      !stack.logs.some((line) => line.includes('chosen-by-the-agent-0001')),
      'the agent-chosen id is nowhere',
    );

    const mine = lines().filter((record) => record.request_id === id);
    const has = (predicate: (record: Record<string, unknown>) => boolean, what: string) =>
      assert.ok(mine.some(predicate), `${what} carries the request id`);
    has(
      (r) => r.message === 'request' && r.upstream === 'mcp-server' && r.status === 200,
      "the gateway's request line",
    );
    has(
      (r) => r.event === 'mcp.tool_call' && r.outcome === 'success' && r.tool === 'get_stock',
      "the MCP server's audit line",
    );
    has(
      (r) => r.event === 'token.exchange' && r.outcome === 'success',
      "the authorization server's exchange audit",
    );
    has(
      (r) => r.event === 'token.issued' && r.grant_type === 'urn:ietf:params:oauth:grant-type:token-exchange',
      'the token issued by the exchange',
    );
    has((r) => r.message === 'request' && r.api === 'stocks' && r.status === 200, "the API's request line");
  });

  test('a refused request names its id too, and two requests never share one', async () => {
    const refused = await fetch(`${stack.gatewayUrl}/mcp`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{}',
    });
    assert.equal(refused.status, 401);
    await refused.text();
    const again = await fetch(`${stack.gatewayUrl}/healthz`);
    await again.text();
    const a = refused.headers.get('x-request-id');
    const b = again.headers.get('x-request-id');
    assert.ok(a && b && a !== b);
    assert.ok(lines().some((r) => r.message === 'request' && r.request_id === a && r.status === 401));
  });

  test('an id sent to the authorization server by anyone but the MCP server is not taken into the audit trail', async () => {
    const forged = 'forged-by-an-agent-0001';
    const response = await fetch(`${stack.issuer}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-request-id': forged },
      body: new URLSearchParams({
        grant_type: 'authorization_code',
        code: 'nope',
        client_id: 'nobody',
      }).toString(),
    });
    assert.ok(response.status >= 400);
    await response.text();
    assert.ok(stack.audit('token.issued').length > 0);
    assert.ok(!stack.logs.some((line) => line.includes(forged)), 'the forged id is in no line');
  });
});
