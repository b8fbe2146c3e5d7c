/**
 * Review session 2 of the revocation and DPoP changes (fcd2aaf..721ba72): cases that failed, each
 * now refused.
 *
 * - Token exchange turned the phantom token of a client deleted with RFC 7592 into an API token:
 *   the deletion removed the client record only (oidc-provider keeps its grants and tokens). Now
 *   the deletion removes them too, and token exchange refuses a subject whose client was deleted
 *   at or after the token was issued (the revocation log's `client` events).
 * - An introspection (gateway) or token exchange (MCP server) that was under way when a revocation
 *   arrived was not cached, but it was still shared: a request that arrived after the revocation
 *   was heard joined it and was let through with the answer from before. It is no longer shared.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createIntrospectionCache } from '../../src/gateway/introspection-cache.ts';
import type { Introspection } from '../../src/gateway/introspection-client.ts';
import { createTokenExchangeClient } from '../../src/mcp-server/token-exchange-client.ts';
import { tokenHash } from '../../src/shared/jwt.ts';
import { basic, postForm, toolHeader, userToken } from '../helpers/oauth.ts';
import { internalSecret, phantomFor, rpc, until } from '../helpers/revocation.ts';
import { startTestStack, type TestStack } from '../helpers/stack.ts';

const REDIRECT = 'http://127.0.0.1/callback';

const secretOf = internalSecret;

function exchangeAtStocks(stack: TestStack, subjectToken: string, type = 'jwt') {
  return postForm(
    `${stack.issuer}/token`,
    {
      grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
      subject_token: subjectToken,
      subject_token_type: `urn:ietf:params:oauth:token-type:${type}`,
      audience: `${stack.gatewayUrl}/api/stocks`,
    },
    {
      authorization: basic('gatehouse-mcp-server', secretOf(stack, 'gatehouse-mcp-server')),
      ...toolHeader('stocks'),
    },
  );
}

describe('a client deleted with RFC 7592', () => {
  let stack: TestStack;
  before(async () => {
    stack = await startTestStack();
  });
  after(() => stack.close());

  test('its phantom token is refused by token exchange, as its opaque token is by introspection', async () => {
    const registered = await fetch(`${stack.issuer}/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ redirect_uris: [REDIRECT], application_type: 'native' }),
    });
    assert.equal(registered.status, 201);
    const client = (await registered.json()) as {
      client_id: string;
      registration_client_uri: string;
      registration_access_token: string;
    };
    const { token } = await userToken({
      issuer: stack.issuer,
      clientId: client.client_id,
      redirectUri: REDIRECT,
      scope: 'stocks:read',
      resource: stack.mcpUrl,
    });
    const opaque = String(token.json.access_token);
    const phantom = await phantomFor(stack, opaque);
    assert.equal((await exchangeAtStocks(stack, phantom)).status, 200, 'exchanged before the deletion');

    const deleted = await fetch(client.registration_client_uri, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${client.registration_access_token}` },
    });
    assert.equal(deleted.status, 204);
    // The gateway and the MCP server have heard it: the token is dead everywhere they look.
    await until(async () => (await rpc(stack.gatewayUrl, opaque)).status === 401, 'the gateway refuses');
    await until(
      async () => (await rpc(stack.mcpServerUrl, phantom)).status === 401,
      'the MCP server refuses',
    );

    // Yet the MCP server's own credentials still turn the phantom token into an API token.
    const exchanged = await exchangeAtStocks(stack, phantom);
    assert.equal(
      exchanged.status,
      400,
      `a deleted client's phantom token was exchanged (HTTP ${exchanged.status})`,
    );
    assert.equal(exchanged.json.error, 'invalid_grant');
    // And its opaque token (unbound) as an access_token subject.
    const opaqueExchange = await exchangeAtStocks(stack, opaque, 'access_token');
    assert.equal(
      opaqueExchange.status,
      400,
      `a deleted client's opaque token was exchanged (HTTP ${opaqueExchange.status})`,
    );
  });
});

/** A promise the test settles by hand. */
function deferred<T>() {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

describe('work under way when a revocation arrives', () => {
  test('gateway: a request after the revocation was heard does not join an introspection started before it', async () => {
    const cache = createIntrospectionCache({ maxSeconds: 30, maxEntries: 10 });
    const exp = Math.floor(Date.now() / 1000) + 600;
    const answerBefore = deferred<Introspection>();
    let calls = 0;
    // Introspection 1: the authorization server answers as of before the revocation, slowly.
    const first = cache.lookup('the-token', () => {
      calls += 1;
      return answerBefore.promise;
    });
    // The revocation is heard while it is under way.
    cache.dropToken(tokenHash('the-token'));
    // A request that arrives after that must be introspected afresh (and is told: inactive).
    const second = cache.lookup('the-token', async () => {
      calls += 1;
      return { active: false };
    });
    answerBefore.resolve({ active: true, jwt: 'h.p.s', exp });
    await first;
    const { result, source } = await second;
    assert.equal(calls, 2, `introspected afresh after the revocation (source: ${source})`);
    assert.equal(result.active, false, 'the revoked token is let through with the answer from before');
  });

  test('MCP server: a tool call after the revocation was heard does not join an exchange started before it', async () => {
    const answerBefore = deferred<Response>();
    let calls = 0;
    const exchange = createTokenExchangeClient({
      tokenEndpoint: 'http://as.example/token',
      clientId: 'gatehouse-mcp-server',
      clientSecret: 'the-secret',
      maxEntries: 100,
      refreshBeforeSeconds: 30,
      timeoutMs: 5000,
      fetch: (async () => {
        calls += 1;
        if (calls === 1) return answerBefore.promise;
        return Response.json({ error: 'invalid_grant', error_description: 'revoked' }, { status: 400 });
      }) as typeof fetch,
    });
    const request = {
      subjectToken: 'phantom.jwt.token',
      audience: 'http://localhost:8000/api/stocks',
      subject: {
        grantId: 'grant-1',
        sub: 'alice',
        clientId: 'agent',
        expiresAt: Math.floor(Date.now() / 1000) + 600,
        scopes: ['stocks:read'],
      },
    };
    const first = exchange.exchange(request);
    exchange.dropGrant('grant-1');
    const second = exchange.exchange(request).then(
      (token) => ({ ok: true as const, token }),
      (error: unknown) => ({ ok: false as const, error }),
    );
    answerBefore.resolve(
      Response.json({
        access_token: 'exchanged-before-revocation',
        issued_token_type: 'urn:ietf:params:oauth:token-type:access_token',
        token_type: 'Bearer',
        expires_in: 300,
      }),
    );
    await first;
    const outcome = await second;
    assert.equal(calls, 2, 'exchanged afresh after the revocation');
    assert.equal(outcome.ok, false, 'the revoked grant got an API token from before its revocation');
  });
});
