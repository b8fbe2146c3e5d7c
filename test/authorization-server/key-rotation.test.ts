/**
 * Key rotation on the running stack (issue 9, "Keys"): the next key is published ahead, then signs;
 * the old one stays published until its tokens have expired. No session ends and no token that is
 * still valid is refused, through two rotations, without a restart.
 *
 * The verifiers (MCP server, APIs) keep the JWKS for 1 s here and the authorization server lets a
 * key sign 1 s after it was published, so the overlap rule (keys/key-ring.ts) holds at test speed.
 *
 * The ID-token keys rotate with them (keys/id-token-signing.ts): an ID token from before a rotation
 * still verifies, and still serves as `id_token_hint` for RP-initiated logout, while its key is
 * published; the next one is signed by the new key; past the old key's retireAt it is gone.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, mock, test } from 'node:test';
import { createRemoteJWKSet, decodeJwt, decodeProtectedHeader, jwtVerify, SignJWT } from 'jose';
import type { KeyAdministration } from '../../src/authorization-server/keys/key-manager.ts';
import {
  startTestAuthorizationServer,
  type TestAuthorizationServer,
} from '../helpers/authorization-server.ts';
import {
  authorize,
  Browser,
  basic,
  pageText,
  postForm,
  redeemCode,
  registerNativeClient,
  toolHeader,
} from '../helpers/oauth.ts';
import { callGetStock, internalSecret, phantomFor } from '../helpers/revocation.ts';
import { startTestStack, type TestStack } from '../helpers/stack.ts';

const REDIRECT_URI = 'http://127.0.0.1/callback';

describe('signing keys rotate with overlap on the running stack', () => {
  let stack: TestStack;
  let keys: KeyAdministration;
  let clientId: string;
  const browser = new Browser();

  before(async () => {
    stack = await startTestStack({
      authorizationServer: { keys: { publishBeforeUseSeconds: 1 } },
      mcpServer: { jwksCacheSeconds: 1 },
      apis: { jwksCacheSeconds: 1 },
    });
    keys = stack.running.authorizationServer.keys;
    clientId = await registerNativeClient(stack.issuer, [REDIRECT_URI]);
  });
  after(() => stack.close());

  /** An agent's opaque token, through the same browser (so its session cookie) each time. */
  async function agentToken() {
    const result = await authorize({
      issuer: stack.issuer,
      clientId,
      redirectUri: REDIRECT_URI,
      scope: 'stocks:read',
      resource: stack.mcpUrl,
      browser,
    });
    const token = await redeemCode(stack.issuer, {
      code: result.callback.searchParams.get('code') ?? '',
      verifier: result.verifier,
      redirectUri: REDIRECT_URI,
      clientId,
      resource: stack.mcpUrl,
    });
    assert.equal(token.status, 200, token.text);
    return { token: String(token.json.access_token), pages: result.pages };
  }

  /** A tool call through the gateway (or straight to the MCP server with a phantom token) that works. */
  async function toolCallWorks(base: string, token: string, what: string) {
    const call = await callGetStock(base, token);
    const text = await call.text();
    assert.equal(call.status, 200, `${what}: HTTP ${call.status} ${text.slice(0, 200)}`);
    assert.ok(text.includes('SAP') && !text.includes('"isError":true'), `${what}: ${text.slice(0, 300)}`);
  }

  /** The MCP server's token exchange for the stocks API, as it makes it: the API's token. */
  async function exchanged(phantom: string) {
    const response = await postForm(
      `${stack.issuer}/token`,
      {
        grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
        subject_token: phantom,
        subject_token_type: 'urn:ietf:params:oauth:token-type:access_token',
        audience: `${stack.gatewayUrl}/api/stocks`,
      },
      {
        authorization: basic('gatehouse-mcp-server', internalSecret(stack, 'gatehouse-mcp-server')),
        ...toolHeader('stocks'),
      },
    );
    assert.equal(response.status, 200, response.text);
    return String(response.json.access_token);
  }

  const kidOf = (jwt: string) => decodeProtectedHeader(jwt).kid;
  const accessKeys = () => keys.list().filter((key) => key.use === 'access_token');
  const idTokenKids = () => keys.list().flatMap((key) => (key.use === 'id_token' ? [key.kid] : []));
  const servedKids = async () => {
    const response = await fetch(`${stack.issuer}/jwks`);
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /^application\/jwk-set\+json/);
    const jwks = (await response.json()) as { keys: Array<{ kid: string; d?: string }> };
    assert.ok(
      jwks.keys.every((key) => key.d === undefined),
      'public keys only',
    );
    return jwks.keys.map((key) => key.kid);
  };
  /** Waits until the next key may sign (publishBeforeUseSeconds after it was published), then rotates. */
  async function rotateWhenAllowed() {
    const next = accessKeys().find((key) => key.state === 'next')!;
    const wait = Date.parse(next.promotableFrom!) - Date.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait + 20));
    return keys.rotate('test-admin');
  }

  test('two rotations: old tokens keep working, new ones carry the new kid, the session survives, the JWKS follows', async () => {
    const [k1, k2] = accessKeys().map((key) => key.kid);
    assert.deepEqual(
      accessKeys().map((key) => key.state),
      ['current', 'next'],
    );
    assert.deepEqual(
      await servedKids(),
      [k1, k2, ...idTokenKids()],
      'the next key is published before it signs',
    );

    // Before any rotation: an agent signs in and calls a tool; everything is signed with k1.
    const first = await agentToken();
    assert.deepEqual(first.pages, ['email', 'code', 'consent']);
    await toolCallWorks(stack.gatewayUrl, first.token, 'before the rotation');
    const phantomByK1 = await phantomFor(stack, first.token);
    assert.equal(kidOf(phantomByK1), k1);
    assert.equal(kidOf(await exchanged(phantomByK1)), k1);

    // Rotation 1: k2 signs, k1 is retired (still published), k3 is the new next key.
    const rotation1 = await rotateWhenAllowed();
    assert.deepEqual([rotation1.current, rotation1.retired], [k2, k1]);
    const k3 = rotation1.next;
    assert.deepEqual(await servedKids(), [k2, k3, k1, ...idTokenKids()]);
    await toolCallWorks(stack.gatewayUrl, first.token, 'the token from before, after rotation 1');

    // No re-login: the browser session (cookie keys do not rotate) signs the agent in again.
    const second = await agentToken();
    assert.ok(!second.pages.includes('email') && !second.pages.includes('code'), second.pages.join());
    await toolCallWorks(stack.gatewayUrl, second.token, 'a token issued after rotation 1');
    const phantomByK2 = await phantomFor(stack, second.token);
    assert.equal(kidOf(phantomByK2), k2, 'new phantom tokens carry the new kid');
    assert.equal(kidOf(await exchanged(phantomByK2)), k2, 'so do exchanged ones');

    // Rotation 2: k3 signs; k2 and k1 are retired, both still published.
    const rotation2 = await rotateWhenAllowed();
    assert.deepEqual([rotation2.current, rotation2.retired], [k3, k2]);
    const k4 = rotation2.next;
    assert.deepEqual(await servedKids(), [k3, k4, k2, k1, ...idTokenKids()]);
    assert.deepEqual(
      keys.list().map((key) => `${key.use}:${key.state}`),
      [
        ...['current', 'next', 'retired', 'retired'].map((state) => `access_token:${state}`),
        ...['current', 'next', 'retired', 'retired'].map((state) => `id_token:${state}`),
      ],
      'the ID-token ring rotated with it',
    );
    assert.deepEqual(
      accessKeys().map((key) => [key.kid, key.state]),
      [
        [k3, 'current'],
        [k4, 'next'],
        [k2, 'retired'],
        [k1, 'retired'],
      ],
    );

    // Tokens from before both rotations still work: the agent's, and the phantom token k1 signed,
    // shown to the MCP server only now (so not from its cache) and exchanged by it for the API.
    await toolCallWorks(stack.gatewayUrl, first.token, 'the first token, after rotation 2');
    await toolCallWorks(stack.gatewayUrl, second.token, 'the second token, after rotation 2');
    await toolCallWorks(stack.mcpServerUrl, phantomByK1, 'a phantom token signed by the retired k1');
    const third = await agentToken();
    assert.ok(!third.pages.includes('email'));
    await toolCallWorks(stack.gatewayUrl, third.token, 'a token issued after rotation 2');
    const phantomByK3 = await phantomFor(stack, third.token);
    assert.equal(kidOf(phantomByK3), k3);
    assert.equal(kidOf(await exchanged(phantomByK3)), k3);

    const audits = stack.audit('keys.rotated');
    assert.deepEqual(
      audits.map((line) => [line.outcome, line.kid_new, line.kid_retired, line.actor]),
      [
        ['success', k2, k1, 'test-admin'],
        ['success', k3, k2, 'test-admin'],
      ],
    );

    // Past k1's retireAt (every token it signed has expired by then), k1 leaves the JWKS; k2, retired
    // a second or more later, is still there. Only Date moves: the servers keep running.
    const k1RetireAt = Date.parse(accessKeys().find((key) => key.kid === k1)!.retireAt!);
    mock.timers.enable({ apis: ['Date'], now: k1RetireAt + 500 });
    try {
      assert.deepEqual(await servedKids(), [k3, k4, k2, ...idTokenKids()]);
      assert.ok(!accessKeys().some((key) => key.kid === k1));
    } finally {
      mock.timers.reset();
    }
  });

  test('a rotation before the next key has been published long enough is refused and changes nothing', async () => {
    const before = keys.list();
    await rotateWhenAllowed();
    const now = keys.list();
    await assert.rejects(keys.rotate('test-admin'), { name: 'KeyRotationTooSoonError' });
    assert.notDeepEqual(now, before);
    assert.deepEqual(keys.list(), now);
    assert.equal(stack.audit('keys.rotated').at(-1)?.outcome, 'denied');
  });
});

