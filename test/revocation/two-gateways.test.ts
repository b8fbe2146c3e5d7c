/**
 * Revocation at once, across instances: one authorization server, two gateway processes (the stack's
 * own, in this process, and a second `gatehouse serve gateway` child process). A revoked token stops
 * at both within a second. When the authorization server goes away, each gateway says so in its
 * readiness and fails safe; when it comes back, each reconnects by itself.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { authorize, redeemCode } from '../helpers/oauth.ts';
import { rpc, until } from '../helpers/revocation.ts';
import { freePort, startTestStack, type TestStack } from '../helpers/stack.ts';

const CLI = path.resolve(import.meta.dirname, '../../bin/gatehouse.js');
const REDIRECT = 'http://127.0.0.1/callback';

const readiness = async (base: string) => (await fetch(`${base}/readyz`)).status;

async function agentToken(stack: TestStack): Promise<{ token: string; clientId: string }> {
  const registered = await fetch(`${stack.issuer}/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ redirect_uris: [REDIRECT], application_type: 'native' }),
  });
  const clientId = String(((await registered.json()) as { client_id: string }).client_id);
  const result = await authorize({
    issuer: stack.issuer,
    clientId,
    redirectUri: REDIRECT,
    scope: 'stocks:read',
    resource: stack.mcpUrl,
  });
  const token = await redeemCode(stack.issuer, {
    code: result.callback.searchParams.get('code')!,
    verifier: result.verifier,
    redirectUri: REDIRECT,
    clientId,
    resource: stack.mcpUrl,
  });
  return { token: String(token.json.access_token), clientId };
}

describe('two gateways and one authorization server', () => {
  let stack: TestStack;
  let second: ChildProcess;
  let secondUrl: string;
  const output: string[] = [];

  before(async () => {
    stack = await startTestStack();
    const port = await freePort();
    secondUrl = `http://127.0.0.1:${port}`;
    const config = path.join(stack.dataDir, 'second-gateway.json');
    writeFileSync(
      config,
      JSON.stringify({
        dataDir: stack.dataDir,
        authorizationServer: { issuer: stack.issuer },
        gateway: {
          publicUrl: secondUrl,
          listen: { host: '127.0.0.1', port },
          mcpServerUrl: stack.mcpServerUrl,
          routes: [{ prefix: '/api/stocks', upstream: `${stack.apisUrl}/stocks` }],
        },
      }),
    );
    second = spawn(process.execPath, [CLI, 'serve', 'gateway', '--config', config], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    second.stdout?.on('data', (chunk) => output.push(String(chunk)));
    second.stderr?.on('data', (chunk) => output.push(String(chunk)));
    // A process of its own: starting Node and loading the gateway takes seconds on a busy machine.
    // If it exits instead (its port taken meanwhile, say), say so with what it printed.
    const exited = new Promise<never>((_, reject) =>
      second.once('exit', (code) =>
        reject(new Error(`the second gateway exited (${code}):\n${output.join('')}`)),
      ),
    );
    // Its exit at the end of the suite is expected: only a rejection during the race counts.
    exited.catch(() => {});
    await Promise.race([
      until(async () => (await readiness(secondUrl)) === 200, 'the second gateway hears revocations', 30_000),
      exited,
    ]).catch((error: Error) => {
      throw new Error(`${error.message}\n${output.join('').slice(-2000)}`);
    });
    await until(
      async () => (await readiness(stack.gatewayUrl)) === 200,
      'the first gateway hears revocations',
    );
  });

  after(async () => {
    second?.kill('SIGTERM');
    await new Promise((resolve) => second?.once('exit', resolve));
    await stack?.close();
  });

  test('a revoked token stops at both gateways within a second', async () => {
    const { token, clientId } = await agentToken(stack);
    for (const base of [stack.gatewayUrl, secondUrl]) {
      // Twice each: the second answer comes from the gateway's cache.
      assert.equal((await rpc(base, token)).status, 200);
      assert.equal((await rpc(base, token)).status, 200);
    }
    const revoked = await fetch(`${stack.issuer}/revoke`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token, client_id: clientId }),
    });
    assert.equal(revoked.status, 200);
    const [first, other] = await Promise.all(
      [stack.gatewayUrl, secondUrl].map((base) =>
        until(async () => (await rpc(base, token)).status === 401, `refused at ${base}`, 3000),
      ),
    );
    assert.ok(first! < 1000, `first gateway: ${first} ms`);
    assert.ok(other! < 1000, `second gateway: ${other} ms`);
  });

  test('without the authorization server, readiness says degraded and nothing is let through; then it recovers', async () => {
    const { token } = await agentToken(stack);
    assert.equal((await rpc(secondUrl, token)).status, 200);
    await stack.running.authorizationServer.close();
    await until(
      async () => (await readiness(secondUrl)) === 503,
      'the second gateway reports degraded',
      3000,
    );
    const body = (await (await fetch(`${secondUrl}/readyz`)).json()) as {
      status: string;
      revocations: { connected: boolean };
    };
    assert.equal(body.status, 'degraded');
    assert.equal(body.revocations.connected, false);
    // Its cache was dropped: the token cannot be checked, so the request fails closed.
    const closed = await rpc(secondUrl, token);
    assert.equal(closed.status, 503);
    assert.ok(Number(closed.headers.get('retry-after')) > 0);
    assert.ok(output.join('').includes('revocation events unavailable'), 'said in its log');

    // Everything comes back; the child process is not restarted.
    await stack.restart();
    await until(
      async () => (await readiness(secondUrl)) === 200,
      'the second gateway reconnects by itself',
      8000,
    );
    assert.equal((await rpc(secondUrl, token)).status, 200);
  });
});
