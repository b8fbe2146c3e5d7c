/**
 * The built-in TLS listener in real processes: the authorization server and the gateway serve
 * HTTPS with a certificate made for the run (paths relative to the configuration file), publish
 * only https URLs from their configuration, and the gateway and MCP server reach the authorization
 * server over TLS with the certificate trusted through NODE_EXTRA_CA_CERTS, as docs/deployment.md
 * says. A plain-HTTP request to a TLS port gets no answer.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { makeCertificate } from '../helpers/certificate.ts';
import { freePort } from '../helpers/stack.ts';

const CLI = path.resolve(import.meta.dirname, '../../bin/gatehouse.js');

function run(args: string[], cwd: string, env: NodeJS.ProcessEnv) {
  const child = spawn(process.execPath, [CLI, ...args], {
    cwd,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
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

async function waitFor(predicate: () => boolean | Promise<boolean>, what: string) {
  for (let i = 0; i < 300; i += 1) {
    if (await predicate()) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

function getJson(url: string, ca: Buffer): Promise<{ status: number; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { ca, agent: false }, (res) => {
      let text = '';
      res.on('data', (chunk) => {
        text += chunk;
      });
      res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(text) }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('the authorization server and the gateway serve HTTPS, and the internal calls go over TLS', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'gatehouse-tls-stack-'));
  const [as, gateway, mcp, apis] = [await freePort(), await freePort(), await freePort(), await freePort()];
  mkdirSync(path.join(dir, 'tls'));
  const certificate = makeCertificate(path.join(dir, 'tls'), 'server');
  const ca = readFileSync(certificate.cert);
  writeFileSync(
    path.join(dir, 'gatehouse.yaml'),
    `authorizationServer:
  issuer: https://127.0.0.1:${as}
  listen: { tls: { cert: tls/server.crt, key: tls/server.key } }
  resources:
    mcp:
      uri: https://127.0.0.1:${gateway}/mcp
gateway:
  publicUrl: https://127.0.0.1:${gateway}
  listen: { tls: { cert: tls/server.crt, key: tls/server.key } }
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
  const env = { NODE_EXTRA_CA_CERTS: path.join(dir, 'tls', 'server.crt') };
  const processes: Array<ReturnType<typeof run>> = [];
  try {
    for (const [component, ready] of [
      ['authorization-server', `Authorization server ready at https://127.0.0.1:${as}`],
      ['apis', 'Example APIs ready at'],
      ['mcp-server', 'MCP server ready at'],
      ['gateway', `Gateway ready at https://127.0.0.1:${gateway}`],
    ] as const) {
      const started = run(['serve', component, '--config', 'gatehouse.yaml'], dir, env);
      processes.push(started);
      await waitFor(() => started.output.stdout.includes(ready), `${component} ready`);
    }

    const metadata = await getJson(`https://127.0.0.1:${as}/.well-known/oauth-authorization-server`, ca);
    assert.equal(metadata.status, 200);
    assert.equal(metadata.body.issuer, `https://127.0.0.1:${as}`);
    for (const key of ['authorization_endpoint', 'token_endpoint', 'introspection_endpoint', 'jwks_uri']) {
      assert.ok(String(metadata.body[key]).startsWith(`https://127.0.0.1:${as}/`), `${key} is https`);
    }
    const resource = await getJson(
      `https://127.0.0.1:${gateway}/.well-known/oauth-protected-resource/mcp`,
      ca,
    );
    assert.deepEqual(resource.body.authorization_servers, [`https://127.0.0.1:${as}`]);

    // Ready means the gateway's introspection and revocation stream and the MCP server's JWKS
    // reached the authorization server, over TLS.
    await waitFor(
      async () => (await getJson(`https://127.0.0.1:${gateway}/readyz`, ca)).status === 200,
      'the gateway ready',
    );
    await waitFor(
      async () => (await fetch(`http://127.0.0.1:${mcp}/readyz`)).status === 200,
      'the MCP server ready',
    );

    const plain = await fetch(`http://127.0.0.1:${as}/.well-known/oauth-authorization-server`).then(
      (response) => `HTTP ${response.status}`,
      () => 'no answer',
    );
    assert.equal(plain, 'no answer');
  } finally {
    for (const started of processes.reverse()) {
      started.child.kill('SIGTERM');
      await started.exited;
    }
    rmSync(dir, { recursive: true, force: true });
  }
});
