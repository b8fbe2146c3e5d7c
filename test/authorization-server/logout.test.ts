/**
 * RP-initiated logout (issue 9): `end_session_endpoint` in the metadata, a page of ours that asks,
 * a sign-out that needs the page's form (no cross-site sign-out), and the redirect back to a
 * registered `post_logout_redirect_uri` only.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  startTestAuthorizationServer,
  type TestAuthorizationServer,
} from '../helpers/authorization-server.ts';
import { authorize, Browser, pageText, registerNativeClient } from '../helpers/oauth.ts';

const REDIRECT_URI = 'http://127.0.0.1/callback';
const AFTER_LOGOUT = 'http://127.0.0.1/signed-out';

const textOf = pageText;
const xsrfOf = (page: string) => /name="xsrf" value="([^"]+)"/.exec(page)?.[1] ?? '';

describe('signing out (RP-initiated logout)', () => {
  let as: TestAuthorizationServer;
  let clientId: string;
  before(async () => {
    as = await startTestAuthorizationServer();
    clientId = await registerNativeClient(as.issuer, [REDIRECT_URI], {
      post_logout_redirect_uris: [AFTER_LOGOUT],
    });
  });
  after(() => as.close());

  const signIn = async () => {
    const browser = new Browser();
    const first = await authorize({
      issuer: as.issuer,
      clientId,
      redirectUri: REDIRECT_URI,
      scope: 'stocks:read',
      browser,
    });
    // (Consent only the first time: a sign-in in the same request is the interaction it needs.)
    assert.deepEqual(first.pages.slice(0, 2), ['email', 'code']);
    // Signed in: the next authorization asks no email (a loopback client's consent is asked again).
    const again = await authorize({
      issuer: as.issuer,
      clientId,
      redirectUri: REDIRECT_URI,
      scope: 'stocks:read',
      browser,
    });
    assert.ok(!again.pages.includes('email'), again.pages.join(', '));
    return browser;
  };

  test('the metadata names the end_session_endpoint', async () => {
    const metadata = (await (
      await fetch(`${as.issuer}/.well-known/oauth-authorization-server`)
    ).json()) as Record<string, unknown>;
    assert.equal(metadata.end_session_endpoint, `${as.issuer}/session/end`);
  });

  test('the sign-out page asks, locked down; signing out ends the session and the next sign-in asks again', async () => {
    const browser = await signIn();
    const ask = await browser.request(`${as.issuer}/session/end`);
    assert.equal(ask.status, 200);
    assert.equal(ask.headers.get('x-frame-options'), 'DENY');
    const csp = ask.headers.get('content-security-policy') ?? '';
    assert.match(csp, /default-src 'none'/);
    assert.doesNotMatch(csp, /script-src/);
    assert.match(textOf(ask.text), /Sign out\? You are signed in as alice@example\.com/);
    const done = await browser.request(`${as.issuer}/session/end/confirm`, {
      form: { xsrf: xsrfOf(ask.text), logout: 'yes' },
    });
    assert.equal(done.status, 303);
    const success = await browser.request(done.location!);
    assert.equal(success.status, 200);
    assert.match(textOf(success.text), /You are signed out/);
    const next = await authorize({
      issuer: as.issuer,
      clientId,
      redirectUri: REDIRECT_URI,
      scope: 'stocks:read',
      browser,
    });
    assert.equal(next.pages[0], 'email', 'signed out: the next authorization asks who you are');
  });

  test("a sign-out without the page's form (a cross-site request) is refused, and the session stays", async () => {
    const browser = await signIn();
    const forged = await browser.request(`${as.issuer}/session/end/confirm`, {
      form: { logout: 'yes' },
      // As a browser sends it: a page, not JSON.
      headers: { accept: 'text/html' },
    });
    assert.equal(forged.status, 400);
    assert.match(forged.headers.get('content-type') ?? '', /^text\/html/);
    assert.match(textOf(forged.text), /This sign-out page has expired Nobody was signed out/);
    const still = await authorize({
      issuer: as.issuer,
      clientId,
      redirectUri: REDIRECT_URI,
      scope: 'stocks:read',
      browser,
    });
    assert.ok(!still.pages.includes('email'), 'still signed in');
  });

  test('an application is sent back to its registered post_logout_redirect_uri, and to nothing else', async () => {
    const browser = await signIn();
    const url = new URL(`${as.issuer}/session/end`);
    url.searchParams.set('client_id', clientId);
    url.searchParams.set('post_logout_redirect_uri', AFTER_LOGOUT);
    url.searchParams.set('state', 'st-1');
    const ask = await browser.request(url.href);
    assert.match(textOf(ask.text), /asks to sign you out/);
    const done = await browser.request(`${as.issuer}/session/end/confirm`, {
      form: { xsrf: xsrfOf(ask.text), logout: 'yes' },
    });
    assert.equal(done.status, 303);
    const back = new URL(done.location!);
    assert.equal(`${back.origin}${back.pathname}`, AFTER_LOGOUT);
    assert.equal(back.searchParams.get('state'), 'st-1');

    const elsewhere = new URL(url);
    elsewhere.searchParams.set('post_logout_redirect_uri', 'https://evil.example/after');
    const refused = await browser.request(elsewhere.href);
    assert.equal(refused.status, 400);
    assert.equal(refused.location, undefined);
  });

  test('post_logout_redirect_uris follow the redirect URI rules at registration', async () => {
    for (const uri of ['javascript:alert(1)', 'http://evil.example/after', 'https://app.example/x#frag']) {
      const response = await fetch(`${as.issuer}/register`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          redirect_uris: [REDIRECT_URI],
          post_logout_redirect_uris: [uri],
          application_type: 'native',
        }),
      });
      assert.equal(response.status, 400, uri);
      assert.equal(((await response.json()) as { error: string }).error, 'invalid_client_metadata');
    }
  });
});
