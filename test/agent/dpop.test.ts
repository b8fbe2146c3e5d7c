/**
 * DPoP (RFC 9449, MCP SEP-1932) from the agent's side, through the whole stack: the real
 * authorization server (oidc-provider with DPoP on), the gateway verifying every proof (with nonces
 * required) and the MCP server: the authorization request carries `dpop_jkt`, every token request a proof,
 * and the tokens come back `token_type: DPoP`, bound (introspection shows `cnf.jkt` = the thumbprint
 * of the key in the agent's store); every MCP request carries a fresh proof with `ath`, the server's
 * nonce is taken, and neither the key nor a proof nor a token ever shows in the trace. The key
 * outlives the process: a later run refreshes the stored bound token with a proof from it.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { calculateJwkThumbprint, type JWK } from 'jose';
import { createAgent } from '../../src/agent/index.ts';
import { basic } from '../helpers/oauth.ts';
import { startTestStack, type TestStack } from '../helpers/stack.ts';
import { parseResult, readStore, secretsIn, storeFile, userAt } from './support.ts';

/** Introspection as the gateway does it: what the authorization server says of a token. */
async function introspect(stack: TestStack, token: string): Promise<Record<string, unknown>> {
  const secret = readFileSync(path.join(stack.dataDir, 'secrets/gatehouse-gateway.secret'), 'utf8').trim();
  const response = await fetch(`${stack.issuer}/introspect`, {
    method: 'POST',
    headers: {
      authorization: basic('gatehouse-gateway', secret),
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: new URLSearchParams({ token }),
  });
  return (await response.json()) as Record<string, unknown>;
}

/** The gateway's request log lines for /mcp since `from`. */
function gatewayRequests(stack: TestStack, from = 0): Array<Record<string, unknown>> {
  return stack.logs
    .slice(from)
    .map((line) => JSON.parse(line) as Record<string, unknown>)
    .filter(
      // The gateway's request lines are the ones naming an upstream and what it made of the credential.
      (record) => record.message === 'request' && record.upstream === 'mcp-server' && record.path === '/mcp',
    );
}

/** A DPoP proof or any other JWS: none may show in a trace. */
const JWS = /eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,}/;

interface StoredFile {
  authorizationServers: Record<
    string,
    {
      registration?: { client_id: string };
      tokens: Record<string, { access_token: string; token_type: string; expires_at?: number }>;
      dpop_keys?: Record<string, { alg: string; private_jwk: JWK }>;
    }
  >;
}

const publicThumbprint = ({ kty, crv, x, y }: JWK) => calculateJwkThumbprint({ kty, crv, x, y } as JWK);

