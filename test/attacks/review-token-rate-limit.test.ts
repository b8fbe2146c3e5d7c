/**
 * Review of issue 7 (defect 11, per-client limits at the token endpoint): whoever shares a source
 * address with the MCP server or a workload can still use up the limits those clients depend on,
 * found by an outside review against real servers, and fixed: a request with a credential is never
 * refused for its address, and failed authentications lock no client out (http/token-rate-limit.ts).
 *
 * - Failed client authentications count per (address, claimed client_id), and that count is checked
 *   before the request authenticates: 600 wrong secrets for `gatehouse-mcp-server` from its address
 *   lock the real MCP server out of token exchange, so every tool call of every user fails.
 * - A `private_key_jwt` request has no Basic header, so it is first counted against its address:
 *   600 unauthenticated requests from that address keep a workload from getting any token.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { postForm } from '../helpers/oauth.ts';
import { startTestStack, type TestStack } from '../helpers/stack.ts';
import { JWT_BEARER, workloadAssertion } from '../helpers/workload.ts';

/** The stack's authorization server as the MCP server and the workload reach it: 127.0.0.1. */
const tokenUrl = (stack: TestStack) => `http://127.0.0.1:${new URL(stack.issuer).port}/token`;

function workloadTokenRequest(stack: TestStack) {
  return workloadAssertion(stack).then((assertion) =>
    postForm(tokenUrl(stack), {
      grant_type: 'client_credentials',
      client_assertion_type: JWT_BEARER,
      client_assertion: assertion,
      scope: 'stocks:read',
      resource: stack.mcpUrl,
    }),
  );
}

/** `list_stocks` through the gateway: the tool result, or why there is none. */
async function listStocks(stack: TestStack, token: string): Promise<{ isError: boolean; text: string }> {
  const response = await fetch(`${stack.gatewayUrl}/mcp`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': '2025-11-25',
      authorization: `Bearer ${token}`,
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'tools/call',
      params: { name: 'list_stocks', arguments: {} },
    }),
  });
  assert.equal(response.status, 200);
  const body = await response.text();
  const data = body
    .split('\n')
    .filter((line) => line.startsWith('data: '))
    .map((line) => JSON.parse(line.slice(6)) as { result?: { isError?: boolean; content?: unknown } });
  const result = (data[0] ?? (JSON.parse(body) as (typeof data)[0]))?.result;
  return { isError: result?.isError === true, text: JSON.stringify(result?.content ?? null) };
}

async function burst(count: number, send: () => Promise<Response>): Promise<Record<number, number>> {
  const statuses: Record<number, number> = {};
  for (let i = 0; i < count; i += 1) {
    const response = await send();
    await response.text();
    statuses[response.status] = (statuses[response.status] ?? 0) + 1;
  }
  return statuses;
}

describe("the token endpoint's limits, from an address shared with internal clients", () => {
  let stack: TestStack;
  before(async () => {
    stack = await startTestStack();
  });
  after(() => stack.close());

  test('wrong secrets sent for the MCP server do not lock the real MCP server out', {}, async () => {
    const first = await workloadTokenRequest(stack);
    assert.equal(first.status, 200, first.text);
    const before = await listStocks(stack, String(first.json.access_token));
    assert.equal(before.isError, false, `tool calls work before the attack: ${before.text}`);

    const wrong = `Basic ${Buffer.from('gatehouse-mcp-server:not-the-secret').toString('base64')}`;
    const statuses = await burst(601, () =>
      fetch(tokenUrl(stack), {
        method: 'POST',
        headers: { authorization: wrong, 'content-type': 'application/x-www-form-urlencoded' },
        body: 'grant_type=client_credentials',
      }),
    );
    // Each is refused for its wrong secret, none for the client's sake (no lockout to trigger).
    assert.deepEqual(statuses, { 401: 601 });

    // A new token, so the MCP server must exchange again (its cache is keyed by the token's expiry).
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const second = await workloadTokenRequest(stack);
    assert.equal(second.status, 200, second.text);
    const afterAttack = await listStocks(stack, String(second.json.access_token));
    assert.equal(afterAttack.isError, false, `the MCP server still exchanges tokens: ${afterAttack.text}`);
  });

  test("unauthenticated requests from a workload's address do not keep it from getting tokens", {}, async () => {
    const statuses = await burst(600, () =>
      fetch(tokenUrl(stack), {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: 'grant_type=client_credentials&client_id=nobody',
      }),
    );
    // Refused for what they are, and past the address's budget (the wrong secrets of the test
    // before count against it too) with 429: either way no token, and no server error.
    for (const status of Object.keys(statuses).map(Number))
      assert.ok([400, 401, 429].includes(status), JSON.stringify(statuses));
    const response = await workloadTokenRequest(stack);
    assert.equal(response.status, 200, `the workload authenticates with its own key: ${response.text}`);
  });
});
