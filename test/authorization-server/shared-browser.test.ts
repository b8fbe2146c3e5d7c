/**
 * A shared browser (issue 9): when the server asks a browser that is already signed in to sign in
 * again (prompt=login, max_age), the email page names who is signed in, offers to continue as them,
 * and links to the sign-out page; a browser with no session is told nothing.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  startTestAuthorizationServer,
  type TestAuthorizationServer,
} from '../helpers/authorization-server.ts';
import {
  authorize,
  Browser,
  csrfOf,
  latestCode,
  pageText,
  pkce,
  registerNativeClient,
} from '../helpers/oauth.ts';

const REDIRECT_URI = 'http://127.0.0.1/callback';
/** The page's text, without the space pageText leaves where a tag ended before a full stop. */
const textOf = (page: string) => pageText(page).replace(/ ([.,])/g, '$1');
const xsrfOf = (page: string) => /name="xsrf" value="([^"]+)"/.exec(page)?.[1] ?? '';
const emailValueOf = (page: string) => /<input id="email"[^>]*\svalue="([^"]*)"/.exec(page)?.[1];

describe('the sign-in page on a shared browser', () => {
  let as: TestAuthorizationServer;
  let clientId: string;
  before(async () => {
    as = await startTestAuthorizationServer();
    clientId = await registerNativeClient(as.issuer, [REDIRECT_URI]);
  });
  after(() => as.close());

  const signedInBrowser = async (email = 'alice@example.com') => {
    const browser = new Browser();
    const first = await authorize({
      issuer: as.issuer,
      clientId,
      redirectUri: REDIRECT_URI,
      scope: 'stocks:read',
      email,
      browser,
    });
    assert.ok(first.callback.searchParams.get('code'));
    return browser;
  };

  /** Starts an authorization and returns the page the browser lands on, and where. */
  const startAuthorization = async (browser: Browser, extra: Record<string, string> = {}) => {
    const url = new URL(`${as.issuer}/authorize`);
    const params = {
      response_type: 'code',
      client_id: clientId,
      redirect_uri: REDIRECT_URI,
      scope: 'stocks:read',
      state: 'st',
      code_challenge: pkce().challenge,
      code_challenge_method: 'S256',
      ...extra,
    };
    for (const [key, value] of Object.entries(params)) url.searchParams.set(key, value);
    const redirect = await browser.request(url.href);
    assert.equal(redirect.status, 303, redirect.text.slice(0, 300));
    const page = await browser.request(redirect.location!);
    return { page, at: redirect.location! };
  };

  test('prompt=login: the email page names the signed-in user and links to sign out, under the strict policy', async () => {
    const browser = await signedInBrowser();
    const { page } = await startAuthorization(browser, { prompt: 'login' });
    assert.equal(page.status, 200);
    assert.ok(page.text.includes('name="email"'), 'the email page');
    assert.match(
      textOf(page.text),
      /You are signed in as alice@example\.com\. To continue as alice@example\.com, confirm it with a code sent to that address\. Not you\? Sign out, then start again from your application\./,
    );
    assert.match(page.text, /<a href="\/session\/end">Not you\? Sign out<\/a>/);
    assert.equal(emailValueOf(page.text), 'alice@example.com', 'continuing as them is one click');
    const csp = page.headers.get('content-security-policy') ?? '';
    assert.match(csp, /default-src 'none'/);
    assert.doesNotMatch(csp, /script-src/);
    assert.doesNotMatch(csp, /unsafe-inline/);

    // The link leads to the sign-out page, which names the same user.
    const signOut = await browser.request(new URL('/session/end', as.issuer).href);
    assert.equal(signOut.status, 200);
    assert.match(pageText(signOut.text), /Sign out\? You are signed in as alice@example\.com/);
  });

  test('max_age=0 asks again too, and says so', async () => {
    const browser = await signedInBrowser('bob@example.com');
    // max_age counts whole seconds since the sign-in, and is an OpenID Connect parameter (openid).
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const { page } = await startAuthorization(browser, { max_age: '0', scope: 'openid stocks:read' });
    assert.match(textOf(page.text), /You are signed in as bob@example\.com\./);
  });

  test('continuing as the signed-in user, or signing in as someone else, both finish', async () => {
    const browser = await signedInBrowser();
    const switched: string[] = [];
    for (const email of ['alice@example.com', 'bob@example.com']) {
      const { page, at } = await startAuthorization(browser, { prompt: 'login' });
      const path = new URL(at).pathname;
      // Alice continues with the address the page filled in; Bob types his over it.
      const prefilled = emailValueOf(page.text);
      assert.equal(prefilled, 'alice@example.com');
      const sent = await browser.request(`${as.issuer}${path}/email`, {
        form: { csrf: csrfOf(page.text), email: email === 'alice@example.com' ? (prefilled ?? '') : email },
      });
      assert.equal(sent.status, 200);
      let response = await browser.request(`${as.issuer}${path}/code`, {
        form: { csrf: csrfOf(sent.text), code: await latestCode(as.issuer, email) },
      });
      // Through consent (a loopback client is asked again) to the redirect back to the client.
      for (let step = 0; step < 8 && response.location?.startsWith(as.issuer); step++) {
        const next = await browser.request(response.location);
        if (next.text.includes('name="decision"')) {
          const consentPath = new URL(response.location).pathname;
          assert.ok(pageText(next.text).includes(`Signed in as ${email}`), 'consent names who signed in');
          response = await browser.request(`${as.issuer}${consentPath}/consent`, {
            form: { csrf: csrfOf(next.text), decision: 'allow' },
          });
        } else if (next.status === 200 && next.text.includes('Submitting Callback')) {
          // Another account over a session: oidc-provider first ends the old session with a form that
          // submits itself (a Continue button without scripts), then resumes as the new account.
          switched.push(email);
          const action = /<form method="post" action="([^"]+)"/.exec(next.text)![1]!;
          const fields = Object.fromEntries(
            [...next.text.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)"/g)].map((m) => [
              m[1]!,
              m[2]!,
            ]),
          );
          response = await browser.request(new URL(action, as.issuer).href, { form: fields });
        } else response = next;
      }
      assert.ok(response.location?.startsWith(REDIRECT_URI), `${response.status} ${pageText(response.text)}`);
      assert.ok(new URL(response.location!).searchParams.get('code'));
    }
    assert.deepEqual(switched, ['bob@example.com'], 'only a different account ends the old session');
    // The browser is now bob's: the next forced sign-in names bob.
    const { page } = await startAuthorization(browser, { prompt: 'login' });
    assert.match(textOf(page.text), /You are signed in as bob@example\.com\./);
  });

  test('no session, no name: a fresh browser, and a browser that signed out', async () => {
    const fresh = await startAuthorization(new Browser(), { prompt: 'login' });
    assert.ok(fresh.page.text.includes('name="email"'));
    assert.doesNotMatch(pageText(fresh.page.text), /signed in as|Not you/i);
    assert.equal(emailValueOf(fresh.page.text), '');

    const browser = await signedInBrowser();
    const ask = await browser.request(`${as.issuer}/session/end`);
    const done = await browser.request(`${as.issuer}/session/end/confirm`, {
      form: { xsrf: xsrfOf(ask.text), logout: 'yes' },
    });
    assert.equal(done.status, 303);
    const after = await startAuthorization(browser, { prompt: 'login' });
    assert.ok(after.page.text.includes('name="email"'));
    assert.doesNotMatch(pageText(after.page.text), /signed in as|Not you|alice@example\.com/i);
  });
});
