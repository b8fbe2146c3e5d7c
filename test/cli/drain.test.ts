/**
 * Shutdown as systemd or a container runtime does it: SIGTERM to a real `gatehouse` process while
 * requests are in flight through the gateway to a slow upstream. Every request in flight completes
 * with the upstream's answer, new connections are refused, and the process exits 0; a second
 * signal exits at once.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { freePort } from '../helpers/stack.ts';

const CLI = path.resolve(import.meta.dirname, '../../bin/gatehouse.js');
const IN_FLIGHT = 20;

function run(args: string[], cwd: string) {
  const child = spawn(process.execPath, [CLI, ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  const output = { stdout: '', stderr: '' };
  child.stdout.on('data', (chunk) => {
    output.stdout += chunk;
  });
  child.stderr.on('data', (chunk) => {
    output.stderr += chunk;
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, exited, output };
}

async function waitFor(predicate: () => boolean, what: string) {
  for (let i = 0; i < 400; i += 1) {
    if (predicate()) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** The upstream: holds every request until the test releases it. */
const held: ServerResponse[] = [];
const upstream = createServer((req, res) => {
  req.resume();
  held.push(res);
});
let upstreamPort = 0;

before(async () => {
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  upstreamPort = (upstream.address() as AddressInfo).port;
});

after(async () => {
  for (const res of held.splice(0)) res.destroy();
  upstream.closeAllConnections();
  await new Promise((resolve) => upstream.close(resolve));
});

function release() {
  for (const [i, res] of held.splice(0).entries()) {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ answer: i }));
  }
}

async function writeConfig(dir: string, drainTimeoutSeconds: number) {
  const [as, gateway, mcp, apis] = [await freePort(), await freePort(), await freePort(), await freePort()];
  writeFileSync(
    path.join(dir, 'gatehouse.yaml'),
    `http:
  drainTimeoutSeconds: ${drainTimeoutSeconds}
authorizationServer:
  issuer: http://127.0.0.1:${as}
gateway:
  publicUrl: http://127.0.0.1:${gateway}
  client: { clientId: gatehouse-gateway, secret: "drain-test-secret-0123456789abcdefghij" }
  routes:
    - { prefix: /api/slow, upstream: "http://127.0.0.1:${upstreamPort}/slow" }
mcpServer:
  listen: { port: ${mcp} }
apis:
  listen: { port: ${apis} }
`,
  );
  return `http://127.0.0.1:${gateway}`;
}

/** Sends IN_FLIGHT requests through the gateway and waits until the upstream holds all of them. */
async function requestsInFlight(gateway: string) {
  const answers = Array.from({ length: IN_FLIGHT }, (_, i) =>
    fetch(`${gateway}/api/slow/${i}`).then(
      async (response) => ({ status: response.status, body: await response.text() }),
      (error: Error) => ({ status: 0, body: String(error.cause ?? error) }),
    ),
  );
  await waitFor(() => held.length === IN_FLIGHT, 'every request to reach the upstream');
  return answers;
}

test('gatehouse serve gateway: SIGTERM lets every request in flight finish, refuses new ones, exits 0', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'gatehouse-drain-'));
  const gateway = await writeConfig(dir, 10);
  const process_ = run(['serve', 'gateway', '--config', 'gatehouse.yaml'], dir);
  try {
    await waitFor(() => process_.output.stdout.includes('Gateway ready at'), 'the gateway');
    const answers = await requestsInFlight(gateway);
    process_.child.kill('SIGTERM');
    await waitFor(() => process_.output.stdout.includes('SIGTERM: finishing requests'), 'the drain to begin');
    await assert.rejects(fetch(`${gateway}/api/slow/late`), 'a new connection is refused while draining');
    release();
    const results = await Promise.all(answers);
    assert.deepEqual(
      results.map((result) => result.status),
      results.map(() => 200),
      'every request in flight completed',
    );
    assert.deepEqual(
      results.map((result) => JSON.parse(result.body).answer).sort((a, b) => a - b),
      results.map((_, i) => i),
    );
    assert.equal(await process_.exited, 0);
    assert.match(process_.output.stderr, /"finished":20,"cut":0/);
  } finally {
    process_.child.kill('SIGKILL');
  }
});

test('gatehouse serve gateway: a second signal exits at once, without waiting for the drain', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'gatehouse-drain-'));
  const gateway = await writeConfig(dir, 600);
  const process_ = run(['serve', 'gateway', '--config', 'gatehouse.yaml'], dir);
  try {
    await waitFor(() => process_.output.stdout.includes('Gateway ready at'), 'the gateway');
    const answers = await requestsInFlight(gateway);
    process_.child.kill('SIGTERM');
    await waitFor(() => process_.output.stdout.includes('SIGTERM: finishing requests'), 'the drain to begin');
    process_.child.kill('SIGINT');
    assert.equal(await process_.exited, 130, 'exit code 128 + SIGINT');
    const results = await Promise.all(answers);
    assert.ok(
      results.every((result) => result.status === 0),
      'the requests were cut',
    );
  } finally {
    process_.child.kill('SIGKILL');
    for (const res of held.splice(0)) res.destroy();
  }
});

test('gatehouse start: SIGINT drains the gateway before the components behind it, then exits 0', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'gatehouse-drain-'));
  const gateway = await writeConfig(dir, 10);
  const stack = run(['start', '--config', 'gatehouse.yaml'], dir);
  try {
    await waitFor(() => stack.output.stdout.includes('Press Ctrl-C to stop.'), 'the ready banner');
    const answers = await requestsInFlight(gateway);
    stack.child.kill('SIGINT');
    await waitFor(() => stack.output.stdout.includes('SIGINT: finishing requests'), 'the drain to begin');
    release();
    const results = await Promise.all(answers);
    assert.ok(
      results.every((result) => result.status === 200),
      'every request in flight completed',
    );
    assert.equal(await stack.exited, 0);
  } finally {
    stack.child.kill('SIGKILL');
  }
});
