/**
 * Review of issue 7 ("revocation at once"): cases where a revoked token still worked, found by an
 * outside review against real servers, now each refused.
 *
 * - A workload's phantom JWT outlived the revocation of its opaque token at the MCP server: it now
 *   carries `token_hash`, which the MCP server's revocation list and token exchange check.
 * - The MCP server's list of revoked grants lived in memory only: a restarted one reconnects
 *   without Last-Event-ID, and now hears every revocation still kept after its `reset`.
 * - A revocation stream that went silent while its TCP connection stayed up was noticed after 25 s,
 *   and until then the caches served a revoked token: now a heartbeat comes every half second, and
 *   caches unheard from for 1.5 s reuse nothing older than a second.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { basic, postForm, userToken } from '../helpers/oauth.ts';
import { internalSecret, phantomFor, rpc, until } from '../helpers/revocation.ts';
import { startTestStack, type TestStack } from '../helpers/stack.ts';
import { JWT_BEARER, workloadAssertion } from '../helpers/workload.ts';

const REDIRECT = 'http://127.0.0.1/callback';

async function workloadToken(stack: TestStack): Promise<string> {
  const response = await postForm(`${stack.issuer}/token`, {
    grant_type: 'client_credentials',
    client_assertion_type: JWT_BEARER,
    client_assertion: await workloadAssertion(stack),
    scope: 'stocks:read',
    resource: stack.mcpUrl,
  });
  assert.equal(response.status, 200, response.text);
  return String(response.json.access_token);
}

async function revokeWorkloadToken(stack: TestStack, token: string): Promise<void> {
  const response = await postForm(`${stack.issuer}/revoke`, {
    token,
    client_assertion_type: JWT_BEARER,
    client_assertion: await workloadAssertion(stack),
  });
  assert.equal(response.status, 200, response.text);
}

/** Token exchange of a phantom token for the stocks API, as the MCP server does (its own credentials). */
async function exchangeAtStocks(stack: TestStack, phantom: string) {
  const secret = internalSecret(stack, 'gatehouse-mcp-server');
  return postForm(
    `${stack.issuer}/token`,
    {
      grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
      subject_token: phantom,
      subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
      audience: `${stack.gatewayUrl}/api/stocks`,
    },
    { authorization: basic('gatehouse-mcp-server', secret) },
  );
}

