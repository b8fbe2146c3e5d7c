/**
 * Approval of the operation itself (issue 13), through the whole stack: `place_order` with
 * `approval: required`. A call does not run at once: it answers with the approval page at the
 * authorization server; the signed-in user approves (or denies) that exact call there; the agent's
 * retry runs it once, with an exchanged token bound to it (RFC 9396 `authorization_details`) that the
 * API checks against the order it receives. This agent declares no elicitation, so it gets the link
 * in the tool result, as the issue asks of such clients.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { parseConfig } from '../../src/shared/config/load.ts';
import { argumentsDigest } from '../../src/shared/operation-approval.ts';
import {
  authorize,
  Browser,
  basic,
  csrfOf,
  pageText,
  postForm,
  redeemCode,
  registerNativeClient,
} from '../helpers/oauth.ts';
import { internalSecret, phantomFor } from '../helpers/revocation.ts';
import { startTestStack, type TestStack } from '../helpers/stack.ts';

const REDIRECT = 'http://127.0.0.1:9/callback';
const TTL_SECONDS = 5;
const EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const JWT_TYPE = 'urn:ietf:params:oauth:token-type:jwt';

interface ToolResult {
  isError?: boolean;
  content?: Array<{ type: string; text?: string }>;
  _meta?: Record<string, unknown>;
}
const textOf = (result: ToolResult) => (result.content ?? []).map((c) => c.text ?? '').join('');
const approvalUrlOf = (result: ToolResult) =>
  (result._meta?.['gatehouse/approval'] as { url?: string } | undefined)?.url;

describe('approval of the operation itself', () => {
  let stack: TestStack;
  let token: string;
  let clientId: string;
  const alice = new Browser();
  const bob = new Browser();

  before(async () => {
    const tools = parseConfig({}).mcpServer.tools.map((tool) =>
      tool.name === 'place_order' ? { ...tool, approval: 'required' } : tool,
    );
    stack = await startTestStack({
      mcpServer: { tools },
      authorizationServer: { operationApprovals: { ttlSeconds: TTL_SECONDS } },
    });
    clientId = await registerNativeClient(stack.issuer, [REDIRECT], { client_name: 'Trading agent' });
    const signedIn = await authorize({
      issuer: stack.issuer,
      clientId,
      redirectUri: REDIRECT,
      scope: 'stocks:read customers:read stocks:trade',
      resource: stack.mcpUrl,
      email: 'alice@example.com',
      browser: alice,
    });
    const redeemed = await redeemCode(stack.issuer, {
      code: signedIn.callback.searchParams.get('code') ?? '',
      verifier: signedIn.verifier,
      redirectUri: REDIRECT,
      clientId,
      resource: stack.mcpUrl,
    });
    assert.equal(redeemed.status, 200, redeemed.text);
    token = String(redeemed.json.access_token);
    // Bob signs in to his own account page, in his own browser.
    await authorize({
      issuer: stack.issuer,
      clientId: await registerNativeClient(stack.issuer, [REDIRECT]),
      redirectUri: REDIRECT,
      scope: 'stocks:read',
      resource: stack.mcpUrl,
      email: 'bob@example.com',
      browser: bob,
    });
  });
  after(async () => {
    await stack?.close();
  });

  async function placeOrder(args: Record<string, unknown>): Promise<ToolResult> {
    const transport = new StreamableHTTPClientTransport(new URL(stack.mcpUrl), {
      requestInit: { headers: { authorization: `Bearer ${token}` } },
    });
    const client = new Client(
      { name: 'approval-test', version: '1.0.0' },
      { versionNegotiation: { mode: { pin: '2026-07-28' } } },
    );
    await client.connect(transport);
    try {
      return (await client.callTool({ name: 'place_order', arguments: args })) as ToolResult;
    } finally {
      await client.close();
    }
  }

  /** The stocks API's accepted orders, from its audit lines. */
  const orders = () =>
    stack.logs
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .filter((record) => record.event === 'stocks.order' && record.outcome === 'success');

  /** The person at the browser decides on the approval page (following the sign-in if needed). */
  async function decide(browser: Browser, url: string, decision: 'approve' | 'deny') {
    let page = await browser.request(url);
    for (let hop = 0; hop < 6 && page.location; hop += 1) page = await browser.request(page.location);
    assert.equal(page.status, 200, pageText(page.text).slice(0, 300));
    const answer = await browser.request(url, { form: { csrf: csrfOf(page.text), decision } });
    return { page, answer };
  }

  test('the call does not run: it answers with the approval page, and nothing reaches the API', async () => {
    const before = orders().length;
    const result = await placeOrder({ symbol: 'SAP', side: 'buy', quantity: 3 });
    assert.equal(result.isError, true);
    const url = approvalUrlOf(result);
    assert.ok(url?.startsWith(`${stack.issuer}/account/approvals/ap_`), JSON.stringify(result));
    assert.match(textOf(result), /needs the user's approval before it runs, and has not run/);
    assert.ok(textOf(result).includes(url!), 'the model can tell the person where');
    assert.equal(orders().length, before);
    assert.equal(stack.audit('approval.requested').at(-1)?.outcome, 'success');
  });

  test('the same call asked again is the same approval, not a new one', async () => {
    const first = approvalUrlOf(await placeOrder({ symbol: 'SAP', side: 'buy', quantity: 3 }));
    const again = approvalUrlOf(await placeOrder({ quantity: 3, side: 'buy', symbol: 'SAP' }));
    assert.equal(again, first, 'the order of the arguments does not matter');
  });

  test('the page shows the operation, the agent and the trust signals, and cannot be framed', async () => {
    const url = approvalUrlOf(await placeOrder({ symbol: 'SAP', side: 'buy', quantity: 3 }))!;
    let page = await alice.request(url);
    for (let hop = 0; hop < 6 && page.location; hop += 1) page = await alice.request(page.location);
    assert.equal(page.status, 200);
    const text = pageText(page.text);
    assert.match(text, /Approve this operation\?/);
    assert.match(
      text,
      /Trading agent Unverified wants to run Place a stock order \( place_order \) for you, once/,
    );
    assert.match(text, /could not verify who publishes this application/);
    assert.match(text, /Amount: 3 \(quantity\)/);
    assert.match(text, /symbol SAP side buy quantity 3/);
    assert.match(text, /Signed in as alice@example\.com/);
    assert.equal(page.headers.get('x-frame-options'), 'DENY');
    assert.match(page.headers.get('content-security-policy') ?? '', /frame-ancestors 'none'/);
    assert.equal(page.headers.get('cache-control'), 'no-store');
  });

  test('another user opening the page learns nothing and cannot decide', async () => {
    const url = approvalUrlOf(await placeOrder({ symbol: 'SAP', side: 'buy', quantity: 3 }))!;
    let page = await bob.request(url);
    for (let hop = 0; hop < 6 && page.location; hop += 1) page = await bob.request(page.location);
    assert.equal(page.status, 404);
    assert.doesNotMatch(pageText(page.text), /SAP|alice/);
    const forced = await bob.request(url, { form: { csrf: csrfOf(page.text), decision: 'approve' } });
    assert.equal(forced.status, 404);
    assert.equal(stack.audit('approval.decided').at(-1)?.reason, 'another user');
    assert.equal(
      (await placeOrder({ symbol: 'SAP', side: 'buy', quantity: 3 })).isError,
      true,
      'still waiting',
    );
  });

  test('a decision without the form token of this approval is refused', async () => {
    const url = approvalUrlOf(await placeOrder({ symbol: 'SAP', side: 'buy', quantity: 3 }))!;
    const forged = await alice.request(url, { form: { csrf: 'forged', decision: 'approve' } });
    assert.equal(forged.status, 403);
    // The right token from another site (the Origin is checked, not only the token).
    let page = await alice.request(url);
    for (let hop = 0; hop < 6 && page.location; hop += 1) page = await alice.request(page.location);
    const crossSite = await alice.request(url, {
      form: { csrf: csrfOf(page.text), decision: 'approve' },
      headers: { origin: 'https://evil.example' },
    });
    assert.equal(crossSite.status, 403);
    assert.equal(
      (await placeOrder({ symbol: 'SAP', side: 'buy', quantity: 3 })).isError,
      true,
      'not approved',
    );
  });

  test('approved: the retry runs the order once, with a token bound to the approval', async () => {
    const args = { symbol: 'SAP', side: 'buy', quantity: 3 };
    const url = approvalUrlOf(await placeOrder(args))!;
    const { answer } = await decide(alice, url, 'approve');
    assert.equal(answer.status, 200);
    assert.match(pageText(answer.text), /Approved/);
    const before = orders().length;
    const result = await placeOrder(args);
    assert.notEqual(result.isError, true, textOf(result));
    assert.match(textOf(result), /"status":\s*"accepted"/);
    assert.equal(orders().length, before + 1);
    const approvalId = url.split('/').at(-1);
    // The trail joins approval → token exchange → tool call → the order at the API.
    assert.equal(stack.audit('approval.decided').at(-1)?.approval_id, approvalId);
    assert.ok(
      stack.audit('token.exchange').some((r) => r.outcome === 'success' && r.approval_id === approvalId),
    );
    assert.ok(
      stack.audit('mcp.tool_call').some((r) => r.outcome === 'success' && r.approval_id === approvalId),
    );
    assert.equal(orders().at(-1)?.approval_id, approvalId);
    assert.equal(
      orders().at(-1)?.approved_amount,
      3,
      'the amount the approval named (amountArgument: quantity)',
    );

    // A replay of the approved call: the approval was used; it asks again and runs nothing.
    const replay = await placeOrder(args);
    assert.equal(replay.isError, true);
    assert.notEqual(approvalUrlOf(replay), url, 'a new approval is needed');
    assert.match(
      textOf(replay),
      /an identical place_order call already ran at/,
      'and the model is told it ran',
    );
    let again = await alice.request(approvalUrlOf(replay)!);
    for (let hop = 0; hop < 6 && again.location; hop += 1) again = await alice.request(again.location);
    assert.match(pageText(again.text), /already ran at .* Approve only if you want it to run a second time/);
    assert.equal(orders().length, before + 1);
  });

  test('changed arguments after approval are refused until approved themselves', async () => {
    const url = approvalUrlOf(await placeOrder({ symbol: 'ASML', side: 'buy', quantity: 1 }))!;
    await decide(alice, url, 'approve');
    const before = orders().length;
    const changed = await placeOrder({ symbol: 'ASML', side: 'buy', quantity: 100 });
    assert.equal(changed.isError, true);
    assert.notEqual(approvalUrlOf(changed), url);
    assert.equal(orders().length, before, 'nothing ran');
    const approved = await placeOrder({ symbol: 'ASML', side: 'buy', quantity: 1 });
    assert.notEqual(approved.isError, true, textOf(approved));
    assert.equal(orders().length, before + 1);
  });

  test('denied: nothing is sent to the API, and the agent is told', async () => {
    const args = { symbol: 'NESN', side: 'sell', quantity: 2 };
    const url = approvalUrlOf(await placeOrder(args))!;
    const { answer } = await decide(alice, url, 'deny');
    assert.match(pageText(answer.text), /Denied/);
    const before = orders().length;
    const result = await placeOrder(args);
    assert.equal(result.isError, true);
    assert.match(textOf(result), /The user denied this place_order call\. It was not run/);
    assert.equal(orders().length, before);
    const decided = await alice.request(url);
    assert.equal(decided.status, 409, 'a decision is final');
  });

  test('an expired approval is refused: on the page, and for a retry after approving too late', async () => {
    const args = { symbol: 'SAP', side: 'sell', quantity: 1 };
    const url = approvalUrlOf(await placeOrder(args))!;
    const approveLater = approvalUrlOf(await placeOrder({ ...args, quantity: 2 }))!;
    await decide(alice, approveLater, 'approve');
    await new Promise((resolve) => setTimeout(resolve, TTL_SECONDS * 1000 + 500));
    const page = await alice.request(url);
    assert.equal(page.status, 410);
    assert.match(pageText(page.text), /This approval has expired/);
    const before = orders().length;
    const late = await placeOrder({ ...args, quantity: 2 });
    assert.equal(late.isError, true, 'approved, but not used in time');
    assert.equal(orders().length, before);
  });

  test('the authorization server mints no token for the tool without an approval, whatever is asked', async () => {
    const phantom = await phantomFor(stack, token);
    const exchange = (fields: Record<string, string>) =>
      postForm(
        `${stack.issuer}/token`,
        {
          grant_type: EXCHANGE,
          subject_token: phantom,
          subject_token_type: JWT_TYPE,
          audience: `${stack.gatewayUrl}/api/stocks`,
          ...fields,
        },
        {
          authorization: basic('gatehouse-mcp-server', internalSecret(stack, 'gatehouse-mcp-server')),
          'gatehouse-tool': 'place_order',
        },
      );
    const none = await exchange({});
    assert.equal(none.json.error, 'invalid_authorization_details');
    const made = await exchange({
      resource: `${stack.gatewayUrl}/api/stocks`,
      authorization_details: JSON.stringify([
        { type: 'gatehouse_tool_call', tool: 'place_order', arguments_digest: 'A'.repeat(43) },
      ]),
    });
    assert.equal(made.json.error, 'invalid_authorization_details', 'a digest nobody approved');
    assert.equal(made.json.access_token, undefined);
  });

  /** A client that can send its user to a URL (MCP URL-mode elicitation): `onUrl` plays the user. */
  async function placeOrderEliciting(args: Record<string, unknown>, onUrl: (url: string) => Promise<void>) {
    const asked: string[] = [];
    const client = new Client(
      { name: 'approval-eliciting', version: '1.0.0' },
      { versionNegotiation: { mode: { pin: '2026-07-28' } }, capabilities: { elicitation: { url: {} } } },
    );
    client.setRequestHandler('elicitation/create', async (request) => {
      const params = request.params as { mode?: string; url?: string };
      assert.equal(params.mode, 'url');
      asked.push(params.url!);
      await onUrl(params.url!);
      return { action: 'accept' };
    });
    await client.connect(
      new StreamableHTTPClientTransport(new URL(stack.mcpUrl), {
        requestInit: { headers: { authorization: `Bearer ${token}` } },
      }),
    );
    try {
      return {
        result: (await client.callTool({ name: 'place_order', arguments: args })) as ToolResult,
        asked,
      };
    } finally {
      await client.close();
    }
  }

  test('a client with URL elicitation sends the user to the page, and the call completes after approval', async () => {
    const before = orders().length;
    const { result, asked } = await placeOrderEliciting(
      { symbol: 'SAP', side: 'buy', quantity: 7 },
      async (url) => {
        await decide(alice, url, 'approve');
      },
    );
    assert.equal(asked.length, 1);
    assert.ok(asked[0]!.startsWith(`${stack.issuer}/account/approvals/ap_`));
    assert.notEqual(result.isError, true, textOf(result));
    assert.match(textOf(result), /"quantity":\s*7/);
    assert.equal(orders().length, before + 1);
  });

  test('a client with URL elicitation whose user does not approve gets the link once, not a loop', async () => {
    const before = orders().length;
    const { result, asked } = await placeOrderEliciting(
      { symbol: 'SAP', side: 'buy', quantity: 8 },
      async () => {},
    );
    assert.equal(asked.length, 1, 'asked once');
    assert.equal(result.isError, true);
    assert.ok(approvalUrlOf(result), 'the tool result carries the link');
    assert.equal(orders().length, before);
  });

  test('an approval-bound token places one order at the API, and only the approved one', async () => {
    const args = { symbol: 'SAP', side: 'buy', quantity: 9 };
    await decide(alice, approvalUrlOf(await placeOrder(args))!, 'approve');
    const phantom = await phantomFor(stack, token);
    const stocks = `${stack.gatewayUrl}/api/stocks`;
    const exchanged = await postForm(
      `${stack.issuer}/token`,
      {
        grant_type: EXCHANGE,
        subject_token: phantom,
        subject_token_type: JWT_TYPE,
        audience: stocks,
        resource: stocks,
        authorization_details: JSON.stringify([
          { type: 'gatehouse_tool_call', tool: 'place_order', arguments_digest: argumentsDigest(args) },
        ]),
      },
      {
        authorization: basic('gatehouse-mcp-server', internalSecret(stack, 'gatehouse-mcp-server')),
        'gatehouse-tool': 'place_order',
      },
    );
    assert.equal(exchanged.status, 200, exchanged.text);
    assert.ok(
      Number(exchanged.json.expires_in) <= 60,
      'a token for one approved call lives a minute at most',
    );
    const order = (body: Record<string, unknown>) =>
      fetch(`${stack.apisUrl}/stocks/orders`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${exchanged.json.access_token}`,
          'content-type': 'application/json',
        },
        body: JSON.stringify(body),
      });
    const other = await order({ ...args, quantity: 90 });
    assert.equal(other.status, 403);
    assert.equal(((await other.json()) as { error: string }).error, 'insufficient_authorization_details');
    assert.equal((await order(args)).status, 201);
    const replay = await order(args);
    assert.equal(replay.status, 403, 'the token again: the approval is spent');
    assert.equal(((await replay.json()) as { error: string }).error, 'insufficient_authorization_details');
  });

  test("the person's No at the client stops the call, even after approving on the page", async () => {
    const before = orders().length;
    const client = new Client(
      { name: 'approval-declining', version: '1.0.0' },
      { versionNegotiation: { mode: { pin: '2026-07-28' } }, capabilities: { elicitation: { url: {} } } },
    );
    client.setRequestHandler('elicitation/create', async (request) => {
      await decide(alice, (request.params as { url: string }).url, 'approve');
      return { action: 'decline' };
    });
    await client.connect(
      new StreamableHTTPClientTransport(new URL(stack.mcpUrl), {
        requestInit: { headers: { authorization: `Bearer ${token}` } },
      }),
    );
    try {
      const result = (await client.callTool({
        name: 'place_order',
        arguments: { symbol: 'ASML', side: 'buy', quantity: 5 },
      })) as ToolResult;
      assert.equal(result.isError, true);
      assert.match(textOf(result), /did not confirm/);
    } finally {
      await client.close();
    }
    assert.equal(orders().length, before);
  });

  test('a revoked grant leaves nothing to approve', async () => {
    const url = approvalUrlOf(await placeOrder({ symbol: 'NESN', side: 'buy', quantity: 1 }))!;
    const revoked = await postForm(`${stack.issuer}/revoke`, { token, client_id: clientId });
    assert.equal(revoked.status, 200, revoked.text);
    const page = await alice.request(url);
    assert.equal(page.status, 410);
    assert.match(pageText(page.text), /no longer acts for you/);
  });
});
