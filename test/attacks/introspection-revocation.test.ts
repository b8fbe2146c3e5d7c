/**
 * Introspection and revocation by the wrong caller (RFC 7662 §2.1 and §4, RFC 7009 §2.1): only the
 * gateway may learn anything about a token, and only a token's own client may revoke it. A refused
 * caller learns nothing, and the token (and the grant behind it) is as before.
 *
 * Already covered elsewhere and not repeated: the MCP server and the token's own client learn
 * nothing; a wrong gateway secret; a phantom-token request by the MCP server; revocation by another
 * public client and by the MCP server; a wrong secret at revocation
 * (test/authorization-server/tokens.test.ts).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { decodeJwt } from 'jose';
import type { TestAuthorizationServer } from '../helpers/authorization-server.ts';
import { Browser } from '../helpers/oauth.ts';
import { declareLeakCheck, SecretLedger } from '../helpers/secret-leaks.ts';
import {
  assertOAuthError,
  basicAuth,
  clientAssertion,
  clientAuth,
  GATEWAY,
  isActive,
  JWT_BEARER,
  post,
  redeem,
  registerOk,
  signIn,
  startAttackServer,
  WORKLOAD,
  workloadKey,
} from './support/authorization-server.ts';

const REDIRECT = 'http://127.0.0.1/callback';
const ledger = new SecretLedger();
let as: TestAuthorizationServer;
/** The victim's client (confidential, so its id alone is not enough) and its two tokens of one grant. */
let victim: { clientId: string; authorization: string };
let tokens: [string, string];
/** A stranger: a self-registered confidential client with its own secret. */
let stranger: { clientId: string; authorization: string };
let publicStranger: string;

async function confidentialClient(name: string) {
  const registered = await registerOk(ledger, as.issuer, {
    client_name: name,
    token_endpoint_auth_method: 'client_secret_basic',
  });
  const clientId = String(registered.client_id);
  return { clientId, authorization: basicAuth(ledger, clientId, String(registered.client_secret)) };
}

before(async () => {
  as = await startAttackServer(ledger);
  victim = await confidentialClient('Victim agent');
  stranger = await confidentialClient('Stranger agent');
  publicStranger = String(
    (await registerOk(ledger, as.issuer, { client_name: 'Public stranger' })).client_id,
  );
  const browser = new Browser();
  const issued: string[] = [];
  for (let i = 0; i < 2; i += 1) {
    const result = await signIn(ledger, {
      issuer: as.issuer,
      clientId: victim.clientId,
      redirectUri: REDIRECT,
      scope: 'stocks:read',
      browser,
    });
    const token = await redeem(
      ledger,
      as.issuer,
      { code: result.callback.searchParams.get('code')!, verifier: result.verifier, redirectUri: REDIRECT },
      { authorization: victim.authorization },
    );
    assert.equal(token.status, 200, token.text);
    issued.push(String(token.json.access_token));
  }
  tokens = [issued[0]!, issued[1]!];
});
after(() => as.close());

/** Both tokens of the victim's grant are still active: the refused request changed nothing. */
async function assertUntouched() {
  for (const token of tokens)
    assert.equal(await isActive(ledger, as, token), true, 'the token is still active');
}

const introspectAs = (headers: Record<string, string>, fields: Record<string, string> = {}) =>
  post(ledger, `${as.issuer}/introspect`, { token: tokens[0], ...fields }, headers);

const revokeAs = (headers: Record<string, string>, fields: Record<string, string> = {}) =>
  post(ledger, `${as.issuer}/revoke`, { token: tokens[0], ...fields }, headers);

