/**
 * Every dead end a person can reach at the authorization server is a page of ours that says what
 * happened and what to do (issue 9), never a redirect to an address nobody answers or a bare
 * "Not Found".
 */
import assert from 'node:assert/strict';
import { DatabaseSync } from 'node:sqlite';
import { after, before, describe, test } from 'node:test';
import {
  startTestAuthorizationServer,
  type TestAuthorizationServer,
} from '../helpers/authorization-server.ts';
import { Browser, csrfOf, latestCode, pageText, pkce, registerNativeClient } from '../helpers/oauth.ts';

const REGISTERED = 'http://127.0.0.1/callback';

const textOf = pageText;

describe('dead ends at the authorization server', () => {
  let as: TestAuthorizationServer;
  let clientId: string;
  const authorizationUrl = (params: Record<string, string> = {}) => {
    const url = new URL(`${as.issuer}/authorize`);
    const base = {
      response_type: 'code',
      client_id: clientId,
      redirect_uri: 'http://127.0.0.1:5555/callback',
      scope: 'stocks:read',
      state: 'xyz',
      code_challenge: pkce().challenge,
      code_challenge_method: 'S256',
    };
    for (const [key, value] of Object.entries({ ...base, ...params })) url.searchParams.set(key, value);
    return url.href;
  };

  before(async () => {
    as = await startTestAuthorizationServer();
    clientId = await registerNativeClient(as.issuer, [REGISTERED]);
  });
  after(() => as.close());

  test('the root says what this service is, as a page', async () => {
    const root = await fetch(`${as.issuer}/`);
    assert.equal(root.status, 200);
    assert.match(root.headers.get('content-type') ?? '', /^text\/html/);
    assert.equal(root.headers.get('x-frame-options'), 'DENY');
    assert.match(textOf(await root.text()), /Sign-in service .*nothing to do here/i);
  });

  test('a sign-in link whose sign-in has expired ends on a page that says to start again, not at the application', async () => {
    const browser = new Browser();
    const start = await browser.request(authorizationUrl());
    assert.equal(start.status, 303);
    const interaction = start.location!;
    const page = await browser.request(interaction);
    // The sign-in page shows the application's badge, as consent does: a DCR client is unverified.
    assert.match(page.text, /<span class="badge unverified">Unverified<\/span>/);
    const path = new URL(interaction).pathname;
    const sent = await browser.request(`${as.issuer}${path}/email`, {
      form: { csrf: csrfOf(page.text), email: 'alice@example.com' },
    });
    const code = await latestCode(as.issuer, 'alice@example.com');
    const signedIn = await browser.request(`${as.issuer}${path}/code`, {
      form: { csrf: csrfOf(sent.text), code },
    });
    assert.equal(signedIn.status, 303);
    // The sign-in expires (as after its lifetime) before the browser follows the link back.
    const db = new DatabaseSync(`${as.dataDir}/gatehouse.db`);
    db.exec("DELETE FROM oidc_models WHERE model = 'Interaction'");
    db.close();
    for (const url of [signedIn.location!, interaction]) {
      const expired = await browser.request(url);
      assert.equal(expired.status, 400, url);
      assert.equal(expired.location, undefined, 'no redirect to an address nobody may answer');
      const text = textOf(expired.text);
      assert.match(text, /expired/);
      assert.match(text, /start (signing in )?again/);
    }
  });

  test('an unknown application and an unregistered return address are pages that say what to do', async () => {
    const unknown = await new Browser().request(authorizationUrl({ client_id: 'not-a-client' }));
    assert.equal(unknown.status, 400);
    assert.match(textOf(unknown.text), /This application is not known here .*Go back/);
    const elsewhere = await new Browser().request(
      authorizationUrl({ redirect_uri: 'https://evil.example/cb' }),
    );
    assert.equal(elsewhere.status, 400);
    assert.equal(elsewhere.location, undefined);
    const text = textOf(elsewhere.text);
    assert.match(text, /cannot receive your sign-in .*Do not continue/);
    assert.match(text, /Error: invalid_redirect_uri/);
  });
});
