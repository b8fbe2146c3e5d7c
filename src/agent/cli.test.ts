import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, test } from 'node:test';
import { runAgentCli } from './cli.ts';
import { loadAgentConfig } from './config.ts';
import { AgentError, EXIT_CODES } from './errors.ts';
import { parseToolArguments } from './shell.ts';

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function cli(argv: string[], env: NodeJS.ProcessEnv = {}) {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (chunk) => {
    out += chunk;
  });
  stderr.on('data', (chunk) => {
    err += chunk;
  });
  const home = mkdtempSync(path.join(tmpdir(), 'agent-cli-'));
  const code = await runAgentCli(argv, {
    stdout,
    stderr,
    stdin: new PassThrough(),
    interactive: false,
    env: { GATEHOUSE_AGENT_HOME: home, ...env },
  });
  return { code, out, err };
}

describe('gatehouse agent (arguments)', () => {
  test('--help prints the usage on stdout', async () => {
    const { code, out } = await cli(['--help']);
    assert.equal(code, 0);
    assert.match(out, /gatehouse agent <mcp-url> call <tool>/);
    assert.match(out, /--no-browser/);
  });

  test('usage errors exit 2 with the usage', async () => {
    for (const argv of [
      [],
      ['http://x/mcp', 'dance'],
      ['http://x/mcp', '--bogus'],
      ['http://x/mcp', 'tools', '--args', '{}'],
      ['http://x/mcp', 'tools', '--link-lifetime', '0'],
      ['http://x/mcp', 'tools', '--link-lifetime', 'soon'],
    ]) {
      const { code, err } = await cli(argv);
      assert.equal(code, EXIT_CODES.usage, argv.join(' '));
      assert.match(err, /gatehouse agent:/);
    }
  });

  test('bad input is explained, not thrown: a key file that is missing, a secret without a client id', async () => {
    const missing = await cli([
      'http://127.0.0.1:9/mcp',
      'tools',
      '--client-id',
      'w',
      '--private-key',
      '/nonexistent.json',
    ]);
    assert.equal(missing.code, EXIT_CODES.usage);
    assert.match(missing.err, /--private-key \/nonexistent\.json: no such file/);
    const orphan = await cli(['http://127.0.0.1:9/mcp', 'tools', '--client-secret', 's']);
    assert.equal(orphan.code, EXIT_CODES.usage);
    assert.match(orphan.err, /need --client-id/);
    assert.doesNotMatch(missing.err + orphan.err, /\n\s+at /, 'no stack trace');
  });

  test('an unreachable server exits 4 and says what to check', async () => {
    const port = await closedPort();
    const { code, err } = await cli([
      `http://127.0.0.1:${port}/mcp`,
      'call',
      'list_stocks',
      '--args',
      '{}',
      '--no-browser',
    ]);
    assert.equal(code, EXIT_CODES.network);
    assert.match(err, new RegExp(`could not reach (http://)?127\\.0\\.0\\.1:${port} \\(ECONNREFUSED\\)`));
    assert.match(err, /gatehouse start/);
    assert.doesNotMatch(err, /\n\s+at /);
  });

  test('tool arguments must be a JSON object', () => {
    assert.deepEqual(parseToolArguments(''), {});
    assert.deepEqual(parseToolArguments('{"symbol":"SAP"}'), { symbol: 'SAP' });
    assert.throws(() => parseToolArguments('[1]'), AgentError);
    assert.throws(() => parseToolArguments('{nope'), AgentError);
  });
});

describe('the configuration file', () => {
  test('maps issuers to pre-registered clients; key files relative to the file', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'agent-config-'));
    const file = path.join(dir, 'agent.json');
    writeFileSync(
      file,
      JSON.stringify({
        clientMetadataUrl: 'https://agent.example.com/client.json',
        clients: { 'http://localhost:9000': { clientId: 'example-workload', privateKeyFile: 'keys/w.json' } },
      }),
    );
    const config = loadAgentConfig(file, true);
    assert.equal(config.clientMetadataUrl, 'https://agent.example.com/client.json');
    assert.deepEqual(config.clients['http://localhost:9000'], {
      clientId: 'example-workload',
      privateKeyFile: path.join(dir, 'keys/w.json'),
    });
  });

  test('a missing default file is no configuration; a missing named file or a bad one is an error', () => {
    assert.deepEqual(loadAgentConfig('/nonexistent/agent.json', false), { clients: {} });
    assert.throws(() => loadAgentConfig('/nonexistent/agent.json', true), AgentError);
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'agent-config-')), 'agent.json');
    writeFileSync(file, JSON.stringify({ clients: { 'https://a': { clientSecret: 'x' } } }));
    assert.throws(() => loadAgentConfig(file, true), /clientId is required/);
    writeFileSync(file, JSON.stringify({ client: {} }));
    assert.throws(() => loadAgentConfig(file, true), /unknown key "client"/);
  });
});
