/**
 * DPoP at the authorization server (RFC 9449): tokens are bound when the token request carries a
 * proof (client credentials, authorization code, refresh), `dpop_jkt` binds the code, nonces are
 * asked for when configured, `required` refuses unbound requests per client class, and the binding
 * never travels into the phantom token or exchanged tokens (only beside the phantom token, for the
 * gateway).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { decodeJwt } from 'jose';
import { gatewaySchema } from '../../src/shared/config/schema.ts';
import {
  startTestAuthorizationServer,
  type TestAuthorizationServer,
} from '../helpers/authorization-server.ts';
import { createDpopKey, type DpopKey, dpopProof } from '../helpers/dpop.ts';
import { authorize, Browser, basic, postForm, redeemCode } from '../helpers/oauth.ts';
import { startTestStack } from '../helpers/stack.ts';
import { JWT_BEARER, workloadAssertion, workloadTokenRequest } from '../helpers/workload.ts';

const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const JWT_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:jwt';
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';
const REDIRECT = 'http://127.0.0.1/callback';
const STOCKS = 'http://localhost:8000/api/stocks';

const secret = (as: TestAuthorizationServer, clientId: string) =>
  readFileSync(path.join(as.dataDir, `secrets/${clientId}.secret`), 'utf8').trim();

const workloadToken = (as: TestAuthorizationServer, headers: Record<string, string> = {}) =>
  workloadTokenRequest(as, headers);

const tokenProof = (as: TestAuthorizationServer, key: DpopKey, nonce?: string) =>
  dpopProof(key, { htm: 'POST', htu: `${as.issuer}/token`, ...(nonce ? { nonce } : {}) });

function introspect(as: TestAuthorizationServer, token: string, accept = 'application/json') {
  return fetch(`${as.issuer}/introspect`, {
    method: 'POST',
    headers: {
      authorization: basic('gatehouse-gateway', secret(as, 'gatehouse-gateway')),
      'content-type': 'application/x-www-form-urlencoded',
      accept,
    },
    body: new URLSearchParams({ token }),
  });
}

async function register(as: TestAuthorizationServer, metadata: Record<string, unknown> = {}) {
  const response = await fetch(`${as.issuer}/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      client_name: 'DPoP agent',
      redirect_uris: [REDIRECT],
      application_type: 'native',
      ...metadata,
    }),
  });
  const body = (await response.json()) as Record<string, unknown>;
  assert.equal(response.status, 201, JSON.stringify(body));
  return body;
}

describe('DPoP-bound tokens (optional, the default)', () => {
  let as: TestAuthorizationServer;
  before(async () => {
    as = await startTestAuthorizationServer({
      refreshTokens: { clients: { cimd: true, publicClients: true } },
    });
  });
  after(() => as.close());

  test("the metadata advertises the DPoP algorithms: the gateway's default ones, asymmetric only", async () => {
    const metadata = (await (await fetch(`${as.issuer}/.well-known/oauth-authorization-server`)).json()) as {
      dpop_signing_alg_values_supported?: string[];
    };
    const gatewayDefault = gatewaySchema.parse({}).dpop.algorithms;
    assert.deepEqual(metadata.dpop_signing_alg_values_supported, gatewayDefault);
    assert.deepEqual(gatewayDefault, ['ES256', 'ES384', 'PS256', 'RS256', 'EdDSA', 'Ed25519']);
  });

  test('client credentials with a proof: a DPoP token bound to the key, cnf only beside the phantom token', async () => {
    const key = await createDpopKey();
    const response = await workloadToken(as, { dpop: await tokenProof(as, key) });
    assert.equal(response.status, 200, response.text);
    assert.equal(response.json.token_type, 'DPoP');
    const token = String(response.json.access_token);

    const json = (await (await introspect(as, token)).json()) as Record<string, unknown>;
    assert.equal(json.active, true);
    assert.equal(json.token_type, 'DPoP');
    assert.deepEqual(json.cnf, { jkt: key.jkt });

    const phantom = await introspect(as, token, 'application/jwt');
    assert.equal(phantom.status, 200);
    assert.equal(phantom.headers.get('gatehouse-dpop-jkt'), key.jkt, 'the binding travels beside it');
    const claims = decodeJwt(await phantom.text());
    assert.equal(claims.cnf, undefined, 'cnf never enters the phantom token (defect 9)');
    assert.equal(claims.token_type, undefined);
  });

  test('a proof with an RSA or Ed25519 key (the gateway accepts them) binds the token too', async () => {
    for (const alg of ['RS256', 'EdDSA'] as const) {
      const key = await createDpopKey(alg);
      const response = await workloadToken(as, { dpop: await tokenProof(as, key) });
      assert.equal(response.status, 200, `${alg}: ${response.text}`);
      const json = (await (await introspect(as, String(response.json.access_token))).json()) as {
        cnf?: unknown;
      };
      assert.deepEqual(json.cnf, { jkt: key.jkt }, alg);
    }
  });

  test('an unbound token has no binding header', async () => {
    const response = await workloadToken(as);
    assert.equal(response.json.token_type, 'Bearer');
    const phantom = await introspect(as, String(response.json.access_token), 'application/jwt');
    assert.equal(phantom.status, 200);
    assert.equal(phantom.headers.get('gatehouse-dpop-jkt'), null);
  });

  test('token exchange of a bound token: the exchanged token carries no cnf; the opaque token itself is refused', async () => {
    const key = await createDpopKey();
    const bound = String((await workloadToken(as, { dpop: await tokenProof(as, key) })).json.access_token);
    const phantom = await (await introspect(as, bound, 'application/jwt')).text();
    const mcpServer = basic('gatehouse-mcp-server', secret(as, 'gatehouse-mcp-server'));
    const exchange = (subject: string, type: string) =>
      postForm(
        `${as.issuer}/token`,
        { grant_type: TOKEN_EXCHANGE, subject_token: subject, subject_token_type: type, audience: STOCKS },
        { authorization: mcpServer },
      );
    const exchanged = await exchange(phantom, JWT_TOKEN_TYPE);
    assert.equal(exchanged.status, 200, exchanged.text);
    assert.equal(exchanged.json.token_type, 'Bearer');
    assert.equal(
      decodeJwt(String(exchanged.json.access_token)).cnf,
      undefined,
      'no cnf in API tokens (defect 9)',
    );

    const refused = await exchange(bound, ACCESS_TOKEN_TYPE);
    assert.equal(refused.status, 400, refused.text);
    assert.equal(refused.json.error, 'invalid_grant');
    assert.equal(refused.json.access_token, undefined);
  });

  test('a proof for another URL or method is invalid_dpop_proof, and nothing is issued', async () => {
    const key = await createDpopKey();
    for (const proof of [
      await dpopProof(key, { htm: 'POST', htu: 'http://evil.example/token' }),
      await dpopProof(key, { htm: 'GET', htu: `${as.issuer}/token` }),
      await dpopProof(key, { htm: 'POST', htu: `${as.issuer}/token`, header: { typ: 'JWT' } }),
    ]) {
      const response = await workloadToken(as, { dpop: proof });
      assert.equal(response.status, 400, response.text);
      assert.equal(response.json.error, 'invalid_dpop_proof');
      assert.equal(response.json.access_token, undefined);
    }
  });

  test('a stale proof is answered with use_dpop_nonce and a fresh nonce (RFC 9449 §8)', async () => {
    const key = await createDpopKey();
    const stale = await dpopProof(key, {
      htm: 'POST',
      htu: `${as.issuer}/token`,
      iat: Math.floor(Date.now() / 1000) - 3600,
    });
    const response = await workloadToken(as, { dpop: stale });
    assert.equal(response.status, 400, response.text);
    assert.equal(response.json.error, 'use_dpop_nonce');
    assert.ok(response.headers.get('dpop-nonce'));
    assert.equal(response.json.access_token, undefined);
  });

  test('a replayed proof is refused', async () => {
    const key = await createDpopKey();
    const proof = await tokenProof(as, key);
    assert.equal((await workloadToken(as, { dpop: proof })).status, 200);
    const replay = await workloadToken(as, { dpop: proof });
    assert.equal(replay.status, 400, replay.text);
    assert.match(String(replay.json.error), /invalid_dpop_proof|invalid_grant/);
    assert.equal(replay.json.access_token, undefined);
  });

  test('code flow: dpop_jkt binds the code, the refresh token stays bound to the key', async () => {
    const client = await register(as, { grant_types: ['authorization_code', 'refresh_token'] });
    const clientId = String(client.client_id);
    const key = await createDpopKey();
    const other = await createDpopKey();
    const browser = new Browser();
    const run = () =>
      authorize({
        issuer: as.issuer,
        clientId,
        redirectUri: REDIRECT,
        scope: 'stocks:read',
        browser,
        extra: { dpop_jkt: key.jkt },
      });

    // The code is bound to dpop_jkt: redeeming it with another key fails, and without a proof too.
    const first = await run();
    const code = first.callback.searchParams.get('code')!;
    const wrongKey = await redeemCode(
      as.issuer,
      { code, verifier: first.verifier, redirectUri: REDIRECT, clientId },
      { dpop: await tokenProof(as, other) },
    );
    assert.equal(wrongKey.status, 400, wrongKey.text);
    assert.equal(wrongKey.json.error, 'invalid_grant');

    const second = await run();
    const noProof = await redeemCode(as.issuer, {
      code: second.callback.searchParams.get('code')!,
      verifier: second.verifier,
      redirectUri: REDIRECT,
      clientId,
    });
    assert.equal(noProof.status, 400, noProof.text);
    assert.equal(noProof.json.error, 'invalid_grant');

    const third = await run();
    const bound = await redeemCode(
      as.issuer,
      {
        code: third.callback.searchParams.get('code')!,
        verifier: third.verifier,
        redirectUri: REDIRECT,
        clientId,
      },
      { dpop: await tokenProof(as, key) },
    );
    assert.equal(bound.status, 200, bound.text);
    assert.equal(bound.json.token_type, 'DPoP');
    const refreshToken = String(bound.json.refresh_token);
    assert.ok(refreshToken);

    const refresh = async (proofKey: DpopKey | undefined) =>
      postForm(
        `${as.issuer}/token`,
        { grant_type: 'refresh_token', refresh_token: refreshToken, client_id: clientId },
        proofKey ? { dpop: await tokenProof(as, proofKey) } : {},
      );
    const stolen = await refresh(other);
    assert.equal(stolen.status, 400, stolen.text);
    assert.equal(stolen.json.error, 'invalid_grant');
    assert.equal(stolen.json.access_token, undefined);
    const refreshed = await refresh(key);
    assert.equal(refreshed.status, 200, refreshed.text);
    assert.equal(refreshed.json.token_type, 'DPoP');
    const json = (await (await introspect(as, String(refreshed.json.access_token))).json()) as {
      cnf?: { jkt?: string };
    };
    assert.equal(json.cnf?.jkt, key.jkt);
  });
});

describe('DPoP required per client class, with nonces', () => {
  let as: TestAuthorizationServer;
  before(async () => {
    as = await startTestAuthorizationServer({
      dpop: { preRegistered: 'required', dynamic: 'required', requireNonce: true },
    });
  });
  after(() => as.close());

  test('a pre-registered workload without a proof is refused with a clear error', async () => {
    const response = await workloadToken(as);
    assert.equal(response.status, 400, response.text);
    assert.equal(response.json.error, 'invalid_request');
    assert.match(String(response.json.error_description), /DPoP proof/);
    assert.equal(response.json.access_token, undefined);
  });

  test('a proof without a nonce gets use_dpop_nonce and a DPoP-Nonce; with it, a bound token', async () => {
    const key = await createDpopKey();
    const first = await workloadToken(as, { dpop: await tokenProof(as, key) });
    assert.equal(first.status, 400, first.text);
    assert.equal(first.json.error, 'use_dpop_nonce');
    const nonce = first.headers.get('dpop-nonce');
    assert.ok(nonce, 'DPoP-Nonce header');
    const second = await workloadToken(as, { dpop: await tokenProof(as, key, nonce) });
    assert.equal(second.status, 200, second.text);
    assert.equal(second.json.token_type, 'DPoP');

    const forged = await workloadToken(as, { dpop: await tokenProof(as, key, 'not-a-nonce') });
    assert.equal(forged.status, 400);
    assert.equal(forged.json.error, 'use_dpop_nonce');
  });

  test('dynamic registrations are registered as DPoP-bound', async () => {
    const client = await register(as);
    assert.equal(client.dpop_bound_access_tokens, true);
  });
});

describe('DPoP algorithms narrowed for the gateway', () => {
  test('the authorization server binds with the gateway’s algorithms only, so no token is bound with one it refuses', async () => {
    const stack = await startTestStack({ gateway: { dpop: { algorithms: ['ES256'] } } });
    try {
      const metadata = (await (
        await fetch(`${stack.issuer}/.well-known/oauth-authorization-server`)
      ).json()) as { dpop_signing_alg_values_supported?: string[] };
      assert.deepEqual(metadata.dpop_signing_alg_values_supported, ['ES256']);
      const key = await createDpopKey('EdDSA');
      const proof = await dpopProof(key, { htm: 'POST', htu: `${stack.issuer}/token` });
      const response = await postForm(
        `${stack.issuer}/token`,
        {
          grant_type: 'client_credentials',
          client_assertion_type: JWT_BEARER,
          client_assertion: await workloadAssertion(stack),
          scope: 'stocks:read',
          resource: stack.mcpUrl,
        },
        { dpop: proof },
      );
      assert.equal(response.status, 400, response.text);
      assert.equal(response.json.error, 'invalid_dpop_proof');
    } finally {
      await stack.close();
    }
  });
});
