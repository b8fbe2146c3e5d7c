/**
 * Journey 1: this project's agent, acting for a user, against the whole stack: 401 → discovery →
 * registration → code flow → tools/list → a read tool → the write tool → 403 → step-up with
 * incremental consent → success. Once with a client ID metadata document served by the test (the
 * server's development switch for loopback documents on), once with dynamic registration.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createAgent } from '../../src/agent/index.ts';
import { playUser } from '../helpers/oauth.ts';
import { startTestStack, type TestStack } from '../helpers/stack.ts';
import { parseResult, requestedScopes, secretsIn, serveDocument, storeFile, userAt } from './support.ts';

const GATEHOUSE = path.resolve(import.meta.dirname, '../../bin/gatehouse.js');

interface Order {
  status: string;
  symbol: string;
  quantity: number;
  client: string;
}

describe('the agent, for a user, through the whole stack', () => {
  let stack: TestStack;
  let document: Awaited<ReturnType<typeof serveDocument>>;
  before(async () => {
    stack = await startTestStack({
      authorizationServer: { clientIdMetadataDocuments: { allowLoopbackHttp: true } },
    });
    document = await serveDocument('/gatehouse-agent/client.json', (url) => ({
      client_id: url,
      client_name: 'Console MCP agent (test)',
      redirect_uris: ['http://127.0.0.1/callback'],
      token_endpoint_auth_method: 'none',
      application_type: 'native',
    }));
  });
  after(async () => {
    await document.close();
    await stack.close();
  });

  test('the command line with --no-browser prints the sign-in link, and the result once the user has signed in', async () => {
    const home = mkdtempSync(path.join(tmpdir(), 'gatehouse-home-'));
    const child = spawn(
      process.execPath,
      [GATEHOUSE, 'agent', stack.mcpUrl, 'call', 'get_stock', '--args', '{"symbol":"SAP"}', '--no-browser'],
      { env: { ...process.env, GATEHOUSE_AGENT_HOME: home }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => {
      stdout += chunk;
    });
    const link = new Promise<string>((resolve) => {
      child.stderr.on('data', (chunk) => {
        stderr += chunk;
        const url = /^ {2}(http:\/\/\S+\/authorize\?\S+)$/m.exec(stderr)?.[1];
        if (url) resolve(url);
      });
    });
    const exited = new Promise<number | null>((resolve) => child.once('close', resolve));
    const played = await playUser(await link, { followCallback: true });
    assert.deepEqual(played.pages, ['email', 'code', 'consent']);
    assert.equal(await exited, 0, stderr);
    assert.equal((JSON.parse(stdout) as { symbol: string }).symbol, 'SAP');
    assert.match(stderr, /Open this link in a browser to sign in/);
    assert.match(stderr, /registered this agent with/);
  });

  for (const registration of ['metadata document', 'dynamic registration'] as const) {
    test(`with a ${registration}: sign-in, read, write, step-up with incremental consent`, async () => {
      const registeredBefore = stack.audit('client.registered').length;
      const store = storeFile();
      const user = userAt();
      const trace: string[] = [];
      const notes: string[] = [];
      const agent = createAgent({
        serverUrl: stack.mcpUrl,
        storePath: store,
        openUrl: user.openUrl,
        clientMetadataUrl: registration === 'metadata document' ? document.url : undefined,
        trace: (line) => trace.push(line),
        note: (message) => notes.push(message),
      });
      try {
        await agent.connect();
        const identity = agent.identity();
        assert.equal(identity?.issuer, stack.issuer);
        assert.equal(identity?.resource, stack.mcpUrl);
        if (registration === 'metadata document') {
          assert.equal(identity?.clientKind, 'metadata-document');
          assert.equal(identity?.clientId, document.url, 'the client_id is the document URL, exactly');
          assert.ok(document.hits() >= 1, 'the authorization server fetched the document');
          assert.equal(stack.audit('client.registered').length, registeredBefore, 'no registration');
        } else {
          assert.equal(identity?.clientKind, 'dynamic');
          assert.equal(stack.audit('client.registered').length, registeredBefore + 1);
        }
        assert.equal(user.plays.length, 1);
        assert.deepEqual(user.plays[0]!.pages, ['email', 'code', 'consent']);
        assert.deepEqual(agent.scopes().sort(), ['customers:read', 'stocks:read'], 'the challenge’s scope');

        const tools = (await agent.listTools()).map((tool) => tool.name);
        assert.ok(tools.includes('list_stocks') && tools.includes('place_order'), tools.join());

        const { stocks } = parseResult<{ stocks: Array<{ region: string }> }>(
          await agent.callTool('list_stocks'),
        );
        assert.ok(stocks.length > 0);
        assert.ok(
          stocks.every((stock) => stock.region === 'eu'),
          'alice sees her region',
        );

        const order = parseResult<Order>(
          await agent.callTool('place_order', { symbol: 'SAP', side: 'buy', quantity: 2 }),
        );
        assert.equal(order.status, 'accepted');
        assert.equal(order.quantity, 2);
        assert.equal(order.client, identity?.clientId);

        // The step-up: one more sign-in, whose consent page asked only for the new permission.
        assert.equal(user.plays.length, 2);
        assert.deepEqual(user.plays[1]!.pages, ['consent'], 'still signed in: consent only');
        assert.deepEqual(requestedScopes(user.plays[1]!.consentHtml), ['stocks:trade']);
        assert.deepEqual(
          agent.scopes().sort(),
          ['customers:read', 'stocks:read', 'stocks:trade'],
          'the union',
        );
        assert.match(notes.join('\n'), /more permission \(stocks:trade\)/);

        // The trace shows the exchange, and no credential.
        const text = trace.join('\n');
        assert.match(text, /HTTP ← 401 Unauthorized for POST .*\/mcp/);
        assert.match(text, /www-authenticate: Bearer resource_metadata=/);
        assert.match(text, /HTTP ← 403 Forbidden for POST .*\/mcp/);
        assert.match(text, /error="insufficient_scope"/);
        assert.match(text, /GET .*\/\.well-known\/oauth-protected-resource\/mcp/);
        assert.match(text, /GET .*\/\.well-known\/oauth-authorization-server/);
        assert.match(text, /code_challenge_method=S256/);
        assert.match(text, new RegExp(`resource=${stack.mcpUrl.replace(/[.]/g, '\\.')}`));
        // The MCP server names DPoP in its challenge, so the agent binds its tokens (RFC 9449 §7.1).
        assert.match(text, /authorization: DPoP \[redacted\]/);
        assert.match(text, /code_verifier=\[redacted\]/);
        assert.match(text, /MCP {2}→ .*"method":"tools\/call"/);
        const codes = user.plays.map((play) => play.callback.searchParams.get('code')!);
        const secrets = [...secretsIn(store), ...codes];
        assert.ok(secrets.length >= 3, 'a token and two codes at least');
        for (const secret of secrets) assert.ok(!text.includes(secret), 'no token or code in the trace');
        assert.ok(
          !stack.logs.some((line) => secrets.some((secret) => line.includes(secret))),
          'nor in server logs',
        );
      } finally {
        await agent.close();
      }
    });
  }
});
