/**
 * mcp-remote (pinned in devDependencies), the stdio bridge Claude Desktop and many other hosts use
 * for remote servers, as they run it: a child process speaking MCP on stdio, driven here by the MCP
 * SDK's stdio client, doing the OAuth itself against the whole stack. Its "browser" is the test's
 * user, who opens the authorization URL mcp-remote prints and follows the redirect to mcp-remote's
 * own callback server:
 *
 *   401 → discovery → registration → sign-in → tools/list → a read tool → the write tool → step-up
 *   (mcp-remote signs in again for the missing scope) → success.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { Browser, type PlayedUser, playUser } from '../helpers/oauth.ts';
import { freePort } from '../helpers/ports.ts';
import { startTestStack, type TestStack } from '../helpers/stack.ts';
import { deliverCallback, stocksOf, textOf } from './journey.ts';

const MCP_REMOTE = createRequire(import.meta.url).resolve('mcp-remote/dist/proxy.js');

const AUTHORIZE = /Please authorize this client by visiting:\s+(\S+)/;

describe('mcp-remote, as a stdio server, through the whole stack', () => {
  let stack: TestStack;
  let configDir: string;
  let client: Client;
  let stderr = '';
  const browser = new Browser();
  const plays: PlayedUser[] = [];
  let seen = 0;

  before(async () => {
    stack = await startTestStack();
    configDir = mkdtempSync(path.join(tmpdir(), 'gatehouse-mcp-remote-'));
    const transport = new StdioClientTransport({
      command: process.execPath,
      args: [MCP_REMOTE, stack.mcpUrl, String(await freePort()), '--transport', 'http-only'],
      // Its tokens and registration go to a folder of the test's; no browser can open here.
      env: { ...(process.env as Record<string, string>), MCP_REMOTE_CONFIG_DIR: configDir, BROWSER: 'true' },
      stderr: 'pipe',
    });
    // The person at the browser: each authorization URL mcp-remote prints is played through to
    // its callback, one at a time, in the same browser (so the step-up reuses the session).
    let playing = Promise.resolve();
    transport.stderr?.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      const urls = [...stderr.matchAll(new RegExp(AUTHORIZE, 'g'))].map((match) => match[1]!);
      for (const url of urls.slice(seen)) {
        seen += 1;
        playing = playing.then(async () => {
          const played = await playUser(url, { email: 'alice@example.com', browser });
          plays.push(played);
          await deliverCallback(played.callback);
        });
      }
    });
    client = new Client({ name: 'gatehouse-mcp-remote-journey', version: '1.0.0' });
    await client.connect(transport);
  });
  after(async () => {
    await client?.close();
    await stack?.close();
    rmSync(configDir, { recursive: true, force: true });
  });

  test('it signs in on first use, lists the tools and runs a read tool', async () => {
    const { tools } = await client.listTools();
    assert.ok(
      tools.some((tool) => tool.name === 'place_order'),
      stderr,
    );
    assert.ok(plays.length >= 1, `the user was sent to sign in\n${stderr}`);
    const first = new URL(plays[0]!.callback.href);
    assert.ok(first.searchParams.get('code'), 'the callback went to mcp-remote with a code');
    const listed = await client.callTool({ name: 'list_stocks', arguments: {} });
    assert.notEqual(listed.isError, true, textOf(listed));
    assert.ok(
      stocksOf(listed).every((stock) => stock.region === 'eu'),
      'alice is in the eu region',
    );
  });

  test('the write tool: a step-up for stocks:trade, then the order', async () => {
    const before = plays.length;
    const placed = await client.callTool({
      name: 'place_order',
      arguments: { symbol: 'SAP', side: 'buy', quantity: 3 },
    });
    assert.notEqual(placed.isError, true, `${textOf(placed)}\n${stderr}`);
    assert.match(textOf(placed), /"quantity":\s*3/);
    assert.equal(plays.length, before + 1, 'one more sign-in, for the missing scope');
  });
});
