/**
 * Attacks on token exchange (RFC 8693): a caller that is not the MCP server, a public caller, a
 * target that is not a configured API, a scope wider than the subject's, an exchanged or revoked or
 * expired subject, an actor the caller names itself, and a lifetime the caller asks for.
 *
 * Already covered elsewhere and not repeated: the gateway and the agent itself may not exchange; a
 * missing or garbage subject, a bad subject_token_type; JWT subjects signed by another key, unsigned,
 * for another audience, or already exchanged; a revoked opaque subject; a scope wider than the
 * subject's; an unknown audience or the MCP server as audience; a 60-second subject
 * (test/authorization-server/tokens.test.ts).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { decodeJwt } from 'jose';
import type { TestAuthorizationServer } from '../helpers/authorization-server.ts';
import { Browser, toolHeader } from '../helpers/oauth.ts';
import { declareLeakCheck, SecretLedger } from '../helpers/secret-leaks.ts';
import {
  ACCESS_TOKEN_TYPE,
  assertOAuthError,
  basicAuth,
  CUSTOMERS,
  clientAssertion,
  clientAuth,
  introspect,
  JWT_BEARER,
  JWT_TOKEN_TYPE,
  MCP_SERVER,
  post,
  redeem,
  registerOk,
  STOCKS,
  signIn,
  startAttackServer,
  TOKEN_EXCHANGE,
  type TokenResponse,
  WORKLOAD,
  workloadKey,
} from './support/authorization-server.ts';

const REDIRECT = 'http://127.0.0.1/callback';
const ledger = new SecretLedger();
const servers: TestAuthorizationServer[] = [];
after(async () => {
  for (const server of servers) await server.close();
});

async function start(overrides: Record<string, unknown> = {}) {
  const as = await startAttackServer(ledger, overrides);
  servers.push(as);
  return as;
}

/** A user's opaque MCP token, for a client of its own (so revoking it touches nothing else). */
async function userToken(as: TestAuthorizationServer, scope: string, email = 'alice@example.com') {
  const clientId = String(
    (await registerOk(ledger, as.issuer, { client_name: 'Exchange victim' })).client_id,
  );
  const result = await signIn(ledger, {
    issuer: as.issuer,
    clientId,
    redirectUri: REDIRECT,
    scope,
    email,
    browser: new Browser(),
  });
  const token = await redeem(ledger, as.issuer, {
    code: result.callback.searchParams.get('code')!,
    verifier: result.verifier,
    redirectUri: REDIRECT,
    clientId,
  });
  assert.equal(token.status, 200, token.text);
  return { clientId, accessToken: String(token.json.access_token) };
}

function exchange(
  as: TestAuthorizationServer,
  fields: Record<string, string | undefined>,
  headers: Record<string, string> = {},
): Promise<TokenResponse> {
  // As the MCP server names the tool a call is for; a caller's own header wins.
  return post(
    ledger,
    `${as.issuer}/token`,
    { grant_type: TOKEN_EXCHANGE, ...fields },
    { ...toolHeader(fields.audience ?? fields.resource), ...headers },
  );
}

let as: TestAuthorizationServer;
let mcpServer: string;
let alice: { clientId: string; accessToken: string };
let bob: { clientId: string; accessToken: string };

before(async () => {
  as = await start({ dynamicRegistration: { rateLimit: { max: 1000, windowSeconds: 60 } } });
  mcpServer = clientAuth(ledger, as, MCP_SERVER);
  alice = await userToken(as, 'stocks:read');
  bob = await userToken(as, 'stocks:read customers:read', 'bob@example.com');
});

/** A valid exchange of alice's token for the stocks API, with `fields` changed. */
const aliceFor = (
  fields: Record<string, string | undefined> = {},
  headers: Record<string, string> = { authorization: mcpServer },
) =>
  exchange(
    as,
    { subject_token: alice.accessToken, subject_token_type: ACCESS_TOKEN_TYPE, audience: STOCKS, ...fields },
    headers,
  );

test("control: the MCP server exchanges alice's token for the stocks API", async () => {
  const response = await aliceFor();
  assert.equal(response.status, 200, response.text);
  assert.equal(response.json.scope, 'stocks.read');
});