describe('introspection by the wrong caller learns nothing', () => {
  test('control: the gateway learns that the token is active', async () => {
    const response = await introspectAs({ authorization: clientAuth(ledger, as, GATEWAY) });
    assert.equal(response.json.active, true);
    assert.equal(response.json.client_id, victim.clientId);
  });

  test('without any client authentication: invalid_request, nothing about the token', async () => {
    const response = await introspectAs({});
    assertOAuthError(response, 400, 'invalid_request');
    assert.equal(response.json.sub, undefined);
    await assertUntouched();
  });

  for (const [name, headers, fields] of [
    [
      'a self-registered confidential client with its own secret',
      () => ({ authorization: stranger.authorization }),
      {},
    ],
    ["the token's own confidential client", () => ({ authorization: victim.authorization }), {}],
    ['another public client', () => ({}), () => ({ client_id: publicStranger })],
  ] as const) {
    test(`${name}: {"active": false}, and the refusal is audited`, async () => {
      const before = as.audit('introspection').length;
      const response = await introspectAs(headers(), typeof fields === 'function' ? fields() : fields);
      assert.equal(response.status, 200, response.text);
      assert.deepEqual(response.json, { active: false });
      const records = as.audit('introspection').slice(before);
      assert.equal(records.length, 1);
      assert.equal(records[0]!.outcome, 'denied');
      await assertUntouched();
    });
  }

  test('the workload with a valid private_key_jwt assertion: {"active": false}', async () => {
    const assertion = await clientAssertion(ledger, await workloadKey(as), {
      clientId: WORKLOAD,
      audience: as.issuer,
    });
    const response = await introspectAs(
      {},
      { client_assertion_type: JWT_BEARER, client_assertion: assertion },
    );
    assert.equal(response.status, 200, response.text);
    assert.deepEqual(response.json, { active: false });
  });

  test("a public caller naming the gateway's client_id without its secret: invalid_client (401)", async () => {
    const response = await introspectAs({}, { client_id: GATEWAY });
    assertOAuthError(response, 401, 'invalid_client');
    await assertUntouched();
  });

  test('a stranger asking for the phantom JWT (Accept: application/jwt) gets JSON {"active": false}, no JWT', async () => {
    const response = await introspectAs({ authorization: stranger.authorization, accept: 'application/jwt' });
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /^application\/json/);
    assert.deepEqual(response.json, { active: false });
  });

  test('a stranger asking for a signed answer (RFC 9701) gets one that says inactive and nothing more', async () => {
    const response = await introspectAs({
      authorization: stranger.authorization,
      accept: 'application/token-introspection+jwt',
    });
    assert.equal(response.status, 200, response.text);
    const claims = decodeJwt(response.text);
    assert.deepEqual(claims.token_introspection, { active: false });
    assert.equal(claims.sub, undefined);
  });
});

describe('revocation by the wrong caller revokes nothing', () => {
  test('a self-registered confidential client: invalid_request, and the whole grant stays active', async () => {
    const response = await revokeAs({ authorization: stranger.authorization });
    assertOAuthError(response, 400, 'invalid_request');
    await assertUntouched();
  });

  test("the gateway (it may introspect, not revoke others' tokens): invalid_request, nothing revoked", async () => {
    const response = await revokeAs({ authorization: clientAuth(ledger, as, GATEWAY) });
    assertOAuthError(response, 400, 'invalid_request');
    await assertUntouched();
  });

  test('with a lying token_type_hint (refresh_token): still refused, nothing revoked', async () => {
    const response = await revokeAs(
      { authorization: stranger.authorization },
      { token_type_hint: 'refresh_token' },
    );
    assertOAuthError(response, 400, 'invalid_request');
    await assertUntouched();
  });

  test("a public caller naming the confidential owner's client_id without its secret: invalid_client (401)", async () => {
    const response = await revokeAs({}, { client_id: victim.clientId });
    assertOAuthError(response, 401, 'invalid_client');
    await assertUntouched();
  });

  test('without any client authentication: invalid_request, nothing revoked', async () => {
    const response = await revokeAs({});
    assertOAuthError(response, 400, 'invalid_request');
    await assertUntouched();
  });

  test("control: the owner's own revocation works and takes the whole grant", async () => {
    const response = await revokeAs({ authorization: victim.authorization });
    assert.equal(response.status, 200, response.text);
    for (const token of tokens) assert.equal(await isActive(ledger, as, token), false);
  });
});

declareLeakCheck(ledger, { minimumSecrets: 12, oneTimeCodes: true });
