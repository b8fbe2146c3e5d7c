/**
 * Journey 3 and the one-shot command line: a workload agent (the pre-registered `example-workload`
 * with its generated private key) gets tokens with client credentials and private_key_jwt, and calls
 * a read tool; `gatehouse agent <url> call <tool> --args <json>` as a real process prints the result
 * and exits 0, and exits non-zero with a clear message when the call fails.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { createAgent } from '../../src/agent/index.ts';
import { startTestStack, type TestStack } from '../helpers/stack.ts';
import { parseResult, readStore, secretsIn, storeFile } from './support.ts';

const run = promisify(execFile);
const GATEHOUSE = path.resolve(import.meta.dirname, '../../bin/gatehouse.js');

describe('the agent as a workload', () => {
  let stack: TestStack;
  let privateKey: string;
  before(async () => {
    stack = await startTestStack();
    privateKey = path.join(stack.dataDir, 'secrets/example-workload.private-key.json');
  });
  after(() => stack.close());

  test('client credentials with private_key_jwt, no browser, then a read tool', async () => {
    const agent = createAgent({
      serverUrl: stack.mcpUrl,
      storePath: storeFile(),
      clientId: 'example-workload',
      privateKeyFile: privateKey,
      openUrl: () => {
        throw new Error('a workload never opens a browser');
      },
    });
    try {
      // Its client has no region claim, so the list may well be empty: success is what counts.
      const { stocks } = parseResult<{ stocks: unknown[] }>(await agent.callTool('list_stocks'));
      assert.ok(Array.isArray(stocks));
      assert.deepEqual(agent.scopes(), ['stocks:read']);
      assert.equal(agent.identity()?.clientKind, 'pre-registered');
    } finally {
      await agent.close();
    }
    const issued = stack
      .audit('token.issued')
      .filter((r) => r.client_id === 'example-workload' && r.grant_type === 'client_credentials');
    assert.ok(issued.some((r) => r.outcome === 'success'));
  });

  /** `gatehouse agent ...` as a real process, with its own agent home. */
  async function gatehouseAgent(args: string[], home: string) {
    try {
      const { stdout, stderr } = await run(process.execPath, [GATEHOUSE, 'agent', stack.mcpUrl, ...args], {
        env: { ...process.env, GATEHOUSE_AGENT_HOME: home },
      });
      return { code: 0, stdout, stderr };
    } catch (error) {
      const failed = error as { code: number; stdout: string; stderr: string };
      return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
    }
  }

  test('the shell reads commands from stdin without a terminal: tools, call, scopes, logout, quit', async () => {
    const home = mkdtempSync(path.join(tmpdir(), 'gatehouse-home-'));
    const child = spawn(
      process.execPath,
      [GATEHOUSE, 'agent', stack.mcpUrl, '--client-id', 'example-workload', '--private-key', privateKey],
      { env: { ...process.env, GATEHOUSE_AGENT_HOME: home }, stdio: ['pipe', 'pipe', 'pipe'] },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => {
      stdout += chunk;
    });
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
    });
    child.stdin.end(
      [
        'help',
        'tools',
        'call list_stocks {}',
        'call get_stock {"symbol":',
        'scopes',
        'logout',
        'quit',
        'tools',
      ].join('\n'),
    );
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
    assert.equal(code, 0, stderr);
    assert.match(stdout, /call <tool> \[json-args\]/, 'help');
    assert.match(stdout, /place_order +Places an order.*\[changes things\]/, 'tools');
    assert.match(stdout, /"stocks": \[/, 'the call');
    assert.match(stderr, /not valid JSON/, 'a bad command is explained and the shell goes on');
    assert.match(stdout, /^stocks:read$/m, 'scopes');
    assert.match(stdout, /Signed out: the tokens were revoked and forgotten\./);
    assert.equal(stdout.match(/place_order/g)?.length, 1, 'nothing runs after quit');
    const stored = Object.values(readStore(path.join(home, 'agent-credentials.json')).authorizationServers);
    assert.deepEqual(stored[0]?.tokens, {}, 'logout forgot the tokens');
    assert.ok(
      stack.audit('token.revoked').some((r) => r.outcome === 'success' && r.client_id === 'example-workload'),
    );
  });

  test('one-shot: the result on stdout and exit 0; a failing call exits non-zero with a clear message', async () => {
    const home = path.join(mkdtempSync(path.join(tmpdir(), 'gatehouse-home-')), 'gatehouse');
    const workload = ['--no-browser', '--client-id', 'example-workload', '--private-key', privateKey];

    const ok = await gatehouseAgent(['call', 'list_stocks', '--args', '{}', ...workload, '--trace'], home);
    assert.equal(ok.code, 0, ok.stderr);
    assert.ok(Array.isArray((JSON.parse(ok.stdout) as { stocks: unknown[] }).stocks), ok.stdout);
    assert.match(ok.stderr, /HTTP ← 401 Unauthorized/);
    assert.match(ok.stderr, /client_assertion=\[redacted\]/);
    const store = path.join(home, 'agent-credentials.json');
    assert.equal(statSync(store).mode & 0o777, 0o600, 'the credentials file is for the user only');
    assert.equal(statSync(home).mode & 0o777, 0o700);
    for (const secret of secretsIn(store)) assert.ok(!ok.stderr.includes(secret), 'no token in the trace');

    const toolError = await gatehouseAgent(
      ['call', 'get_stock', '--args', '{"symbol":"NOPE"}', ...workload],
      home,
    );
    assert.equal(toolError.code, 1);
    assert.equal(toolError.stdout, '');
    assert.match(toolError.stderr, /the tool get_stock failed: .*NOPE/);

    const refused = await gatehouseAgent(
      ['call', 'place_order', '--args', '{"symbol":"SAP","side":"buy","quantity":1}', ...workload],
      home,
    );
    assert.equal(refused.code, 3, 'authorization failure');
    assert.match(refused.stderr, /invalid_scope/);

    const badArgs = await gatehouseAgent(['call', 'get_stock', '--args', '{symbol', ...workload], home);
    assert.equal(badArgs.code, 2);
    assert.match(badArgs.stderr, /not valid JSON/);
    for (const result of [toolError, refused, badArgs])
      assert.doesNotMatch(result.stderr, /\n\s+at /, 'no stack trace');
  });
});
