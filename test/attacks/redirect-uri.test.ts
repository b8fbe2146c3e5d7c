/**
 * Redirect URI tricks (RFC 6749 §3.1.2, RFC 9700 §2.1 and §4.1, RFC 8252 §7.1 and §7.3): URIs that
 * look like a registered one to a careless comparison but send the code elsewhere. Every one must
 * be refused at the authorization endpoint with an error page and no redirect (an error redirect to
 * an unverified URI would itself be an open redirector), and at the token endpoint the URI must be
 * the one the code was issued for.
 *
 * Already covered elsewhere and not repeated: another path, an added query, another port or host
 * for an https URI; another path or loopback host for a loopback URI; registering javascript:,
 * data:, non-loopback http, fragments and custom schemes outside native apps
 * (test/authorization-server/clients.test.ts).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { TestAuthorizationServer } from '../helpers/authorization-server.ts';
import { declareLeakCheck, SecretLedger } from '../helpers/secret-leaks.ts';
import {
  assertErrorPage,
  assertOAuthError,
  authorizationRequest,
  codeRequest,
  issuedCounts,
  redeem,
  register,
  registerOk,
  signIn,
  startAttackServer,
  storeOf,
} from './support/authorization-server.ts';

const WEB = 'https://app.example.com/cb';
const LOOPBACK_V4 = 'http://127.0.0.1/callback';
const LOOPBACK_NAME = 'http://localhost:3334/cb';
const LOOPBACK_V6 = 'http://[::1]/cb';
const CUSTOM = 'com.example.app:/cb';

const ledger = new SecretLedger();
let as: TestAuthorizationServer;
const clients: Record<'web' | 'loopback' | 'custom', string> = { web: '', loopback: '', custom: '' };

before(async () => {
  as = await startAttackServer(ledger, {
    dynamicRegistration: { rateLimit: { max: 1000, windowSeconds: 60 } },
  });
  clients.web = String(
    (await registerOk(ledger, as.issuer, { application_type: 'web', redirect_uris: [WEB] })).client_id,
  );
  clients.loopback = String(
    (await registerOk(ledger, as.issuer, { redirect_uris: [LOOPBACK_V4, LOOPBACK_NAME, LOOPBACK_V6] }))
      .client_id,
  );
  clients.custom = String((await registerOk(ledger, as.issuer, { redirect_uris: [CUSTOM] })).client_id);
});
after(() => as.close());

/** Asks for a code for `client` with `redirectUri`; the request must die on an error page. */
async function assertRefused(client: keyof typeof clients, redirectUri: string) {
  const { params } = codeRequest(clients[client], redirectUri);
  const response = await authorizationRequest(as.issuer, params);
  assertErrorPage(response, 'invalid_redirect_uri');
  assert.ok(!response.text.includes(`href="${redirectUri}`), 'no link to the refused URI');
  assert.ok(!response.text.includes(params.state!), 'state is not echoed on the page either');
}