describe('the wrong caller', () => {
  test('the workload (client credentials only) may not exchange: unauthorized_client, nothing issued', async () => {
    const assertion = await clientAssertion(ledger, await workloadKey(as), {
      clientId: WORKLOAD,
      audience: as.issuer,
    });
    const response = await aliceFor({ client_assertion_type: JWT_BEARER, client_assertion: assertion }, {});
    assertOAuthError(response, 400, 'unauthorized_client');
  });

  test('a self-registered confidential client may not exchange: unauthorized_client', async () => {
    const registered = await registerOk(ledger, as.issuer, {
      client_name: 'Would-be exchanger',
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: ['authorization_code', TOKEN_EXCHANGE],
    });
    assert.deepEqual(registered.grant_types, ['authorization_code'], 'the grant is not even registered');
    const response = await aliceFor(
      {},
      { authorization: basicAuth(ledger, String(registered.client_id), String(registered.client_secret)) },
    );
    assertOAuthError(response, 400, 'unauthorized_client');
  });

  test('the MCP server with a wrong secret: invalid_client (401)', async () => {
    const response = await aliceFor({}, { authorization: basicAuth(ledger, MCP_SERVER, 'x'.repeat(43)) });
    assertOAuthError(response, 401, 'invalid_client');
  });

  test("the MCP server's credentials with another client_id in the body: invalid_request", async () => {
    const response = await aliceFor({ client_id: alice.clientId });
    assertOAuthError(response, 400, 'invalid_request');
  });
});

describe('a public caller', () => {
  test("naming the MCP server's client_id without its secret: invalid_client (401)", async () => {
    const response = await aliceFor({ client_id: MCP_SERVER }, {});
    assertOAuthError(response, 401, 'invalid_client');
  });

  test("naming the MCP server's client_id with an empty client_secret: invalid_client (401)", async () => {
    const response = await aliceFor({ client_id: MCP_SERVER, client_secret: '' }, {});
    assertOAuthError(response, 401, 'invalid_client');
  });
});

