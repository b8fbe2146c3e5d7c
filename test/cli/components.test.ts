/**
 * Each component run alone as a real process with one shared configuration file, and
 * `gatehouse start` running all of them: each says where it listens, and a taken port names the
 * setting to change.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { freePort } from '../helpers/stack.ts';

const CLI = path.resolve(import.meta.dirname, '../../bin/gatehouse.js');

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
  for (let i = 0; i < 300; i += 1) {
    if (predicate()) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function writeConfig(dir: string) {
  const [as, gateway, mcp, apis] = [await freePort(), await freePort(), await freePort(), await freePort()];
  writeFileSync(
    path.join(dir, 'gatehouse.yaml'),
    `authorizationServer:
  issuer: http://127.0.0.1:${as}
  resources:
    mcp:
      uri: http://127.0.0.1:${gateway}/mcp
gateway:
  publicUrl: http://127.0.0.1:${gateway}
  mcpServerUrl: http://127.0.0.1:${mcp}
  routes:
    - { prefix: /api/stocks, upstream: "http://127.0.0.1:${apis}/stocks" }
mcpServer:
  listen: { port: ${mcp} }
  apis:
    stocks: { baseUrl: "http://127.0.0.1:${apis}/stocks", audience: "http://localhost:8000/api/stocks" }
    customers: { baseUrl: "http://127.0.0.1:${apis}/customers", audience: "http://localhost:8000/api/customers" }
apis:
  listen: { port: ${apis} }
`,
  );
  return { as, gateway, mcp, apis };
}

test('each component runs alone from the shared configuration file and logs its URL', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'gatehouse-components-'));
  const ports = await writeConfig(dir);
  const processes = [];
  try {
    // The authorization server first: it creates the internal clients' secrets the others read.
    for (const [component, title, port] of [
      ['authorization-server', 'Authorization server', ports.as],
      ['apis', 'Example APIs', ports.apis],
      ['mcp-server', 'MCP server', ports.mcp],
      ['gateway', 'Gateway', ports.gateway],
    ] as const) {
      const process_ = run(['serve', component, '--config', 'gatehouse.yaml'], dir);
      processes.push(process_);
      await waitFor(
        () => process_.output.stdout.includes(`${title} ready at http://127.0.0.1:${port}`),
        `${component} ready`,
      );
    }
    const challenge = await fetch(`http://127.0.0.1:${ports.gateway}/mcp`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{}',
    });
    assert.equal(challenge.status, 401);
    assert.match(
      challenge.headers.get('www-authenticate')!,
      /resource_metadata="http:\/\/127\.0\.0\.1:\d+\/\.well-known\/oauth-protected-resource\/mcp"/,
    );
  } finally {
    for (const process_ of processes.reverse()) {
      process_.child.kill('SIGTERM');
      await process_.exited;
    }
  }
});

test('gatehouse start runs the whole stack, prints the banner, and a taken port names the setting', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'gatehouse-start-'));
  const ports = await writeConfig(dir);
  const stack = run(['start', '--config', 'gatehouse.yaml'], dir);
  try {
    await waitFor(() => stack.output.stdout.includes('Press Ctrl-C to stop.'), 'the ready banner');
    const banner = stack.output.stdout;
    assert.match(banner, new RegExp(`MCP server\\s+http://127\\.0\\.0\\.1:${ports.gateway}/mcp`));
    assert.match(banner, /Development inbox\s+http:\/\/127\.0\.0\.1:\d+\/dev\/inbox/);
    assert.match(banner, /alice@example\.com\s+\(region=eu role=trader\)/);
    assert.match(banner, /claude mcp add --transport http gatehouse http:\/\/127\.0\.0\.1:\d+\/mcp/);
    assert.match(banner, /npx mcp-remote /);
    // A second stack on the same ports: the authorization server's port is taken.
    const second = run(['start', '--config', 'gatehouse.yaml'], dir);
    assert.equal(await second.exited, 1);
    assert.match(
      second.output.stderr,
      new RegExp(`port ${ports.as} .* already in use: .*authorizationServer\\.listen\\.port`),
    );
  } finally {
    stack.child.kill('SIGINT');
  }
  assert.equal(await stack.exited, 0, 'Ctrl-C shuts down cleanly');
});
