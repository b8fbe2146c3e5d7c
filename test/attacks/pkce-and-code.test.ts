/**
 * Attacks on PKCE and the authorization code (RFC 7636, RFC 6749 §4.1, RFC 9700 §2.1.1 and §4.5):
 * requests without a usable challenge, a stolen code redeemed without or with a guessed verifier, a
 * replayed code, a code redeemed by another client, and a code redeemed for another resource.
 *
 * Already covered elsewhere and not repeated: a request without code_challenge and one with
 * `plain` are refused at /authorize, a wrong verifier is invalid_grant, and a replay revokes the
 * access token issued from the code (test/authorization-server/code-flow.test.ts).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { TestAuthorizationServer } from '../helpers/authorization-server.ts';
import { Browser, pkce } from '../helpers/oauth.ts';
import { declareLeakCheck, SecretLedger } from '../helpers/secret-leaks.ts';
import {
  assertOAuthError,
  assertRedirectedError,
  authorizationRequest,
  basicAuth,
  clientAuth,
  codeRequest,
  isActive,
  issuedCounts,
  MCP,
  MCP_SERVER,
  post,
  redeem,
  registerOk,
  STOCKS,
  signIn,
  startAttackServer,
  storeOf,
} from './support/authorization-server.ts';

const REDIRECT = 'http://127.0.0.1/callback';
const ledger = new SecretLedger();
let as: TestAuthorizationServer;
/** The victim's client and a second, unrelated public client (the attacker's). */
let victim: string;
let attacker: string;
/** A confidential client registered by DCR, with its Basic header. */
let confidential: { clientId: string; authorization: string };

before(async () => {
  as = await startAttackServer(ledger, {
    refreshTokens: { reuseGraceSeconds: 0, clients: { publicClients: true } },
    dynamicRegistration: { rateLimit: { max: 1000, windowSeconds: 60 } },
  });
  const grants = { grant_types: ['authorization_code', 'refresh_token'] };
  victim = String(
    (await registerOk(ledger, as.issuer, { client_name: 'Victim agent', ...grants })).client_id,
  );
  attacker = String((await registerOk(ledger, as.issuer, { client_name: 'Attacker agent' })).client_id);
  const registered = await registerOk(ledger, as.issuer, {
    client_name: 'Confidential agent',
    token_endpoint_auth_method: 'client_secret_basic',
  });
  confidential = {
    clientId: String(registered.client_id),
    authorization: basicAuth(ledger, String(registered.client_id), String(registered.client_secret)),
  };
});
after(() => as.close());

/** A fresh code for the victim's client: the user signs in and consents. */
async function victimCode(options: { resource?: string; browser?: Browser } = {}) {
  const result = await signIn(ledger, {
    issuer: as.issuer,
    clientId: victim,
    redirectUri: REDIRECT,
    scope: 'stocks:read',
    ...(options.resource ? { resource: options.resource } : {}),
    ...(options.browser ? { browser: options.browser } : {}),
  });
  const code = result.callback.searchParams.get('code');
  assert.ok(code, result.callback.href);
  return { code, verifier: result.verifier, browser: result.browser };
}

/** The rightful client can still redeem the code: the attack neither used it up nor blocked it. */
async function assertStillRedeemable(code: string, verifier: string) {
  const response = await redeem(ledger, as.issuer, {
    code,
    verifier,
    redirectUri: REDIRECT,
    clientId: victim,
  });
  assert.equal(response.status, 200, `the rightful client redeems the code: ${response.text}`);
  assert.ok(await isActive(ledger, as, String(response.json.access_token)));
}