describe('revoked tokens at the MCP server directly', () => {
  let stack: TestStack;
  before(async () => {
    stack = await startTestStack();
  });
  after(() => stack.close());

  test("a revoked workload token's phantom JWT is refused by the MCP server and by token exchange", async () => {
    const token = await workloadToken(stack);
    const phantom = await phantomFor(stack, token);
    assert.equal((await rpc(stack.mcpServerUrl, phantom)).status, 200, 'accepted before revocation');
    assert.equal((await exchangeAtStocks(stack, phantom)).status, 200, 'exchanged before revocation');
    await revokeWorkloadToken(stack, token);
    // The gateway has heard it: the opaque token is refused there.
    await until(async () => (await rpc(stack.gatewayUrl, token)).status === 401, 'the gateway refuses');
    await new Promise((resolve) => setTimeout(resolve, 500));
    const direct = await rpc(stack.mcpServerUrl, phantom);
    assert.equal(direct.status, 401, 'the phantom token of a revoked token is refused everywhere');
    const call = await rpc(stack.mcpServerUrl, phantom, 'tools/call');
    assert.equal(call.status, 401);
    // Nor can anyone holding the MCP server's credentials exchange it for an API token.
    const exchanged = await exchangeAtStocks(stack, phantom);
    assert.equal(exchanged.status, 400, exchanged.text);
    assert.equal(exchanged.json.error, 'invalid_grant');
  });

  test("a live workload token's phantom JWT names its opaque token by hash, and exchanges", async () => {
    const token = await workloadToken(stack);
    const phantom = await phantomFor(stack, token);
    const claims = JSON.parse(Buffer.from(phantom.split('.')[1]!, 'base64url').toString()) as Record<
      string,
      unknown
    >;
    assert.equal(claims.token_hash, createHash('sha256').update(token).digest('base64url'));
    assert.equal(claims.grant_id, undefined, 'a workload token has no grant');
    const exchanged = await exchangeAtStocks(stack, phantom);
    assert.equal(exchanged.status, 200, exchanged.text);
    const apiClaims = JSON.parse(
      Buffer.from(String(exchanged.json.access_token).split('.')[1]!, 'base64url').toString(),
    ) as Record<string, unknown>;
    assert.equal(apiClaims.token_hash, undefined, 'never carried into an API token');
  });

  test("a revoked grant's phantom JWT stays refused after the MCP server restarts", async () => {
    const registered = await fetch(`${stack.issuer}/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ redirect_uris: [REDIRECT], application_type: 'native' }),
    });
    const clientId = String(((await registered.json()) as { client_id: string }).client_id);
    const { token } = await userToken({
      issuer: stack.issuer,
      clientId,
      redirectUri: REDIRECT,
      scope: 'stocks:read',
      resource: stack.mcpUrl,
    });
    const opaque = String(token.json.access_token);
    const phantom = await phantomFor(stack, opaque);
    assert.equal((await rpc(stack.mcpServerUrl, phantom)).status, 200);
    const revoked = await postForm(`${stack.issuer}/revoke`, { token: opaque, client_id: clientId });
    assert.equal(revoked.status, 200);
    await until(async () => (await rpc(stack.mcpServerUrl, phantom)).status === 401, 'refused at once');
    await stack.restart();
    await until(
      async () => (await fetch(`${stack.mcpServerUrl}/readyz`)).status === 200,
      'the MCP server hears revocations again',
    );
    assert.equal((await rpc(stack.mcpServerUrl, phantom)).status, 401, 'still revoked after a restart');
  });
});

/**
 * A TCP proxy in front of the authorization server that can hold back what the revocation stream
 * sends while its connection stays open: a stream gone silent (a buffering proxy, a stalled peer).
 */
async function startHoldingProxy(target: () => number | undefined) {
  let holding = false;
  const streams: Array<{ client: Socket; held: Buffer[] }> = [];
  const server: Server = createServer((client) => {
    const port = target();
    if (!port) {
      client.destroy();
      return;
    }
    const upstream = connect(port, '127.0.0.1');
    const state = { client, held: [] as Buffer[], stream: false };
    client.on('data', (data: Buffer) => {
      // The stream only: the quiet stream's own question (/latest) goes through.
      if (data.toString('latin1').startsWith('GET /events/revocations ')) {
        state.stream = true;
        streams.push(state);
      }
      upstream.write(data);
    });
    upstream.on('data', (data: Buffer) => {
      if (state.stream && holding) state.held.push(data);
      else client.write(data);
    });
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    client.on('error', () => {});
    upstream.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    hold() {
      holding = true;
    },
    release() {
      holding = false;
      for (const stream of streams) for (const data of stream.held.splice(0)) stream.client.write(data);
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const stream of streams) stream.client.destroy();
        server.close(() => resolve());
      }),
  };
}

describe('a revocation stream that goes silent with its connection up', () => {
  let stack: TestStack | undefined;
  let proxy: Awaited<ReturnType<typeof startHoldingProxy>>;
  before(async () => {
    proxy = await startHoldingProxy(() => (stack ? Number(new URL(stack.issuer).port) : undefined));
    // Both listeners behind the proxy: the MCP server's revocation list must not mask the gateway's cache.
    stack = await startTestStack({
      gateway: { authorizationServerUrl: proxy.url },
      mcpServer: { authorizationServerUrl: proxy.url },
    });
    await until(
      async () => (await fetch(`${stack!.gatewayUrl}/readyz`)).status === 200,
      'the gateway hears revocations through the proxy',
      10_000,
    );
  });
  after(async () => {
    proxy.release();
    await stack?.close();
    await proxy.close();
  });

  test('a revoked token stops working at the gateway within two seconds, though the stream stalls', async () => {
    const current = stack!;
    const token = await workloadToken(current);
    assert.equal((await rpc(current.gatewayUrl, token)).status, 200, 'cached as active');
    proxy.hold();
    await revokeWorkloadToken(current, token);
    await new Promise((resolve) => setTimeout(resolve, 2000));
    const after = await rpc(current.gatewayUrl, token);
    assert.equal(after.status, 401, 'refused two seconds after the revocation');
  });

  test('while the stream stalls, a tool call exchanges afresh: a revoked token gets no API token', async () => {
    const current = stack!;
    proxy.release();
    await until(
      async () => (await fetch(`${current.gatewayUrl}/readyz`)).status === 200,
      'the streams flow again',
    );
    await new Promise((resolve) => setTimeout(resolve, 1600));
    const token = await workloadToken(current);
    const phantom = await phantomFor(current, token);
    const call = () =>
      fetch(`${current.mcpServerUrl}/mcp`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          'mcp-protocol-version': '2025-11-25',
          authorization: `Bearer ${phantom}`,
        },
        body: JSON.stringify({
          jsonrpc: '2.0',
          id: 2,
          method: 'tools/call',
          params: { name: 'list_stocks', arguments: {} },
        }),
      }).then(async (response) => ({ status: response.status, text: await response.text() }));
    const first = await call();
    assert.equal(first.status, 200);
    assert.doesNotMatch(first.text, /"isError":true/, 'the call worked, its exchanged token is cached');
    proxy.hold();
    await revokeWorkloadToken(current, token);
    await new Promise((resolve) => setTimeout(resolve, 2000));
    const second = await call();
    assert.match(second.text, /"isError":true/, 'the exchange was asked again, and refused');
  });
});
