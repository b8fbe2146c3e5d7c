/**
 * The MCP Inspector CLI (pinned in devDependencies) as a person runs it at a terminal: each run is
 * one method against the server URL, under a pseudo-terminal (the CLI only starts OAuth when a
 * person is there: a TTY on stdin or stderr), with its file secret store in a folder of the test's,
 * so a later run reuses the tokens an earlier one got. The person is the test's user: they open the
 * URL the CLI prints and their browser follows the redirect to the CLI's callback listener; asked
 * whether to step up, they answer y.
 *
 *   401 → discovery → registration → sign-in → tools/list → a read tool → the write tool → 403
 *   insufficient_scope → "Proceed with step-up authorization? [y/N]" y → sign-in for the missing
 *   scope → the order.
 *
 * `script` (util-linux, on every Debian) gives the pseudo-terminal.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Browser, type PlayedUser, playUser } from '../helpers/oauth.ts';
import { freePort } from '../helpers/ports.ts';
import { startTestStack, type TestStack } from '../helpers/stack.ts';
import { consentScopes, deliverCallback, scopesOf, stocksOf, textOf } from './journey.ts';

const INSPECTOR_CLI = createRequire(import.meta.url).resolve(
  '@modelcontextprotocol/inspector/clients/cli/build/index.js',
);
const NAVIGATE = /Please navigate to:\s+(\S+)/g;
const STEP_UP = /Proceed with step-up authorization\? \[y\/N\]/;

/** Quotes one argument for the shell `script -c` runs the command with. */
const shellQuote = (value: string) => `'${value.replaceAll("'", `'\\''`)}'`;

interface Run {
  code: number | null;
  /** Everything the terminal showed. */
  terminal: string;
  /** The result the CLI wrote (--output), parsed. */
  result: Record<string, unknown> | undefined;
  /** The sign-ins the person went through during the run. */
  plays: PlayedUser[];
}

describe('the MCP Inspector CLI, at a terminal, through the whole stack', () => {
  let stack: TestStack;
  let storage: string;
  let callbackUrl: string;
  let config: string;
  const browser = new Browser();
  const children = new Set<ChildProcess>();

  before(async () => {
    stack = await startTestStack();
    storage = mkdtempSync(path.join(tmpdir(), 'gatehouse-inspector-'));
    callbackUrl = `http://127.0.0.1:${await freePort()}/oauth/callback`;
    // The server entry a person writes. Without `oauth.scopes` the Inspector asks for every scope
    // of the protected resource metadata at the first sign-in (so it never needs a step-up); with
    // the base scopes it starts with least privilege, as the challenge suggests.
    config = path.join(storage, 'servers.json');
    writeFileSync(
      config,
      JSON.stringify({
        mcpServers: {
          gatehouse: {
            type: 'streamable-http',
            url: stack.mcpUrl,
            oauth: { scopes: 'stocks:read customers:read' },
          },
        },
      }),
    );
  });
  after(async () => {
    for (const child of children) child.kill('SIGKILL');
    await stack?.close();
    rmSync(storage, { recursive: true, force: true });
  });

  /** One run of the CLI, the person at the terminal answering what it asks. */
  async function inspector(args: string[], answerStepUp = 'y'): Promise<Run> {
    const output = path.join(storage, `result-${Date.now()}-${Math.random().toString(36).slice(2)}.json`);
    const command = [
      process.execPath,
      INSPECTOR_CLI,
      '--config',
      config,
      '--server',
      'gatehouse',
      '--callback-url',
      callbackUrl,
      '--output',
      output,
      ...args,
    ]
      .map(shellQuote)
      .join(' ');
    const child = spawn('script', ['-qfec', command, '/dev/null'], {
      env: {
        ...process.env,
        // Its file secret store and its other files, in the test's folder (never the user's home).
        MCP_INSPECTOR_SECRET_STORE: 'file',
        MCP_STORAGE_DIR: storage,
        HOME: storage,
        // No browser can open here: the person opens the printed URL.
        MCP_AUTO_OPEN_ENABLED: 'false',
        NO_COLOR: '1',
        TERM: 'dumb',
      },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    children.add(child);
    let terminal = '';
    let seen = 0;
    let askedStepUp = false;
    const plays: PlayedUser[] = [];
    let playing = Promise.resolve();
    const failures: unknown[] = [];
    const onData = (chunk: Buffer) => {
      terminal += chunk.toString();
      const urls = [...terminal.matchAll(NAVIGATE)].map((match) => match[1]!);
      for (const url of urls.slice(seen)) {
        seen += 1;
        playing = playing.then(async () => {
          try {
            const played = await playUser(url, { email: 'alice@example.com', browser });
            plays.push(played);
            await deliverCallback(played.callback);
          } catch (error) {
            failures.push(error);
          }
        });
      }
      if (!askedStepUp && STEP_UP.test(terminal)) {
        askedStepUp = true;
        child.stdin?.write(`${answerStepUp}\r`);
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    const code = await new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
      child.on('exit', (exitCode) => {
        clearTimeout(timer);
        resolve(exitCode);
      });
    });
    children.delete(child);
    await playing;
    assert.deepEqual(failures, [], terminal);
    let result: Record<string, unknown> | undefined;
    try {
      result = JSON.parse(readFileSync(output, 'utf8')) as Record<string, unknown>;
    } catch {
      result = undefined;
    }
    return { code, terminal, result, plays };
  }

  /** The tokens the Inspector keeps in its file secret store, and the file's mode. */
  function storedTokens(): { mode: number; tokens: { scope?: string; refresh_token?: string } } {
    const file = path.join(storage, 'secrets.json');
    const store = JSON.parse(readFileSync(file, 'utf8')) as { secrets: Record<string, string> };
    const entry = Object.entries(store.secrets).find(([key]) => key.includes(':tokens:'));
    assert.ok(entry, 'the tokens are in the file secret store');
    return { mode: statSync(file).mode & 0o777, tokens: JSON.parse(entry[1]) as { scope?: string } };
  }

  test('it signs in on first use and lists the tools', async () => {
    const run = await inspector(['--method', 'tools/list']);
    assert.equal(run.code, 0, run.terminal);
    assert.equal(run.plays.length, 1, `one sign-in\n${run.terminal}`);
    const authorization = new URL([...run.terminal.matchAll(NAVIGATE)][0]![1]!);
    assert.equal(
      authorization.searchParams.get('resource'),
      stack.mcpUrl,
      'RFC 8707: the token is for this server',
    );
    assert.equal(authorization.searchParams.get('code_challenge_method'), 'S256');
    assert.ok(
      run.plays[0]!.callback.searchParams.get('code'),
      'the browser went back to the CLI with a code',
    );
    const { mode, tokens } = storedTokens();
    assert.equal(mode, 0o600, 'the secret store is readable by its owner only');
    assert.deepEqual(
      scopesOf(tokens.scope),
      new Set(['stocks:read', 'customers:read']),
      'least privilege first',
    );
    assert.equal(tokens.refresh_token, undefined, 'a public client gets no refresh token');
    const tools = (run.result?.tools as Array<{ name: string }> | undefined) ?? [];
    assert.ok(
      tools.some((tool) => tool.name === 'place_order'),
      run.terminal,
    );
  });

  test('a later run uses the stored tokens: a read tool, no sign-in', async () => {
    const run = await inspector(['--method', 'tools/call', '--tool-name', 'list_stocks']);
    assert.equal(run.code, 0, run.terminal);
    assert.equal(run.plays.length, 0, `no sign-in\n${run.terminal}`);
    assert.ok(run.result, run.terminal);
    assert.ok(
      stocksOf(run.result).every((stock) => stock.region === 'eu'),
      'alice is in the eu region',
    );
  });

  test('the write tool, the person declining the step-up: no order, and the tokens are unchanged', async () => {
    const run = await inspector(
      [
        '--method',
        'tools/call',
        '--tool-name',
        'place_order',
        '--tool-args-json',
        JSON.stringify({ symbol: 'SAP', side: 'buy', quantity: 1 }),
      ],
      'n',
    );
    assert.match(run.terminal, STEP_UP);
    assert.notEqual(run.code, 0, run.terminal);
    assert.equal(run.plays.length, 0, 'no sign-in');
    assert.doesNotMatch(JSON.stringify(run.result ?? {}), /"status":\s*"accepted"/);
    assert.deepEqual(scopesOf(storedTokens().tokens.scope), new Set(['stocks:read', 'customers:read']));
  });

  test('the write tool: the person agrees to step up for stocks:trade, then the order', async () => {
    const run = await inspector([
      '--method',
      'tools/call',
      '--tool-name',
      'place_order',
      '--tool-args-json',
      JSON.stringify({ symbol: 'SAP', side: 'buy', quantity: 3 }),
    ]);
    assert.equal(run.code, 0, run.terminal);
    assert.match(run.terminal, STEP_UP, JSON.stringify(run.result));
    assert.equal(run.plays.length, 1, `one sign-in, for the missing scope\n${run.terminal}`);
    assert.ok(run.result, run.terminal);
    assert.match(textOf(run.result), /"quantity":\s*3/);
    assert.match(textOf(run.result), /"status":\s*"accepted"/);
    const stepUp = new URL([...run.terminal.matchAll(NAVIGATE)][0]![1]!);
    assert.ok(
      scopesOf(stepUp.searchParams.get('scope')).has('stocks:trade'),
      'the step-up asks for stocks:trade',
    );
    assert.deepEqual(
      run.plays[0]!.pages,
      ['consent'],
      'the browser session is still signed in: consent only',
    );
    assert.deepEqual(
      consentScopes(run.plays[0]!.consentHtml).requested,
      ['stocks:trade'],
      'consent asks only for it',
    );
    assert.ok(scopesOf(storedTokens().tokens.scope).has('stocks:trade'), 'the stored token now carries it');
  });
});