describe('the agent with DPoP, through the whole stack', () => {
  let stack: TestStack;
  before(async () => {
    stack = await startTestStack({
      gateway: { dpop: { requireNonce: true } },
      authorizationServer: {
        refreshTokens: { clients: { cimd: true, publicClients: true } },
      },
    });
  });
  after(() => stack.close());

  test('for a user: bound tokens, proofs on every request, step-up and a refresh in a later run', async () => {
    const store = storeFile();
    const user = userAt();
    const trace: string[] = [];
    const run = () =>
      createAgent({
        serverUrl: stack.mcpUrl,
        storePath: store,
        openUrl: user.openUrl,
        trace: (line) => trace.push(line),
      });
    const agent = run();
    try {
      parseResult(await agent.callTool('list_stocks'));
      const order = parseResult<{ status: string }>(
        await agent.callTool('place_order', { symbol: 'SAP', side: 'buy', quantity: 1 }),
      );
      assert.equal(order.status, 'accepted');
      assert.equal(user.plays.length, 2, 'the sign-in and the step-up');
      assert.equal(agent.identity()?.tokenType, 'DPoP');
    } finally {
      await agent.close();
    }

    const file = readStore(store) as unknown as StoredFile;
    const entry = file.authorizationServers[stack.issuer]!;
    const clientId = entry.registration!.client_id;
    const key = entry.dpop_keys?.[clientId];
    assert.ok(key, 'one DPoP key for the registration, in the store');
    assert.equal(key.alg, 'ES256');
    assert.equal(typeof key.private_jwk.d, 'string');
    const jkt = await publicThumbprint(key.private_jwk);
    const tokens = Object.values(entry.tokens)[0]!;
    assert.equal(tokens.token_type, 'DPoP');
    const introspection = (await introspect(stack, tokens.access_token)) as {
      active: boolean;
      cnf?: { jkt: string };
    };
    assert.equal(introspection.active, true);
    assert.equal(introspection.cnf?.jkt, jkt, 'the token is bound to the stored key');

    const text = trace.join('\n');
    // RFC 9449 §10: both authorization requests (sign-in and step-up) bound the code to the key.
    assert.equal(
      text.match(new RegExp(`dpop_jkt=${jkt}`, 'g'))?.length,
      2,
      'dpop_jkt on each pushed request',
    );
    assert.match(text, /grant_type=authorization_code/);
    assert.match(text, /authorization: DPoP \[redacted\]/);
    assert.match(text, /dpop: \[redacted\]/);
    assert.doesNotMatch(text, /authorization: Bearer/, 'a bound token never goes as Bearer');
    const requests = gatewayRequests(stack);
    assert.deepEqual(
      requests.filter((r) => r.error && r.error !== 'use_dpop_nonce').map((r) => r.error),
      [],
      'every proof was valid, none replayed (the gateway refuses a reused jti)',
    );
    const verified = requests.filter((r) => r.bearer === 'phantom').length;
    assert.ok(verified >= 3, `${verified} verified requests`);
    assert.equal(
      requests.filter((r) => r.error === 'use_dpop_nonce').length,
      1,
      'the nonce was asked for once, then kept',
    );

    // A later run: the stored token has expired; the refresh proves possession of the same key (§5).
    const expired = readStore(store) as unknown as StoredFile;
    for (const held of Object.values(expired.authorizationServers[stack.issuer]!.tokens)) held.expires_at = 1;
    writeFileSync(store, JSON.stringify(expired), { mode: 0o600 });
    const before = { plays: user.plays.length, trace: trace.length };
    const later = run();
    try {
      parseResult(await later.callTool('list_stocks'));
    } finally {
      await later.close();
    }
    assert.equal(user.plays.length, before.plays, 'no sign-in');
    assert.match(trace.slice(before.trace).join('\n'), /grant_type=refresh_token/);
    const refreshed = Object.values(
      (readStore(store) as unknown as StoredFile).authorizationServers[stack.issuer]!.tokens,
    )[0]!;
    assert.notEqual(refreshed.access_token, tokens.access_token);
    assert.equal(refreshed.token_type, 'DPoP');
    const again = (await introspect(stack, refreshed.access_token)) as { cnf?: { jkt: string } };
    assert.equal(again.cnf?.jkt, jkt, 'bound to the same key');

    // Nothing secret in the trace: tokens, the private key, any proof, the codes.
    const all = trace.join('\n');
    const secrets = [
      ...secretsIn(store),
      ...user.plays.map((play) => play.callback.searchParams.get('code')!),
    ];
    assert.ok(secrets.includes(String(key.private_jwk.d)), 'the key is among the secrets checked');
    for (const secret of secrets) assert.ok(!all.includes(secret), 'no secret in the trace');
    assert.doesNotMatch(all, JWS, 'no proof (nor any other signed token) in the trace');
    assert.ok(
      !stack.logs.some((line) => secrets.some((secret) => line.includes(secret))),
      'nor in server logs',
    );
  });

  test('as a workload: client credentials with a proof get a bound token', async () => {
    const store = storeFile();
    const trace: string[] = [];
    const agent = createAgent({
      serverUrl: stack.mcpUrl,
      storePath: store,
      clientId: 'example-workload',
      privateKeyFile: path.join(stack.dataDir, 'secrets/example-workload.private-key.json'),
      openUrl: () => {
        throw new Error('a workload never opens a browser');
      },
      trace: (line) => trace.push(line),
    });
    try {
      parseResult(await agent.callTool('list_stocks'));
      assert.equal(agent.identity()?.tokenType, 'DPoP');
    } finally {
      await agent.close();
    }
    const entry = (JSON.parse(readFileSync(store, 'utf8')) as StoredFile).authorizationServers[stack.issuer]!;
    const key = entry.dpop_keys?.['example-workload'];
    assert.ok(key, 'a key for the pre-registered client too');
    const tokens = Object.values(entry.tokens)[0]!;
    const introspection = (await introspect(stack, tokens.access_token)) as {
      cnf?: { jkt: string };
      client_id: string;
    };
    assert.equal(introspection.client_id, 'example-workload');
    assert.equal(introspection.cnf?.jkt, await publicThumbprint(key.private_jwk));
    assert.match(trace.join('\n'), /grant_type=client_credentials/);
    for (const secret of secretsIn(store))
      assert.ok(!trace.join('\n').includes(secret), 'no secret in the trace');
  });
});