describe('ID-token keys rotate with the access-token keys, in the running provider', () => {
  const AFTER_LOGOUT = 'http://127.0.0.1/signed-out';
  let as: TestAuthorizationServer;
  let keys: KeyAdministration;
  let clientId: string;

  before(async () => {
    as = await startTestAuthorizationServer({ keys: { publishBeforeUseSeconds: 1 } });
    keys = as.running.keys;
    clientId = await registerNativeClient(as.issuer, [REDIRECT_URI], {
      post_logout_redirect_uris: [AFTER_LOGOUT],
    });
  });
  after(() => as.close());

  const idKeys = () => keys.list().filter((key) => key.use === 'id_token');
  const idKid = (state: string) => idKeys().find((key) => key.state === state)?.kid;
  const servedKids = async () =>
    ((await (await fetch(`${as.issuer}/jwks`)).json()) as { keys: Array<{ kid: string }> }).keys.map(
      (key) => key.kid,
    );

  /** An ID token for the user signed in in `browser` (signing in first if need be). */
  async function idToken(browser: Browser) {
    const result = await authorize({
      issuer: as.issuer,
      clientId,
      redirectUri: REDIRECT_URI,
      scope: 'openid stocks:read',
      browser,
    });
    const token = await redeemCode(as.issuer, {
      code: result.callback.searchParams.get('code') ?? '',
      verifier: result.verifier,
      redirectUri: REDIRECT_URI,
      clientId,
    });
    assert.equal(token.status, 200, token.text);
    assert.equal(typeof token.json.id_token, 'string', 'an ID token (scope openid)');
    lastAccessToken = String(token.json.access_token);
    return String(token.json.id_token);
  }
  let lastAccessToken = '';

  /** Verifies against the JWKS as a relying party does: fetched from jwks_uri, no cache of its own. */
  async function verifiesAtJwksUri(idToken: string) {
    const discovery = (await (await fetch(`${as.issuer}/.well-known/openid-configuration`)).json()) as {
      jwks_uri: string;
    };
    const { payload, protectedHeader } = await jwtVerify(
      idToken,
      createRemoteJWKSet(new URL(discovery.jwks_uri)),
      {
        issuer: as.issuer,
        audience: clientId,
        algorithms: ['RS256'],
      },
    );
    assert.equal(protectedHeader.alg, 'RS256');
    return payload;
  }

  /** RP-initiated logout's first step: the page that asks, or the refusal of a hint that does not verify. */
  async function logoutWithHint(browser: Browser, hint: string) {
    const url = new URL(`${as.issuer}/session/end`);
    url.searchParams.set('id_token_hint', hint);
    url.searchParams.set('post_logout_redirect_uri', AFTER_LOGOUT);
    url.searchParams.set('state', 'st-logout');
    return browser.request(url.href);
  }

  async function rotateWhenAllowed() {
    const next = idKeys().find((key) => key.state === 'next')!;
    const wait = Date.parse(next.promotableFrom!) - Date.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait + 20));
    return keys.rotate('test-admin');
  }

  test('discovery names RS256 for ID tokens and the jwks_uri that publishes the ID-token ring', async () => {
    const discovery = (await (await fetch(`${as.issuer}/.well-known/openid-configuration`)).json()) as Record<
      string,
      unknown
    >;
    assert.deepEqual(discovery.id_token_signing_alg_values_supported, ['RS256']);
    assert.equal(discovery.jwks_uri, `${as.issuer}/jwks`);
    const served = await servedKids();
    for (const kid of [idKid('current'), idKid('next')]) assert.ok(served.includes(kid!), `${kid} published`);
    // Our JWKS, not oidc-provider's (keys/jwks-endpoint.ts): the provider's keystore holds the
    // ID-token slots only, never the ES256 access-token keys, and its unused slots have kids of their own.
    assert.deepEqual(
      served,
      keys.list().map((key) => key.kid),
    );
    assert.ok(!served.some((kid) => kid.startsWith('gatehouse-unused')));
  });

  test('an ID token from before a rotation verifies and logs out while its key is published; the next is signed by the new key; past retireAt the old key is gone', async () => {
    const a = idKid('current')!;
    const browser = new Browser();
    const before = await idToken(browser);
    assert.equal(decodeProtectedHeader(before).kid, a);
    await verifiesAtJwksUri(before);

    const rotation = await rotateWhenAllowed();
    const b = rotation.idToken.current;
    assert.equal(rotation.idToken.retired, a);
    assert.notEqual(b, a);
    assert.deepEqual([idKid('current'), idKid('retired')], [b, a]);
    const audit = as.audit('keys.rotated').at(-1)!;
    assert.deepEqual([audit.id_token_kid_new, audit.id_token_kid_retired], [b, a]);

    // Same browser, no sign-in: the new ID token is signed by the new key, and both verify.
    const afterRotation = await idToken(browser);
    assert.equal(decodeProtectedHeader(afterRotation).kid, b, 'signed with the new current key');
    await verifiesAtJwksUri(afterRotation);
    await verifiesAtJwksUri(before);
    const served = await servedKids();
    assert.ok(served.includes(a) && served.includes(b) && served.includes(rotation.idToken.next));
    // RFC 9701 introspection answers are signed by the ID-token ring's current key too.
    const gatewaySecret = readFileSync(
      path.join(as.dataDir, 'secrets/gatehouse-gateway.secret'),
      'utf8',
    ).trim();
    const introspection = await postForm(
      `${as.issuer}/introspect`,
      { token: lastAccessToken },
      {
        authorization: basic('gatehouse-gateway', gatewaySecret),
        accept: 'application/token-introspection+jwt',
      },
    );
    assert.equal(introspection.status, 200, introspection.text);
    assert.equal(decodeProtectedHeader(introspection.text).kid, b);
    const { payload: answer } = await jwtVerify(
      introspection.text,
      createRemoteJWKSet(new URL(`${as.issuer}/jwks`)),
      { issuer: as.issuer, typ: 'token-introspection+jwt' },
    );
    assert.equal((answer.token_introspection as { active?: boolean }).active, true);

    // RP-initiated logout with the old ID token as the hint: oidc-provider validates it with the
    // retired key (its slot), asks, and sends the user back to the registered URI.
    const ask = await logoutWithHint(browser, before);
    assert.equal(ask.status, 200, pageText(ask.text).slice(0, 300));
    assert.match(pageText(ask.text), /asks to sign you out/);
    const xsrf = /name="xsrf" value="([^"]+)"/.exec(ask.text)?.[1] ?? '';
    const done = await browser.request(`${as.issuer}/session/end/confirm`, {
      form: { xsrf, logout: 'yes' },
    });
    assert.equal(done.status, 303);
    const back = new URL(done.location!);
    assert.equal(`${back.origin}${back.pathname}`, AFTER_LOGOUT);
    assert.equal(back.searchParams.get('state'), 'st-logout');

    // A hint signed by the current key works too; one signed by a key never published does not.
    const other = new Browser();
    const byCurrent = await idToken(other);
    assert.equal(decodeProtectedHeader(byCurrent).kid, b);
    assert.equal((await logoutWithHint(other, byCurrent)).status, 200);
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const forged = await new SignJWT(decodeJwt(byCurrent))
      .setProtectedHeader({ alg: 'RS256', kid: b })
      .sign(privateKey);
    assert.equal((await logoutWithHint(other, forged)).status, 400, 'a hint that does not verify is refused');

    // Past the old key's retireAt (the ID-token lifetime and the margin after the rotation), it
    // leaves the JWKS and no longer verifies the old ID token, as a hint or at a relying party.
    const retireAt = Date.parse(idKeys().find((key) => key.kid === a)!.retireAt!);
    assert.ok(retireAt - Date.now() > 3600_000, 'retired for at least the ID-token lifetime');
    mock.timers.enable({ apis: ['Date'], now: retireAt + 500 });
    try {
      const later = await servedKids();
      assert.ok(!later.includes(a), 'the retired ID-token key is no longer published');
      assert.ok(later.includes(b));
      assert.ok(!idKeys().some((key) => key.kid === a));
      await assert.rejects(
        jwtVerify(before, createRemoteJWKSet(new URL(`${as.issuer}/jwks`)), { algorithms: ['RS256'] }),
        { code: 'ERR_JWKS_NO_MATCHING_KEY' },
      );
      const refused = await logoutWithHint(other, before);
      assert.equal(refused.status, 400, 'an id_token_hint by a key no longer published is refused');
      assert.equal((await logoutWithHint(other, byCurrent)).status, 200, 'the current key still verifies');
    } finally {
      mock.timers.reset();
    }
  });
});