describe('control: registered redirect URIs are accepted', () => {
  for (const [client, redirectUri] of [
    ['web', WEB],
    ['loopback', 'http://127.0.0.1:5555/callback'],
    ['loopback', 'http://localhost:61000/cb'],
    ['loopback', 'http://[::1]:5555/cb'],
    ['custom', CUSTOM],
  ] as const) {
    test(`${redirectUri} goes on to sign-in`, async () => {
      const { params } = codeRequest(clients[client], redirectUri);
      const response = await authorizationRequest(as.issuer, params);
      assert.equal(response.status, 303, response.text.slice(0, 200));
      assert.match(response.location?.pathname ?? '', /^\/interaction\//);
    });
  }
});

describe('userinfo', () => {
  for (const [client, uri] of [
    ['web', 'https://app.example.com@evil.example/cb'],
    ['web', 'https://app.example.com:@evil.example/cb'],
    ['web', 'https://evil.example@app.example.com/cb'],
    ['loopback', 'http://127.0.0.1:5555@evil.example/callback'],
    ['loopback', 'http://attacker@127.0.0.1:5555/callback'],
    ['loopback', 'http://evil.example\\@127.0.0.1:5555/callback'],
  ] as const) {
    test(`${uri} is refused with an error page, no redirect`, () => assertRefused(client, uri));
  }

  test('registering a redirect URI with userinfo is refused: invalid_redirect_uri, nothing stored', async () => {
    const before = storeOf(as).count('Client');
    const response = await register(ledger, as.issuer, {
      application_type: 'web',
      redirect_uris: ['https://user:password@app.example.com/cb'],
    });
    assert.equal(response.status, 400, JSON.stringify(response.body));
    assert.equal(response.body.error, 'invalid_redirect_uri');
    assert.equal(response.body.client_id, undefined);
    assert.equal(storeOf(as).count('Client'), before);
  });
});

describe('suffix and subdomain', () => {
  for (const [client, uri] of [
    ['web', 'https://app.example.com.evil.example/cb'],
    ['web', 'https://evil.app.example.com/cb'],
    ['web', 'https://app.example.community/cb'],
    ['web', 'https://app.example.com./cb'],
    ['web', 'https://APP.EXAMPLE.COM/cb'],
    ['web', 'https://app.example.com/cbx'],
    ['web', 'https://app.example.com/cb/'],
    ['web', 'http://app.example.com/cb'],
    ['loopback', 'http://127.0.0.1.evil.example:5555/callback'],
    ['loopback', 'http://localhost.evil.example:3334/cb'],
    ['loopback', 'http://evil.localhost:3334/cb'],
    ['loopback', 'http://localhost.:3334/cb'],
    ['loopback', 'https://127.0.0.1:5555/callback'],
  ] as const) {
    test(`${uri} is refused with an error page, no redirect`, () => assertRefused(client, uri));
  }
});

describe('path traversal', () => {
  for (const [client, uri] of [
    ['web', 'https://app.example.com/cb/../evil'],
    ['web', 'https://app.example.com/cb/%2e%2e/evil'],
    ['web', 'https://app.example.com/cb/..%2Fevil'],
    ['web', 'https://app.example.com/cb\\..\\evil'],
    ['loopback', 'http://127.0.0.1:5555/callback/../evil'],
    ['loopback', 'http://127.0.0.1:5555/callback/%2e%2e/evil'],
    ['custom', 'com.example.app:/cb/../evil'],
  ] as const) {
    test(`${uri} is refused with an error page, no redirect`, () => assertRefused(client, uri));
  }
});

describe('fragments', () => {
  for (const [client, uri] of [
    ['web', `${WEB}#`],
    ['web', `${WEB}#access_token=x`],
    ['loopback', 'http://127.0.0.1:5555/callback#x'],
    ['custom', `${CUSTOM}#x`],
  ] as const) {
    test(`${uri} is refused with an error page, no redirect`, () => assertRefused(client, uri));
  }

  test('registering a redirect URI with an empty fragment is refused: invalid_redirect_uri, nothing stored', async () => {
    const before = storeOf(as).count('Client');
    const response = await register(ledger, as.issuer, {
      application_type: 'web',
      redirect_uris: [`${WEB}#`],
    });
    assert.equal(response.status, 400, JSON.stringify(response.body));
    assert.equal(response.body.error, 'invalid_redirect_uri');
    assert.equal(storeOf(as).count('Client'), before);
  });
});

describe('IPv6 and other loopback forms', () => {
  // RFC 8252 §7.3 frees the port of 127.0.0.1, [::1] and localhost only; another address of the
  // loopback range, an IPv4-mapped or unspecified address, or the other family is another listener.
  for (const uri of [
    'http://127.0.0.2:5555/callback',
    'http://0.0.0.0:5555/callback',
    'http://[::ffff:127.0.0.1]:5555/callback',
    'http://[::ffff:7f00:1]:5555/cb',
    'http://[::]:5555/cb',
    'http://[::2]:5555/cb',
    'http://[::1%25lo]:5555/cb',
    'http://[::1]:5555/callback',
    'http://127.0.0.1:5555/cb',
  ]) {
    test(`${uri} is refused with an error page, no redirect`, () => assertRefused('loopback', uri));
  }

  test('registering http on [::ffff:127.0.0.1] is refused: it is not a loopback redirect URI', async () => {
    const response = await register(ledger, as.issuer, { redirect_uris: ['http://[::ffff:127.0.0.1]/cb'] });
    assert.equal(response.status, 400, JSON.stringify(response.body));
    assert.equal(response.body.error, 'invalid_redirect_uri');
  });
});

describe('custom schemes', () => {
  for (const uri of [
    'com.example.app:/cb2',
    'com.example.app://cb',
    'com.example.apps:/cb',
    'com.example.app.evil:/cb',
    'COM.EXAMPLE.APP:/cb',
    'javascript:/cb',
    'https://app.example.com/cb',
  ]) {
    test(`${uri} is refused for a client registered with ${CUSTOM}`, () => assertRefused('custom', uri));
  }
});

describe('the token endpoint insists on the redirect URI the code was issued for', () => {
  async function loopbackCode() {
    const result = await signIn(ledger, {
      issuer: as.issuer,
      clientId: clients.loopback,
      redirectUri: 'http://127.0.0.1:5555/callback',
      scope: 'stocks:read',
    });
    const code = result.callback.searchParams.get('code');
    assert.ok(code, result.callback.href);
    return { code, verifier: result.verifier };
  }

  for (const [name, redirectUri, error] of [
    ['another loopback port', 'http://127.0.0.1:6666/callback', 'invalid_grant'],
    ['another loopback host', 'http://localhost:5555/callback', 'invalid_grant'],
    ['the registered URI without the port', LOOPBACK_V4, 'invalid_grant'],
    // RFC 6749 §4.1.3: required when the authorization request had one.
    ['no redirect_uri at all', undefined, 'invalid_request'],
  ] as const) {
    test(`a code for port 5555 redeemed with ${name}: ${error}, nothing issued, the code still works`, async () => {
      const { code, verifier } = await loopbackCode();
      const before = issuedCounts(as);
      const response = await redeem(ledger, as.issuer, {
        code,
        verifier,
        redirectUri,
        clientId: clients.loopback,
      });
      assertOAuthError(response, 400, error);
      assert.deepEqual(issuedCounts(as), before);
      const rightful = await redeem(ledger, as.issuer, {
        code,
        verifier,
        redirectUri: 'http://127.0.0.1:5555/callback',
        clientId: clients.loopback,
      });
      assert.equal(rightful.status, 200, rightful.text);
    });
  }
});

declareLeakCheck(ledger, { minimumSecrets: 8, oneTimeCodes: true });
