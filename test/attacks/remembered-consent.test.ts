/**
 * Remembered consent and loopback clients (RFC 8252 §8.6, RFC 9700 §4.1.1, §2.1.1): a public
 * client's client_id is no secret, and any local program can listen on a loopback port and bring its
 * own PKCE. When the user consented to a public loopback client once, another program using the same
 * client_id on another port must not get a code from the user's browser session without a page the
 * user answers (one that names where the browser is sent back to).
 *
 * Already covered elsewhere and not repeated: consent is remembered per user and client, and step-up
 * asks only for the new scopes (test/authorization-server/code-flow.test.ts).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { TestAuthorizationServer } from '../helpers/authorization-server.ts';
import { Browser } from '../helpers/oauth.ts';
import { declareLeakCheck, SecretLedger } from '../helpers/secret-leaks.ts';
import {
  authorizationRequest,
  codeRequest,
  registerOk,
  signIn,
  startAttackServer,
} from './support/authorization-server.ts';

const CONSENTED = 'http://127.0.0.1:5555/callback';
const OTHER_PROGRAM = 'http://127.0.0.1:6000/callback';
const ledger = new SecretLedger();
let as: TestAuthorizationServer;

before(async () => {
  as = await startAttackServer(ledger);
});
after(() => as.close());

/** Registers a public loopback client and has alice consent to it once, from `browser`. */
async function consentedOnce(applicationType: 'web' | 'native', browser: Browser) {
  const clientId = String(
    (
      await registerOk(ledger, as.issuer, {
        client_name: `Loopback ${applicationType} agent`,
        application_type: applicationType,
        redirect_uris: ['http://127.0.0.1/callback'],
      })
    ).client_id,
  );
  const first = await signIn(ledger, {
    issuer: as.issuer,
    clientId,
    redirectUri: CONSENTED,
    scope: 'stocks:read',
    browser,
  });
  assert.deepEqual(first.pages, ['email', 'code', 'consent'], 'the first time, the user consents');
  assert.ok(first.callback.searchParams.get('code'));
  return clientId;
}

/**
 * The other program's authorization request in the user's browser: it must end on a page of the
 * authorization server with a form for the user, never on the program's port with a code.
 */
async function assertUserIsAsked(clientId: string, browser: Browser, extra: Record<string, string> = {}) {
  const { params } = codeRequest(clientId, OTHER_PROGRAM, extra);
  let response = await authorizationRequest(as.issuer, params, browser);
  for (let step = 0; step < 5; step += 1) {
    assert.equal(response.status, 303, response.text.slice(0, 200));
    const location = response.location!;
    ledger.remember(location.searchParams.get('code'));
    assert.equal(location.searchParams.get('code'), null, `a code was sent to ${location.origin}`);
    assert.equal(location.origin, as.issuer, `the browser was sent to ${location.href}`);
    const page = await browser.request(location.href);
    if (page.status === 200) {
      assert.match(page.text, /name="(decision|email)"/, 'a page the user answers');
      if (page.text.includes('name="decision"')) {
        assert.match(page.text, /127\.0\.0\.1:6000/, 'the page names where the browser goes back to');
      }
      return;
    }
    response = { ...page, location: page.location ? new URL(page.location) : undefined, contentType: '' };
  }
  assert.fail('no page was shown');
}

describe('a public web client with a loopback redirect URI, consented to once', () => {
  let clientId: string;
  const browser = new Browser();
  before(async () => {
    clientId = await consentedOnce('web', browser);
  });

  test('another local program (same client_id, another port, its own PKCE) gets a page the user answers, not a code', async () => {
    await assertUserIsAsked(clientId, browser);
  });

  test('the same with prompt=none: an error to the program, not a code', async () => {
    const { params } = codeRequest(clientId, OTHER_PROGRAM, { prompt: 'none' });
    const response = await authorizationRequest(as.issuer, params, browser);
    assert.equal(response.status, 303);
    const location = response.location!;
    assert.equal(`${location.origin}${location.pathname}`, OTHER_PROGRAM);
    assert.equal(location.searchParams.get('code'), null, 'no code without the user');
    assert.ok(
      ['consent_required', 'interaction_required', 'login_required'].includes(
        location.searchParams.get('error') ?? '',
      ),
      `error=${location.searchParams.get('error')}`,
    );
    assert.equal(location.searchParams.get('iss'), as.issuer);
  });

  test('control: from a browser without a session, the program gets the sign-in page', async () => {
    await assertUserIsAsked(clientId, new Browser());
  });
});

describe('control: a public native client in the same situation', () => {
  test('another local program gets the consent page naming its port (RFC 8252 §8.6)', async () => {
    const browser = new Browser();
    const clientId = await consentedOnce('native', browser);
    await assertUserIsAsked(clientId, browser);
  });
});

declareLeakCheck(ledger, { minimumSecrets: 4, oneTimeCodes: true });
