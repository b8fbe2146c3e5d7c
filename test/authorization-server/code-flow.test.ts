/**
 * The authorization code flow end to end against a real server: registration, login by one-time
 * code, consent, PKCE, token, and every rejection the flow promises.
 */
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  startTestAuthorizationServer,
  type TestAuthorizationServer,
} from '../helpers/authorization-server.ts';
import {
  authorize,
  Browser,
  basic,
  csrfOf,
  pkce,
  postForm,
  redeemCode,
  userToken,
} from '../helpers/oauth.ts';

const MCP = 'http://localhost:8000/mcp';
const REDIRECT = 'http://127.0.0.1/callback';

async function register(issuer: string, metadata: Record<string, unknown> = {}) {
  const response = await fetch(`${issuer}/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      client_name: 'Test agent',
      redirect_uris: [REDIRECT],
      application_type: 'native',
      ...metadata,
    }),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

describe('authorization code flow', () => {
  let as: TestAuthorizationServer;
  let clientId: string;
  before(async () => {
    as = await startTestAuthorizationServer();
    const registered = await register(as.issuer);
    assert.equal(registered.status, 201);
    clientId = String(registered.body.client_id);
  });
  after(() => as.close());

  test('login by one-time code, consent, then an opaque token for the MCP server', async () => {
    const result = await authorize({
      issuer: as.issuer,
      clientId,
      redirectUri: 'http://127.0.0.1:5555/callback',
      scope: 'stocks:read',
    });
    assert.deepEqual(result.pages, ['email', 'code', 'consent']);
    assert.equal(result.callback.origin, 'http://127.0.0.1:5555');
    assert.equal(result.callback.searchParams.get('state'), result.state);
    assert.equal(
      result.callback.searchParams.get('iss'),
      as.issuer,
      'RFC 9207 iss in the authorization response',
    );
    const code = result.callback.searchParams.get('code')!;
    const token = await redeemCode(as.issuer, {
      code,
      verifier: result.verifier,
      redirectUri: 'http://127.0.0.1:5555/callback',
      clientId,
    });
    assert.equal(token.status, 200, token.text);
    assert.equal(token.json.token_type, 'Bearer');
    assert.equal(token.json.scope, 'stocks:read');
    assert.equal(token.json.refresh_token, undefined, 'no refresh token by default');
    assert.ok(Number(token.json.expires_in) <= 900);
    const accessToken = String(token.json.access_token);
    assert.equal(accessToken.split('.').length, 1, 'agents get opaque tokens, not JWTs');

    // The consent page named the client, the redirect host and the scope with its description.
    assert.match(result.consentHtml!, /Test agent/);
    assert.match(result.consentHtml!, /127\.0\.0\.1:5555/);
    assert.match(result.consentHtml!, /See stock prices in your region/);
    assert.match(result.consentHtml!, /[Uu]nverified/);
  });

  test('the audience defaults to the MCP server and a trailing slash names the same resource', async () => {
    for (const resource of [undefined, MCP, `${MCP}/`]) {
      const result = await authorize({
        issuer: as.issuer,
        clientId,
        redirectUri: REDIRECT,
        scope: 'stocks:read',
        ...(resource ? { resource } : {}),
      });
      const token = await redeemCode(as.issuer, {
        code: result.callback.searchParams.get('code')!,
        verifier: result.verifier,
        redirectUri: REDIRECT,
        clientId,
        ...(resource ? { resource } : {}),
      });
      assert.equal(token.status, 200, token.text);
      const introspection = await introspect(as, String(token.json.access_token));
      assert.equal(introspection.aud, MCP);
    }
  });

  test('an unknown resource or an API audience is refused with invalid_target', async () => {
    for (const resource of ['http://localhost:8000/other', 'http://localhost:8000/api/stocks']) {
      const { challenge } = pkce();
      const url = new URL(`${as.issuer}/authorize`);
      url.search = new URLSearchParams({
        response_type: 'code',
        client_id: clientId,
        redirect_uri: REDIRECT,
        scope: 'stocks:read',
        state: 's1',
        code_challenge: challenge,
        code_challenge_method: 'S256',
        resource,
      }).toString();
      const response = await fetch(url, { redirect: 'manual' });
      assert.equal(response.status, 303);
      const location = new URL(response.headers.get('location')!);
      assert.equal(location.searchParams.get('error'), 'invalid_target');
      assert.equal(location.searchParams.get('state'), 's1');
      assert.equal(location.searchParams.get('iss'), as.issuer, 'iss on error responses too (RFC 9207)');
    }
  });

  test('PKCE is required, plain is refused, and the verifier must match', async () => {
    const base = {
      response_type: 'code',
      client_id: clientId,
      redirect_uri: REDIRECT,
      scope: 'stocks:read',
      state: 's2',
    };
    for (const extra of [{}, { code_challenge: 'x'.repeat(43), code_challenge_method: 'plain' }] as Record<
      string,
      string
    >[]) {
      const url = new URL(`${as.issuer}/authorize`);
      url.search = new URLSearchParams({ ...base, ...extra }).toString();
      const response = await fetch(url, { redirect: 'manual' });
      const location = new URL(response.headers.get('location')!);
      assert.equal(location.searchParams.get('error'), 'invalid_request', JSON.stringify(extra));
      assert.equal(location.searchParams.get('iss'), as.issuer);
    }
    const result = await authorize({
      issuer: as.issuer,
      clientId,
      redirectUri: REDIRECT,
      scope: 'stocks:read',
    });
    const code = result.callback.searchParams.get('code')!;
    const wrong = await redeemCode(as.issuer, {
      code,
      verifier: pkce().verifier,
      redirectUri: REDIRECT,
      clientId,
    });
    assert.equal(wrong.status, 400);
    assert.equal(wrong.json.error, 'invalid_grant');
    const missing = await redeemCode(as.issuer, { code, redirectUri: REDIRECT, clientId });
    assert.equal(missing.status, 400);
  });

  test('a code works once; replaying it fails and revokes what it issued', async () => {
    const result = await authorize({
      issuer: as.issuer,
      clientId,
      redirectUri: REDIRECT,
      scope: 'stocks:read',
    });
    const code = result.callback.searchParams.get('code')!;
    const first = await redeemCode(as.issuer, {
      code,
      verifier: result.verifier,
      redirectUri: REDIRECT,
      clientId,
    });
    assert.equal(first.status, 200);
    const replay = await redeemCode(as.issuer, {
      code,
      verifier: result.verifier,
      redirectUri: REDIRECT,
      clientId,
    });
    assert.equal(replay.status, 400);
    assert.equal(replay.json.error, 'invalid_grant');
    const introspection = await introspect(as, String(first.json.access_token));
    assert.equal(
      introspection.active,
      false,
      'RFC 6749 §4.1.2: tokens issued from a replayed code are revoked',
    );
  });

  test('the redirect URI must match at the token endpoint and at the authorization endpoint', async () => {
    const result = await authorize({
      issuer: as.issuer,
      clientId,
      redirectUri: REDIRECT,
      scope: 'stocks:read',
    });
    const mismatch = await redeemCode(as.issuer, {
      code: result.callback.searchParams.get('code')!,
      verifier: result.verifier,
      redirectUri: 'http://127.0.0.1/other',
      clientId,
    });
    assert.equal(mismatch.json.error, 'invalid_grant');
    const url = new URL(`${as.issuer}/authorize`);
    url.search = new URLSearchParams({
      response_type: 'code',
      client_id: clientId,
      redirect_uri: 'https://evil.example/callback',
      scope: 'stocks:read',
      code_challenge: pkce().challenge,
      code_challenge_method: 'S256',
    }).toString();
    const response = await fetch(url, { redirect: 'manual' });
    assert.equal(response.status, 400, 'never redirect to an unregistered URI');
    assert.equal(response.headers.get('location'), null);
  });

  test('scopes the MCP server does not define are dropped', async () => {
    const { token } = await userToken({
      issuer: as.issuer,
      clientId,
      redirectUri: REDIRECT,
      scope: 'stocks:read admin:all',
    });
    assert.equal(token.status, 200, token.text);
    assert.equal(token.json.scope, 'stocks:read');
  });

  test('consent is remembered per user and client; more scope asks only for the new ones', async () => {
    const other = await register(as.issuer, { client_name: 'Consent agent' });
    const id = String(other.body.client_id);
    const first = await authorize({
      issuer: as.issuer,
      clientId: id,
      redirectUri: REDIRECT,
      scope: 'stocks:read',
      email: 'alice@example.com',
    });
    assert.deepEqual(first.pages, ['email', 'code', 'consent']);
    // A new browser: the user signs in again, but is not asked to consent again.
    const again = await authorize({
      issuer: as.issuer,
      clientId: id,
      redirectUri: REDIRECT,
      scope: 'stocks:read',
      email: 'alice@example.com',
    });
    assert.deepEqual(again.pages, ['email', 'code']);
    // Step-up in the same browser: no login, consent only for stocks:trade.
    const stepUp = await authorize({
      issuer: as.issuer,
      clientId: id,
      redirectUri: REDIRECT,
      scope: 'stocks:read stocks:trade',
      browser: again.browser,
    });
    assert.deepEqual(stepUp.pages, ['consent']);
    const requested = stepUp.consentHtml!.split(/Already allowed/i)[0]!;
    assert.match(requested, /stocks:trade/);
    assert.doesNotMatch(requested, /stocks:read/);
    const token = await redeemCode(as.issuer, {
      code: stepUp.callback.searchParams.get('code')!,
      verifier: stepUp.verifier,
      redirectUri: REDIRECT,
      clientId: id,
    });
    assert.equal(token.json.scope, 'stocks:read stocks:trade');
    assert.ok(as.audit('consent').some((r) => r.outcome === 'success' && r.client_id === id));
  });

  test('a public loopback client never gets a code for another local program without a page (defect 1)', async () => {
    // A web client (what SDK v1 registers) with a port-less loopback redirect URI, consented to once.
    const web = await register(as.issuer, { client_name: 'Web agent', application_type: 'web' });
    const id = String(web.body.client_id);
    const first = await authorize({
      issuer: as.issuer,
      clientId: id,
      redirectUri: 'http://127.0.0.1:5001/callback',
      scope: 'stocks:read',
    });
    assert.deepEqual(first.pages, ['email', 'code', 'consent']);
    // Another program: same client_id, its own port and PKCE pair, the user's browser session.
    const intruder = await authorize({
      issuer: as.issuer,
      clientId: id,
      redirectUri: 'http://127.0.0.1:6002/callback',
      scope: 'stocks:read',
      browser: first.browser,
      consent: 'deny',
    });
    assert.deepEqual(intruder.pages, ['consent'], 'the user is asked, not skipped');
    assert.equal(intruder.callback.searchParams.get('code'), null);
    assert.equal(intruder.callback.searchParams.get('error'), 'access_denied');
    // Answered, it works: the page is the protection, not a refusal of the client.
    const allowed = await authorize({
      issuer: as.issuer,
      clientId: id,
      redirectUri: 'http://127.0.0.1:6003/callback',
      scope: 'stocks:read',
      browser: first.browser,
    });
    assert.deepEqual(allowed.pages, ['consent']);
    assert.ok(allowed.callback.searchParams.get('code'));
  });

  test('a confidential loopback client keeps its remembered consent', async () => {
    const confidential = await register(as.issuer, {
      client_name: 'Confidential agent',
      application_type: 'web',
      token_endpoint_auth_method: 'client_secret_basic',
    });
    const id = String(confidential.body.client_id);
    const first = await authorize({
      issuer: as.issuer,
      clientId: id,
      redirectUri: REDIRECT,
      scope: 'stocks:read',
    });
    assert.deepEqual(first.pages, ['email', 'code', 'consent']);
    const again = await authorize({
      issuer: as.issuer,
      clientId: id,
      redirectUri: 'http://127.0.0.1:6004/callback',
      scope: 'stocks:read',
      browser: first.browser,
    });
    assert.deepEqual(again.pages, [], 'a stolen code is useless without the client secret');
    assert.ok(again.callback.searchParams.get('code'));
  });

  test('denying consent returns access_denied with state and iss', async () => {
    const other = await register(as.issuer, { client_name: 'Denied agent' });
    const result = await authorize({
      issuer: as.issuer,
      clientId: String(other.body.client_id),
      redirectUri: REDIRECT,
      scope: 'stocks:read',
      consent: 'deny',
    });
    assert.equal(result.callback.searchParams.get('error'), 'access_denied');
    assert.equal(result.callback.searchParams.get('state'), result.state);
    assert.equal(result.callback.searchParams.get('iss'), as.issuer);
    assert.ok(as.audit('consent').some((r) => r.outcome === 'denied'));
  });
});

/** Starts an authorization request in a fresh browser and returns the login page. */
async function startLogin(as: TestAuthorizationServer, clientId: string) {
  const browser = new Browser();
  const url = new URL(`${as.issuer}/authorize`);
  url.search = new URLSearchParams({
    response_type: 'code',
    client_id: clientId,
    redirect_uri: REDIRECT,
    scope: 'stocks:read',
    code_challenge: pkce().challenge,
    code_challenge_method: 'S256',
  }).toString();
  const start = await browser.request(url.href);
  const page = await browser.request(start.location!);
  const path = new URL(start.location!).pathname;
  return { browser, page, path };
}

async function introspect(as: TestAuthorizationServer, token: string) {
  const secret = readFileSync(path.join(as.dataDir, 'secrets/gatehouse-gateway.secret'), 'utf8').trim();
  const response = await postForm(
    `${as.issuer}/introspect`,
    { token },
    { authorization: basic('gatehouse-gateway', secret) },
  );
  return response.json;
}

describe('login by email one-time code', () => {
  let as: TestAuthorizationServer;
  let clientId: string;
  before(async () => {
    as = await startTestAuthorizationServer({
      login: { perEmail: { max: 3, windowSeconds: 60 }, perAddress: { max: 1000, windowSeconds: 60 } },
    });
    clientId = String((await register(as.issuer)).body.client_id);
  });
  after(() => as.close());

  test('pages forbid framing and scripts and carry no cache', async () => {
    const { page } = await startLogin(as, clientId);
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-security-policy')!, /frame-ancestors 'none'/);
    assert.match(page.headers.get('content-security-policy')!, /default-src 'none'/);
    assert.equal(page.headers.get('x-frame-options'), 'DENY');
    assert.equal(page.headers.get('cache-control'), 'no-store');
  });

  test('cookies are HttpOnly and SameSite', async () => {
    const browser = new Browser();
    const url = new URL(`${as.issuer}/authorize`);
    url.search = new URLSearchParams({
      response_type: 'code',
      client_id: clientId,
      redirect_uri: REDIRECT,
      scope: 'stocks:read',
      code_challenge: pkce().challenge,
      code_challenge_method: 'S256',
    }).toString();
    const response = await fetch(url, { redirect: 'manual' });
    const cookies = response.headers.getSetCookie();
    assert.ok(cookies.length > 0);
    for (const cookie of cookies) {
      assert.match(cookie, /httponly/i);
      assert.match(cookie, /samesite=lax/i);
    }
    void browser;
  });

  test('an unapproved email sees the same page but no code is sent', async () => {
    const approved = await startLogin(as, clientId);
    const approvedPage = await approved.browser.request(`${as.issuer}${approved.path}/email`, {
      form: { csrf: csrfOf(approved.page.text), email: 'alice@example.com' },
    });
    const stranger = await startLogin(as, clientId);
    const strangerPage = await stranger.browser.request(`${as.issuer}${stranger.path}/email`, {
      form: { csrf: csrfOf(stranger.page.text), email: 'mallory@example.com' },
    });
    assert.equal(strangerPage.status, approvedPage.status);
    const normalize = (html: string) =>
      html
        .replace(/alice@example\.com|mallory@example\.com/g, 'EMAIL')
        .replace(/\/interaction\/[A-Za-z0-9_-]+/g, 'UID')
        .replace(/value="[^"]+"/g, 'value=""');
    assert.equal(normalize(strangerPage.text), normalize(approvedPage.text), 'no user enumeration');
    const messages = (await (await fetch(`${as.issuer}/dev/inbox.json`)).json()) as {
      messages: Array<{ to: string }>;
    };
    assert.equal(
      messages.messages.some((m) => m.to === 'mallory@example.com'),
      false,
    );
    // Any code fails for the unapproved address.
    const attempt = await stranger.browser.request(`${as.issuer}${stranger.path}/code`, {
      form: { csrf: csrfOf(strangerPage.text), code: '123456' },
    });
    assert.equal(attempt.status, 400);
  });

  test('five wrong codes lock the login; even the right code then fails', async () => {
    const login = await startLogin(as, clientId);
    const sent = await login.browser.request(`${as.issuer}${login.path}/email`, {
      form: { csrf: csrfOf(login.page.text), email: 'bob@example.com' },
    });
    const csrf = csrfOf(sent.text);
    const messages = (await (await fetch(`${as.issuer}/dev/inbox.json`)).json()) as {
      messages: Array<{ to: string; text: string }>;
    };
    const code = /\b(\d{6})\b/.exec(messages.messages.find((m) => m.to === 'bob@example.com')!.text)![1]!;
    const wrong = code === '000000' ? '111111' : '000000';
    for (let i = 0; i < 5; i += 1) {
      const attempt = await login.browser.request(`${as.issuer}${login.path}/code`, {
        form: { csrf, code: wrong },
      });
      assert.equal(attempt.status, 400);
    }
    const right = await login.browser.request(`${as.issuer}${login.path}/code`, { form: { csrf, code } });
    assert.equal(right.status, 400, 'locked after five tries');
    assert.match(right.text, /Too many wrong codes/);
    assert.ok(as.audit('login').filter((r) => r.outcome === 'failure').length >= 5);
  });

  test('a code is single use and sending codes is throttled per email', async () => {
    const first = await authorize({
      issuer: as.issuer,
      clientId,
      redirectUri: REDIRECT,
      scope: 'stocks:read',
      email: 'alice@example.com',
    });
    assert.ok(first.callback.searchParams.get('code'));
    // Three codes per window for this email (configured above); earlier tests used some already.
    let throttled = false;
    let page = '';
    for (let i = 0; i < 4 && !throttled; i += 1) {
      const login = await startLogin(as, clientId);
      const sent = await login.browser.request(`${as.issuer}${login.path}/email`, {
        form: { csrf: csrfOf(login.page.text), email: 'alice@example.com' },
      });
      throttled = sent.status === 429;
      page = sent.text;
    }
    assert.equal(throttled, true);
    // The wait in words a person plans with, not a count of seconds.
    assert.match(page, /Try again in (less than a minute|about (a|\d+) (minute|minutes|hour|hours))\./);
    assert.doesNotMatch(page, /\d+ seconds/);
  });

  test('forms without the CSRF token or from another origin are refused', async () => {
    const login = await startLogin(as, clientId);
    const noToken = await login.browser.request(`${as.issuer}${login.path}/email`, {
      form: { email: 'alice@example.com' },
    });
    assert.equal(noToken.status, 403);
    const crossSite = await login.browser.request(`${as.issuer}${login.path}/email`, {
      form: { csrf: csrfOf(login.page.text), email: 'alice@example.com' },
      headers: { origin: 'https://evil.example' },
    });
    assert.equal(crossSite.status, 403);
    // Without the interaction cookie (another browser), the page is gone.
    const stranger = await new Browser().request(`${as.issuer}${login.path}/email`, {
      form: { csrf: csrfOf(login.page.text), email: 'alice@example.com' },
    });
    assert.equal(stranger.status, 400);
  });

  test('user-supplied text is escaped on the pages', async () => {
    const evil = await register(as.issuer, { client_name: '<script>alert(1)</script>' });
    const login = await startLogin(as, String(evil.body.client_id));
    assert.doesNotMatch(login.page.text, /<script>alert/);
    assert.match(login.page.text, /&lt;script&gt;alert/);
  });
});

describe('state survives a restart', () => {
  test('clients, consent, tokens and keys persist', async () => {
    const as = await startTestAuthorizationServer();
    try {
      const clientId = String((await register(as.issuer)).body.client_id);
      const { token } = await userToken({
        issuer: as.issuer,
        clientId,
        redirectUri: REDIRECT,
        scope: 'stocks:read',
      });
      const jwksBefore = await (await fetch(`${as.issuer}/jwks`)).json();
      await as.restart();
      assert.deepEqual(await (await fetch(`${as.issuer}/jwks`)).json(), jwksBefore, 'signing keys persist');
      const introspection = await introspect(as, String(token.json.access_token));
      assert.equal(introspection.active, true, 'tokens persist');
      assert.equal(introspection.client_id, clientId);
      // The client is still registered and the consent remembered: sign-in only.
      const again = await authorize({
        issuer: as.issuer,
        clientId,
        redirectUri: REDIRECT,
        scope: 'stocks:read',
      });
      assert.deepEqual(again.pages, ['email', 'code']);
      const keys = JSON.parse(readFileSync(path.join(as.dataDir, 'keys.json'), 'utf8'));
      assert.equal(statSync(path.join(as.dataDir, 'keys.json')).mode & 0o777, 0o600);
      assert.ok(keys.signingKeys.length >= 1);
    } finally {
      await as.close();
    }
  });
});

describe('discovery', () => {
  test('RFC 8414 and OpenID Connect metadata advertise what MCP clients need, with CORS', async () => {
    const as = await startTestAuthorizationServer();
    try {
      for (const wellKnown of ['oauth-authorization-server', 'openid-configuration']) {
        const response = await fetch(`${as.issuer}/.well-known/${wellKnown}`, {
          headers: { origin: 'https://inspector.example' },
        });
        assert.equal(response.status, 200);
        assert.equal(response.headers.get('access-control-allow-origin'), 'https://inspector.example');
        const metadata = (await response.json()) as Record<string, unknown>;
        assert.equal(metadata.issuer, as.issuer);
        assert.deepEqual(metadata.code_challenge_methods_supported, ['S256']);
        assert.equal(metadata.client_id_metadata_document_supported, true);
        assert.equal(metadata.authorization_response_iss_parameter_supported, true);
        for (const method of ['none', 'client_secret_basic', 'private_key_jwt']) {
          assert.ok((metadata.token_endpoint_auth_methods_supported as string[]).includes(method), method);
        }
        for (const grant of [
          'authorization_code',
          'client_credentials',
          'refresh_token',
          'urn:ietf:params:oauth:grant-type:token-exchange',
        ]) {
          assert.ok((metadata.grant_types_supported as string[]).includes(grant), grant);
        }
        for (const endpoint of [
          'registration_endpoint',
          'introspection_endpoint',
          'revocation_endpoint',
          'jwks_uri',
        ]) {
          assert.ok(String(metadata[endpoint]).startsWith(as.issuer), endpoint);
        }
      }
    } finally {
      await as.close();
    }
  });
});

describe('development inbox', () => {
  test('lists sent sign-in messages, newest first, marked development-only', async () => {
    const as = await startTestAuthorizationServer();
    try {
      const clientId = String((await register(as.issuer)).body.client_id);
      await authorize({
        issuer: as.issuer,
        clientId,
        redirectUri: REDIRECT,
        scope: 'stocks:read',
        email: 'alice@example.com',
      });
      await authorize({
        issuer: as.issuer,
        clientId,
        redirectUri: REDIRECT,
        scope: 'stocks:read',
        email: 'bob@example.com',
      });
      const json = (await (await fetch(`${as.issuer}/dev/inbox.json`)).json()) as {
        development_only: boolean;
        messages: Array<{ to: string; subject: string; text: string; time: string }>;
      };
      assert.equal(json.development_only, true);
      assert.deepEqual(
        json.messages.map((m) => m.to),
        ['bob@example.com', 'alice@example.com'],
      );
      assert.ok(Date.parse(json.messages[0]!.time) >= Date.parse(json.messages[1]!.time));
      const page = await fetch(`${as.issuer}/dev/inbox`);
      assert.equal(page.status, 200);
      const html = await page.text();
      assert.match(html, /[Dd]evelopment/);
      assert.match(html, /bob@example\.com/);
    } finally {
      await as.close();
    }
  });

  test('is off when SMTP is configured', async () => {
    const as = await startTestAuthorizationServer({ mail: { smtp: { host: '127.0.0.1', port: 2525 } } });
    try {
      assert.equal((await fetch(`${as.issuer}/dev/inbox.json`)).status, 404);
      assert.equal((await fetch(`${as.issuer}/dev/inbox`)).status, 404);
    } finally {
      await as.close();
    }
  });
});

describe('removing an approved user', () => {
  test("cuts off the user's existing tokens at introspection and token exchange", async () => {
    const as = await startTestAuthorizationServer();
    try {
      const clientId = String((await register(as.issuer)).body.client_id);
      const { token } = await userToken({
        issuer: as.issuer,
        clientId,
        redirectUri: REDIRECT,
        scope: 'stocks:read',
      });
      const accessToken = String(token.json.access_token);
      assert.equal((await introspect(as, accessToken)).active, true);
      await as.restart({ users: { approved: [{ email: 'bob@example.com', claims: { region: 'us' } }] } });
      assert.deepEqual(await introspect(as, accessToken), { active: false });
      const gatewaySecret = readFileSync(
        path.join(as.dataDir, 'secrets/gatehouse-gateway.secret'),
        'utf8',
      ).trim();
      const phantom = await postForm(
        `${as.issuer}/introspect`,
        { token: accessToken },
        { authorization: basic('gatehouse-gateway', gatewaySecret), accept: 'application/jwt' },
      );
      assert.deepEqual(phantom.json, { active: false });
      const mcpSecret = readFileSync(
        path.join(as.dataDir, 'secrets/gatehouse-mcp-server.secret'),
        'utf8',
      ).trim();
      const exchange = await postForm(
        `${as.issuer}/token`,
        {
          grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
          subject_token: accessToken,
          subject_token_type: 'urn:ietf:params:oauth:token-type:access_token',
          audience: 'http://localhost:8000/api/stocks',
        },
        { authorization: basic('gatehouse-mcp-server', mcpSecret) },
      );
      assert.equal(exchange.status, 400);
      assert.equal(exchange.json.error, 'invalid_grant');
    } finally {
      await as.close();
    }
  });
});