describe('an audience that is not a configured API', () => {
  for (const audience of [
    'http://LOCALHOST:8000/api/stocks',
    'http://localhost:8000/api/stocks/..',
    'http://localhost:8000/api/stocks/extra',
    'http://localhost:8000/api/stocks?admin=1',
    'http://localhost:8000/api/stocks#x',
    'https://localhost:8000/api/stocks',
    'stocks',
  ]) {
    test(`${audience}: invalid_target, nothing issued`, async () => {
      assertOAuthError(await aliceFor({ audience }), 400, 'invalid_target');
    });
  }

  test('resource and audience naming different APIs: invalid_target', async () => {
    assertOAuthError(await aliceFor({ audience: STOCKS, resource: CUSTOMERS }), 400, 'invalid_target');
  });

  test('two audience parameters: invalid_request', async () => {
    const body = new URLSearchParams({
      grant_type: TOKEN_EXCHANGE,
      subject_token: alice.accessToken,
      subject_token_type: ACCESS_TOKEN_TYPE,
    });
    body.append('audience', STOCKS);
    body.append('audience', CUSTOMERS);
    const response = await fetch(`${as.issuer}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: mcpServer },
      body,
    });
    const text = await response.text();
    assertOAuthError(
      { status: response.status, headers: response.headers, text, json: JSON.parse(text) },
      400,
      'invalid_request',
    );
  });
});

describe("a scope wider than the subject's", () => {
  test('a scope of another API (customers.read at the stocks API): invalid_scope', async () => {
    assertOAuthError(
      await exchange(
        as,
        {
          subject_token: bob.accessToken,
          subject_token_type: ACCESS_TOKEN_TYPE,
          audience: STOCKS,
          scope: 'customers.read',
        },
        { authorization: mcpServer },
      ),
      400,
      'invalid_scope',
    );
  });

  test('the MCP scope name instead of the API scope (stocks:read): invalid_scope', async () => {
    assertOAuthError(await aliceFor({ scope: 'stocks:read' }), 400, 'invalid_scope');
  });

  test('a subject of the customers scope asking the stocks API: invalid_scope, not an empty token', async () => {
    const customersOnly = await userToken(as, 'customers:read', 'bob@example.com');
    assertOAuthError(
      await exchange(
        as,
        { subject_token: customersOnly.accessToken, subject_token_type: ACCESS_TOKEN_TYPE, audience: STOCKS },
        { authorization: mcpServer },
      ),
      400,
      'invalid_scope',
    );
  });
});

describe('a revoked or expired subject', () => {
  test('a phantom JWT whose grant was revoked (still cached at the gateway) is invalid_grant', async () => {
    const victim = await userToken(as, 'stocks:read');
    const phantom = await introspect(ledger, as, victim.accessToken, undefined, 'application/jwt');
    assert.equal(phantom.status, 200);
    const jwt = phantom.text;
    const revoked = await post(ledger, `${as.issuer}/revoke`, {
      token: victim.accessToken,
      client_id: victim.clientId,
    });
    assert.equal(revoked.status, 200);
    const response = await exchange(
      as,
      { subject_token: jwt, subject_token_type: JWT_TOKEN_TYPE, audience: STOCKS },
      { authorization: mcpServer },
    );
    assertOAuthError(response, 400, 'invalid_grant');
    assert.ok(as.audit('token.exchange').some((r) => r.outcome === 'denied' && r.reason === 'grant revoked'));
  });

  describe('with three-second MCP tokens', () => {
    let short: TestAuthorizationServer;
    let token: { clientId: string; accessToken: string };
    let phantom: string;
    before(async () => {
      short = await start({ resources: { mcp: { accessTokenTtlSeconds: 3 } } });
      token = await userToken(short, 'stocks:read');
      const introspected = await introspect(ledger, short, token.accessToken);
      assert.equal(introspected.json.active, true, 'alive when its phantom JWT is taken');
      phantom = (await introspect(ledger, short, token.accessToken, undefined, 'application/jwt')).text;
      assert.equal(phantom.split('.').length, 3);
      // Wait until the expiry (whole seconds) has passed.
      await sleep(Number(introspected.json.exp) * 1000 - Date.now() + 1100);
    });

    for (const [name, type] of [
      ['the expired opaque token', ACCESS_TOKEN_TYPE],
      ['its expired phantom JWT', JWT_TOKEN_TYPE],
    ] as const) {
      test(`${name} as subject: invalid_grant, nothing issued`, async () => {
        const response = await exchange(
          short,
          {
            subject_token: type === JWT_TOKEN_TYPE ? phantom : token.accessToken,
            subject_token_type: type,
            audience: STOCKS,
          },
          { authorization: clientAuth(ledger, short, MCP_SERVER) },
        );
        assertOAuthError(response, 400, 'invalid_grant');
      });
    }
  });
});

describe('actor forgery', () => {
  test("an actor_token (the workload's own token) is refused: invalid_request, nothing issued", async () => {
    const workload = await post(ledger, `${as.issuer}/token`, {
      grant_type: 'client_credentials',
      scope: 'stocks:read',
      client_assertion_type: JWT_BEARER,
      client_assertion: await clientAssertion(ledger, await workloadKey(as), {
        clientId: WORKLOAD,
        audience: as.issuer,
      }),
    });
    assert.equal(workload.status, 200, workload.text);
    const response = await aliceFor({
      actor_token: String(workload.json.access_token),
      actor_token_type: ACCESS_TOKEN_TYPE,
    });
    assertOAuthError(response, 400, 'invalid_request');
  });

  test('act, may_act and actor in the request are ignored: act names the authenticated client only', async () => {
    const response = await aliceFor({
      act: JSON.stringify({ sub: 'admin' }),
      may_act: JSON.stringify({ sub: 'admin' }),
      actor: 'admin',
      sub: 'admin',
    });
    assert.equal(response.status, 200, response.text);
    const claims = decodeJwt(String(response.json.access_token));
    assert.deepEqual(claims.act, { sub: MCP_SERVER });
    assert.notEqual(claims.sub, 'admin');
    assert.equal(claims.may_act, undefined);
  });
});

describe('lifetime', () => {
  test("a requested longer lifetime is ignored: at most the API's 300 s, never past the subject", async () => {
    const subject = (await introspect(ledger, as, alice.accessToken)).json;
    const response = await aliceFor({ expires_in: '86400', requested_lifetime: '86400', lifetime: '86400' });
    assert.equal(response.status, 200, response.text);
    const claims = decodeJwt(String(response.json.access_token));
    assert.ok(Number(response.json.expires_in) <= 300, `expires_in ${response.json.expires_in}`);
    assert.ok(Number(claims.exp) - Number(claims.iat) <= 300);
    assert.ok(Number(claims.exp) <= Number(subject.exp));
  });
});

declareLeakCheck(ledger, { minimumSecrets: 25, oneTimeCodes: true });
