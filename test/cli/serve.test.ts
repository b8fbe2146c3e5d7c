/**
 * `gatehouse serve authorization-server` as a user runs it: a real process.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';

const CLI = path.resolve(import.meta.dirname, '../../bin/gatehouse.js');

function run(args: string[], cwd: string) {
  const child = spawn(process.execPath, [CLI, ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk) => {
    stdout += chunk;
  });
  child.stderr.on('data', (chunk) => {
    stderr += chunk;
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, exited, output: () => ({ stdout, stderr }) };
}

async function waitFor(predicate: () => boolean, what: string) {
  for (let i = 0; i < 200; i += 1) {
    if (predicate()) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

test('starts from a config file on a free port, serves discovery, and stops on SIGTERM', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'gatehouse-cli-'));
  writeFileSync(
    path.join(dir, 'gatehouse.yaml'),
    'authorizationServer:\n  issuer: http://127.0.0.1:9000\n  listen:\n    port: 0\n',
  );
  const process_ = run(['serve', 'authorization-server', '--config', 'gatehouse.yaml'], dir);
  await waitFor(() => /ready at (http:\S+)/.test(process_.output().stdout), 'the ready line');
  const issuer = /ready at (http:\S+)/.exec(process_.output().stdout)![1]!;
  const metadata = (await (await fetch(`${issuer}/.well-known/oauth-authorization-server`)).json()) as {
    issuer: string;
  };
  assert.equal(metadata.issuer, issuer);
  assert.match(process_.output().stdout, /Development inbox: .*\/dev\/inbox/);
  process_.child.kill('SIGTERM');
  assert.equal(await process_.exited, 0);
});

test('starts on the defaults with no configuration file', async (t) => {
  const probe = await fetch('http://localhost:9000/').catch(() => undefined);
  if (probe) {
    t.skip('port 9000 is in use on this machine');
    return;
  }
  const dir = mkdtempSync(path.join(tmpdir(), 'gatehouse-cli-'));
  const process_ = run(['serve', 'authorization-server'], dir);
  try {
    await waitFor(
      () => process_.output().stdout.includes('ready at http://localhost:9000'),
      'the ready line',
    );
    const response = await fetch('http://localhost:9000/.well-known/openid-configuration');
    assert.equal(response.status, 200);
  } finally {
    process_.child.kill('SIGTERM');
    await process_.exited;
  }
});

test('a bad configuration stops with exit code 1 and names the key', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'gatehouse-cli-'));
  writeFileSync(path.join(dir, 'bad.yaml'), 'authorizationServer:\n  issuer: ftp://nope\n  colour: blue\n');
  const process_ = run(['serve', 'authorization-server', '-c', 'bad.yaml'], dir);
  assert.equal(await process_.exited, 1);
  const { stderr } = process_.output();
  assert.match(stderr, /authorizationServer\.issuer: must be an http/);
  assert.match(stderr, /authorizationServer\.colour: unknown setting/);
  assert.doesNotMatch(stderr, /\n\s+at /, 'no stack trace');
});

test('an unknown command prints usage and exits 2', async () => {
  const process_ = run(['serve', 'nothing'], tmpdir());
  assert.equal(await process_.exited, 2);
  assert.match(process_.output().stderr, /Usage:/);
});
