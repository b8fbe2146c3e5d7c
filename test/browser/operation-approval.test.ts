/**
 * The approval page in a real browser (headless Chromium, playwright-core): the agent's call of
 * `place_order` (with `approval: required`) answers with a link; the person opens it, signs in with
 * the one-time code, reads the operation and approves; the agent's retry places the order once.
 * Denying in the browser leaves the API untouched. The page runs no script and cannot be framed.
 *
 * Needs Chromium, as the other browser suites (GATEHOUSE_CHROMIUM_PATH, or GATEHOUSE_BROWSER_TESTS=0).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import type { Browser, Page } from 'playwright-core';
import { parseConfig } from '../../src/shared/config/load.ts';
import { launchChromium, SKIP_BROWSER_TESTS } from '../helpers/chromium.ts';
import { type InboxMessage, inbox, registerNativeClient, userToken } from '../helpers/oauth.ts';
import { startTestStack, type TestStack } from '../helpers/stack.ts';

const ACTION_TIMEOUT_MS = 10_000;
const REDIRECT = 'http://127.0.0.1:9/callback';

interface ToolResult {
  isError?: boolean;
  content?: Array<{ text?: string }>;
  _meta?: Record<string, unknown>;
}

async function newCode(issuer: string, email: string, seen: Set<string>): Promise<string> {
  const deadline = Date.now() + ACTION_TIMEOUT_MS;
  while (Date.now() < deadline) {
    const messages = (await inbox(issuer)) as Array<InboxMessage & { id: string }>;
    const code = /\b(\d{6})\b/.exec(messages.find((m) => m.to === email && !seen.has(m.id))?.text ?? '')?.[1];
    if (code) return code;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`no new sign-in code for ${email}`);
}

describe('the approval page in Chromium', { skip: SKIP_BROWSER_TESTS }, () => {
  let stack: TestStack;
  let chromium: Browser;
  let page: Page;
  let token: string;

  before(async () => {
    const tools = parseConfig({}).mcpServer.tools.map((tool) =>
      tool.name === 'place_order' ? { ...tool, approval: 'required' } : tool,
    );
    stack = await startTestStack({ mcpServer: { tools } });
    const clientId = await registerNativeClient(stack.issuer, [REDIRECT], {
      client_name: 'Browser trading agent',
    });
    const { token: issued } = await userToken({
      issuer: stack.issuer,
      clientId,
      redirectUri: REDIRECT,
      scope: 'stocks:read customers:read stocks:trade',
      resource: stack.mcpUrl,
      email: 'alice@example.com',
    });
    token = String(issued.json.access_token);
    chromium = await launchChromium();
    page = await (await chromium.newContext()).newPage();
    page.setDefaultTimeout(ACTION_TIMEOUT_MS);
  });
  after(async () => {
    await chromium?.close();
    await stack?.close();
  });

  async function placeOrder(args: Record<string, unknown>): Promise<ToolResult> {
    const client = new Client({ name: 'browser-approval', version: '1.0.0' });
    await client.connect(
      new StreamableHTTPClientTransport(new URL(stack.mcpUrl), {
        requestInit: { headers: { authorization: `Bearer ${token}` } },
      }),
    );
    try {
      return (await client.callTool({ name: 'place_order', arguments: args })) as ToolResult;
    } finally {
      await client.close();
    }
  }
  const urlOf = (result: ToolResult) =>
    (result._meta?.['gatehouse/approval'] as { url?: string } | undefined)?.url ?? '';
  const orders = () =>
    stack.logs.filter(
      (line) => line.includes('"event":"stocks.order"') && line.includes('"outcome":"success"'),
    ).length;

  test('the person signs in from the link, reads the operation, approves; the retry places the order once', async () => {
    const args = { symbol: 'SAP', side: 'buy', quantity: 4 };
    const asked = await placeOrder(args);
    assert.equal(asked.isError, true);
    const response = await page.goto(urlOf(asked));
    assert.ok(response);
    // Not signed in in this browser: the sign-in comes first, then back to the approval.
    await page.getByRole('heading', { name: 'Sign in', exact: true }).waitFor();
    const seen = new Set(
      ((await inbox(stack.issuer)) as Array<InboxMessage & { id: string }>).map((m) => m.id),
    );
    await page.getByLabel('Email address').fill('alice@example.com');
    await page.getByRole('button', { name: 'Send code' }).click();
    await page.getByLabel('Six-digit code').fill(await newCode(stack.issuer, 'alice@example.com', seen));
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Approve this operation?' }).waitFor();
    const approvalResponse = await page.reload();
    assert.equal(approvalResponse?.headers()['x-frame-options'], 'DENY');
    assert.match(approvalResponse?.headers()['content-security-policy'] ?? '', /frame-ancestors 'none'/);
    // biome-ignore lint/performance/useDomNodeTextContent: the rendered text is what the person reads
    const text = await page.locator('main').innerText();
    assert.match(text, /Browser trading agent/);
    assert.match(text, /Unverified/);
    assert.match(text, /symbol\s+SAP/);
    assert.match(text, /quantity\s+4/);
    const before = orders();
    await page.getByRole('button', { name: 'Approve' }).click();
    await page.getByRole('heading', { name: 'Approved' }).waitFor();
    assert.equal(orders(), before, 'approving runs nothing by itself');
    const placed = await placeOrder(args);
    assert.notEqual(placed.isError, true, JSON.stringify(placed));
    assert.equal(orders(), before + 1);
    assert.equal((await placeOrder(args)).isError, true, 'once');
  });

  test('denying in the browser: nothing reaches the API', async () => {
    const args = { symbol: 'ASML', side: 'sell', quantity: 1 };
    await page.goto(urlOf(await placeOrder(args)));
    await page.getByRole('heading', { name: 'Approve this operation?' }).waitFor();
    await page.getByRole('button', { name: 'Deny' }).click();
    await page.getByRole('heading', { name: 'Denied' }).waitFor();
    const before = orders();
    const result = await placeOrder(args);
    assert.match(result.content?.[0]?.text ?? '', /denied/);
    assert.equal(orders(), before);
  });
});