describe('PKCE at the authorization endpoint: no code without an S256 challenge', () => {
  test('control: the same request with a valid S256 challenge goes on to sign-in', async () => {
    const { params } = codeRequest(victim, REDIRECT);
    const response = await authorizationRequest(as.issuer, params);
    assert.equal(response.status, 303);
    assert.equal(response.location?.origin, as.issuer);
    assert.match(response.location?.pathname ?? '', /^\/interaction\//);
  });

  const challengeAttacks: Array<[string, Record<string, string | undefined>]> = [
    // RFC 7636 §4.3: a missing method means plain, which is a downgrade the server must not accept.
    ['a challenge without code_challenge_method (plain by default)', { code_challenge_method: undefined }],
    ['an unknown method (S512)', { code_challenge_method: 'S512' }],
    ['a challenge shorter than 43 characters', { code_challenge: 'a'.repeat(42) }],
    ['a challenge with characters outside the unreserved set', { code_challenge: `${'a'.repeat(42)}+` }],
  ];
  for (const [name, override] of challengeAttacks) {
    test(`${name} is refused with invalid_request, iss and state, and no code`, async () => {
      const { params } = codeRequest(victim, REDIRECT, {});
      Object.assign(params, override);
      const response = await authorizationRequest(as.issuer, params);
      assert.equal(response.status, 303, response.text.slice(0, 200));
      assertRedirectedError(response.location, {
        error: 'invalid_request',
        state: params.state,
        issuer: as.issuer,
        redirectUri: REDIRECT,
      });
    });
  }

  test('a confidential client without code_challenge is refused too (PKCE for every client)', async () => {
    const { params } = codeRequest(confidential.clientId, REDIRECT);
    params.code_challenge = undefined;
    params.code_challenge_method = undefined;
    const response = await authorizationRequest(as.issuer, params);
    assertRedirectedError(response.location, {
      error: 'invalid_request',
      state: params.state,
      issuer: as.issuer,
      redirectUri: REDIRECT,
    });
  });
});

describe('a stolen code without the verifier', () => {
  test('redeemed without code_verifier: invalid_grant, nothing issued, the code still works for its client', async () => {
    const { code, verifier } = await victimCode();
    const before = issuedCounts(as);
    const response = await redeem(ledger, as.issuer, { code, redirectUri: REDIRECT, clientId: victim });
    assertOAuthError(response, 400, 'invalid_grant');
    assert.deepEqual(issuedCounts(as), before);
    await assertStillRedeemable(code, verifier);
  });

  test('redeemed with the challenge itself as verifier (a plain downgrade): invalid_grant, nothing issued', async () => {
    // Whoever saw the authorization request saw the challenge; under `plain` it would be the verifier.
    const { verifier, challenge } = pkce();
    const result = await signIn(ledger, {
      issuer: as.issuer,
      clientId: victim,
      redirectUri: REDIRECT,
      scope: 'stocks:read',
      extra: { code_challenge: challenge },
    });
    const code = result.callback.searchParams.get('code')!;
    const before = issuedCounts(as);
    const response = await redeem(ledger, as.issuer, {
      code,
      verifier: challenge,
      redirectUri: REDIRECT,
      clientId: victim,
    });
    assertOAuthError(response, 400, 'invalid_grant');
    assert.deepEqual(issuedCounts(as), before);
    await assertStillRedeemable(code, verifier);
  });

  for (const [name, verifier] of [
    ['42 characters (below RFC 7636 §4.1)', 'a'.repeat(42)],
    ['129 characters (above RFC 7636 §4.1)', 'a'.repeat(129)],
    ['a character outside the unreserved set', `${'a'.repeat(43)}/`],
  ] as const) {
    test(`a malformed verifier of ${name} is invalid_request, nothing issued, the code still works`, async () => {
      const code = await victimCode();
      const before = issuedCounts(as);
      const response = await redeem(ledger, as.issuer, {
        code: code.code,
        verifier,
        redirectUri: REDIRECT,
        clientId: victim,
      });
      assertOAuthError(response, 400, 'invalid_request');
      assert.deepEqual(issuedCounts(as), before);
      await assertStillRedeemable(code.code, code.verifier);
    });
  }
});

describe('a replayed code', () => {
  test('replayed by its own client: invalid_grant, and the access token, refresh token and consent are revoked', async () => {
    const browser = new Browser();
    const { code, verifier } = await victimCode({ browser });
    const first = await redeem(ledger, as.issuer, {
      code,
      verifier,
      redirectUri: REDIRECT,
      clientId: victim,
    });
    assert.equal(first.status, 200, first.text);
    const refreshToken = String(first.json.refresh_token);
    assert.ok(first.json.refresh_token, 'refresh tokens are on in this file');
    const consentsBefore = storeOf(as).consents().length;

    const replay = await redeem(ledger, as.issuer, {
      code,
      verifier,
      redirectUri: REDIRECT,
      clientId: victim,
    });
    assertOAuthError(replay, 400, 'invalid_grant');

    assert.equal(await isActive(ledger, as, String(first.json.access_token)), false);
    const refreshed = await post(ledger, `${as.issuer}/token`, {
      grant_type: 'refresh_token',
      refresh_token: refreshToken,
      client_id: victim,
    });
    assertOAuthError(refreshed, 400, 'invalid_grant');
    assert.equal(storeOf(as).consents().length, consentsBefore - 1, 'the remembered consent is gone');
    // The grant is gone, so the next authorization asks the user again.
    const again = await signIn(ledger, {
      issuer: as.issuer,
      clientId: victim,
      redirectUri: REDIRECT,
      scope: 'stocks:read',
      browser,
    });
    assert.deepEqual(again.pages, ['consent']);
  });

  test("replayed by another client: invalid_grant, and the rightful client's tokens stay active", async () => {
    const { code, verifier } = await victimCode();
    const first = await redeem(ledger, as.issuer, {
      code,
      verifier,
      redirectUri: REDIRECT,
      clientId: victim,
    });
    assert.equal(first.status, 200, first.text);
    const before = issuedCounts(as);
    const replay = await redeem(ledger, as.issuer, {
      code,
      verifier,
      redirectUri: REDIRECT,
      clientId: attacker,
    });
    assertOAuthError(replay, 400, 'invalid_grant');
    assert.deepEqual(issuedCounts(as), before);
    assert.ok(
      await isActive(ledger, as, String(first.json.access_token)),
      'another client cannot revoke them by replaying',
    );
  });

  test('replayed without the verifier: invalid_grant, and the tokens are not revoked by a stranger', async () => {
    const { code, verifier } = await victimCode();
    const first = await redeem(ledger, as.issuer, {
      code,
      verifier,
      redirectUri: REDIRECT,
      clientId: victim,
    });
    assert.equal(first.status, 200, first.text);
    const replay = await redeem(ledger, as.issuer, {
      code,
      verifier: pkce().verifier,
      redirectUri: REDIRECT,
      clientId: victim,
    });
    assertOAuthError(replay, 400, 'invalid_grant');
    assert.ok(await isActive(ledger, as, String(first.json.access_token)));
  });
});

describe("client A's code at client B", () => {
  test('redeemed by another public client with the right verifier: invalid_grant, the code still works for A', async () => {
    const { code, verifier } = await victimCode();
    const before = issuedCounts(as);
    const response = await redeem(ledger, as.issuer, {
      code,
      verifier,
      redirectUri: REDIRECT,
      clientId: attacker,
    });
    assertOAuthError(response, 400, 'invalid_grant');
    assert.deepEqual(issuedCounts(as), before);
    await assertStillRedeemable(code, verifier);
  });

  test('redeemed by an authenticated confidential client: invalid_grant, the code still works for A', async () => {
    const { code, verifier } = await victimCode();
    const before = issuedCounts(as);
    const response = await redeem(
      ledger,
      as.issuer,
      { code, verifier, redirectUri: REDIRECT },
      { authorization: confidential.authorization },
    );
    assertOAuthError(response, 400, 'invalid_grant');
    assert.deepEqual(issuedCounts(as), before);
    await assertStillRedeemable(code, verifier);
  });

  test("authenticated as B while naming A's client_id: invalid_request, nothing issued", async () => {
    const { code, verifier } = await victimCode();
    const before = issuedCounts(as);
    const response = await redeem(
      ledger,
      as.issuer,
      { code, verifier, redirectUri: REDIRECT, clientId: victim },
      { authorization: confidential.authorization },
    );
    assertOAuthError(response, 400, 'invalid_request');
    assert.deepEqual(issuedCounts(as), before);
    await assertStillRedeemable(code, verifier);
  });

  test('redeemed by the MCP server client (no authorization_code grant): unauthorized_client', async () => {
    const { code, verifier } = await victimCode();
    const response = await redeem(
      ledger,
      as.issuer,
      { code, verifier, redirectUri: REDIRECT },
      { authorization: clientAuth(ledger, as, MCP_SERVER) },
    );
    assertOAuthError(response, 400, 'unauthorized_client');
    await assertStillRedeemable(code, verifier);
  });
});

describe('a code redeemed for another resource', () => {
  for (const [name, resource] of [
    ['an API audience (never reachable by an agent)', STOCKS],
    ['an unknown resource', 'https://evil.example/mcp'],
    ['the MCP URI with another host spelling', 'http://LOCALHOST:8000/mcp/../api/stocks'],
  ] as const) {
    test(`a code for the MCP server redeemed for ${name}: invalid_target, nothing issued, the code used up`, async () => {
      const { code, verifier } = await victimCode({ resource: MCP });
      const before = issuedCounts(as);
      const response = await redeem(ledger, as.issuer, {
        code,
        verifier,
        redirectUri: REDIRECT,
        clientId: victim,
        resource,
      });
      assertOAuthError(response, 400, 'invalid_target');
      assert.deepEqual(issuedCounts(as), before);
      // The request got past PKCE, so the code was consumed: it fails closed and stays unusable.
      const retry = await redeem(ledger, as.issuer, {
        code,
        verifier,
        redirectUri: REDIRECT,
        clientId: victim,
      });
      assertOAuthError(retry, 400, 'invalid_grant');
      // (A retry is a replay: it revokes the grant, so there may be fewer tokens, never more.)
      assert.ok(issuedCounts(as).AccessToken <= before.AccessToken);
    });
  }

  test('asking for the MCP server and an API at once at /authorize: invalid_target, no code', async () => {
    const { params } = codeRequest(victim, REDIRECT);
    const url = new URL(`${as.issuer}/authorize`);
    for (const [key, value] of Object.entries(params)) if (value) url.searchParams.set(key, value);
    url.searchParams.append('resource', MCP);
    url.searchParams.append('resource', STOCKS);
    const response = await new Browser().request(url.href);
    assert.equal(response.status, 303);
    assertRedirectedError(response.location ? new URL(response.location) : undefined, {
      error: 'invalid_target',
      state: params.state,
      issuer: as.issuer,
      redirectUri: REDIRECT,
    });
  });
});

declareLeakCheck(ledger, { minimumSecrets: 40, oneTimeCodes: true });
