/**
 * The user's own page (/account), the admin console (/admin) and the approval queue, over real
 * HTTP with a cookie jar: sign-in with the one-time code, who gets in, CSRF, and that each change
 * takes effect at once. The Chromium journeys are in test/browser/console-and-account.test.ts.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  startTestAuthorizationServer,
  type TestAuthorizationServer,
} from '../helpers/authorization-server.ts';
import { Browser, basic, csrfOf, openSignedIn, pageText, postForm, userToken } from '../helpers/oauth.ts';

const REDIRECT = 'http://127.0.0.1/callback';

async function introspect(as: TestAuthorizationServer, token: string) {
  const secret = readFileSync(path.join(as.dataDir, 'secrets/gatehouse-gateway.secret'), 'utf8').trim();
  return (
    await postForm(
      `${as.issuer}/introspect`,
      { token },
      { authorization: basic('gatehouse-gateway', secret) },
    )
  ).json;
}

async function register(as: TestAuthorizationServer, name: string) {
  const response = await fetch(`${as.issuer}/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ client_name: name, redirect_uris: [REDIRECT], application_type: 'native' }),
  });
  return String(((await response.json()) as { client_id: string }).client_id);
}

/** The page a user is stopped at (the test helper fails on it, naming it): its text. */
async function heldPage(as: TestAuthorizationServer, clientId: string): Promise<string> {
  const browser = new Browser();
  const error = await userToken({ issuer: as.issuer, clientId, redirectUri: REDIRECT, browser }).then(
    () => '',
    (caught: Error) => caught.message,
  );
  const url = /page (\S+) answered 403/.exec(error)?.[1];
  assert.ok(url, `stopped at a 403 page: ${error.slice(0, 200)}`);
  const page = await browser.request(url);
  assert.equal(page.status, 403);
  return pageText(page.text);
}

describe('the account page', () => {
  let as: TestAuthorizationServer;
  before(async () => {
    as = await startTestAuthorizationServer();
  });
  after(() => as.close());

  test('anonymous visitors are sent to sign in, and see their agents afterwards', async () => {
    const first = await fetch(`${as.issuer}/account`, { redirect: 'manual' });
    assert.equal(first.status, 303);
    const location = new URL(first.headers.get('location')!);
    assert.equal(location.pathname, '/authorize');
    assert.equal(location.searchParams.get('client_id'), 'gatehouse-account');
    const clientId = await register(as, 'Stock helper');
    const { token } = await userToken({
      issuer: as.issuer,
      clientId,
      redirectUri: REDIRECT,
      scope: 'stocks:read',
    });
    const page = await openSignedIn(as.issuer, '/account', 'alice@example.com');
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-security-policy') ?? '', /frame-ancestors 'none'/);
    assert.equal(page.headers.get('x-frame-options'), 'DENY');
    const text = pageText(page.text);
    assert.match(text, /Signed in as alice@example\.com/);
    assert.match(text, /Stock helper Unverified/);
    assert.match(text, /See stock prices/);
    assert.match(text, /Sends you back to 127\.0\.0\.1/);
    assert.doesNotMatch(text, /Your account Verified/, 'the pages themselves are not listed');
    assert.equal((await introspect(as, String(token.json.access_token))).active, true);
  });

  test("revoking an agent stops its token at once, and only the user's own grants can be revoked", async () => {
    const clientId = await register(as, 'Revocable agent');
    const { token } = await userToken({
      issuer: as.issuer,
      clientId,
      redirectUri: REDIRECT,
      scope: 'stocks:read',
    });
    const bob = await userToken({
      issuer: as.issuer,
      clientId,
      redirectUri: REDIRECT,
      scope: 'stocks:read',
      email: 'bob@example.com',
    });
    const page = await openSignedIn(as.issuer, '/account', 'alice@example.com');
    const grantId = /Revocable agent[\s\S]*?name="grant_id" value="([^"]+)"/.exec(page.text)![1]!;
    const csrf = csrfOf(page.text);
    // Without the form's token, or from another site: refused, nothing revoked.
    const forged = await page.browser.request(`${as.issuer}/account/revoke`, {
      form: { grant_id: grantId, csrf: 'x' },
    });
    assert.equal(forged.status, 403);
    const crossSite = await page.browser.request(`${as.issuer}/account/revoke`, {
      form: { grant_id: grantId, csrf },
      headers: { origin: 'https://evil.example' },
    });
    assert.equal(crossSite.status, 403);
    assert.equal((await introspect(as, String(token.json.access_token))).active, true);
    // Bob's grant is not Alice's to revoke.
    const bobPage = await openSignedIn(as.issuer, '/account', 'bob@example.com');
    const bobGrant = /name="grant_id" value="([^"]+)"/.exec(bobPage.text)![1]!;
    const notHers = await page.browser.request(`${as.issuer}/account/revoke`, {
      form: { grant_id: bobGrant, csrf },
    });
    assert.equal(notHers.status, 404);
    assert.equal((await introspect(as, String(bob.token.json.access_token))).active, true);
    const revoked = await page.browser.request(`${as.issuer}/account/revoke`, {
      form: { grant_id: grantId, csrf },
    });
    assert.equal(revoked.status, 303);
    assert.deepEqual(await introspect(as, String(token.json.access_token)), { active: false });
    const after = await page.browser.request(revoked.location!);
    assert.match(pageText(after.text), /Revocable agent was revoked/);
    assert.equal(as.audit('admin.grant.revoked').at(-1)?.actor, 'alice@example.com');
  });

  test('the consent page says where to revoke it', async () => {
    const clientId = await register(as, 'Consent link agent');
    const { result } = await userToken({
      issuer: as.issuer,
      clientId,
      redirectUri: REDIRECT,
      scope: 'stocks:read',
    });
    assert.match(
      result.consentHtml ?? '',
      new RegExp(`revoke this at any time at <a href="${as.issuer}/account"`),
    );
  });
});

describe('the admin console', () => {
  let as: TestAuthorizationServer;
  before(async () => {
    as = await startTestAuthorizationServer();
  });
  after(() => as.close());

  test('anonymous visitors are sent to sign in on every path and never shown data', async () => {
    for (const route of [
      '/admin',
      '/admin/users',
      '/admin/clients',
      '/admin/approvals',
      '/admin/users/alice%40example.com',
    ]) {
      const response = await fetch(`${as.issuer}${route}`, { redirect: 'manual' });
      assert.equal(response.status, 303, route);
      assert.match(response.headers.get('location') ?? '', /\/authorize\?client_id=gatehouse-account/);
      assert.doesNotMatch(await response.text(), /alice/);
    }
    const post = await fetch(`${as.issuer}/admin/users/remove`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'email=alice%40example.com',
    });
    assert.equal(post.status, 401);
  });

  test('a signed-in user who is not an administrator is refused everywhere', async () => {
    const page = await openSignedIn(as.issuer, '/admin/users', 'alice@example.com');
    assert.equal(page.status, 403);
    assert.match(pageText(page.text), /not an administrator/);
    assert.doesNotMatch(page.text, /bob@example\.com/);
    const post = await page.browser.request(`${as.issuer}/admin/users/remove`, {
      form: { email: 'bob@example.com', csrf: 'anything' },
    });
    assert.equal(post.status, 403);
    assert.equal(as.audit('admin.user.removed').length, 0);
  });

  test('an administrator adds, suspends and removes users; each change is audited with their email', async () => {
    const page = await openSignedIn(as.issuer, '/admin/users', 'admin@example.com');
    assert.equal(page.status, 200);
    assert.match(pageText(page.text), /alice@example\.com/);
    const csrf = csrfOf(page.text);
    const browser = page.browser;
    const added = await browser.request(`${as.issuer}/admin/users/add`, {
      form: { csrf, email: 'heidi@example.com', name: 'Heidi', claims: 'region=eu groups=ops,dev' },
    });
    assert.equal(added.status, 303);
    const listed = await browser.request(added.location!);
    assert.match(pageText(listed.text), /heidi@example\.com was added/);
    assert.match(pageText(listed.text), /region=eu groups=ops,dev/);
    const bad = await browser.request(`${as.issuer}/admin/users/add`, { form: { csrf, email: 'nope' } });
    assert.match(
      pageText((await browser.request(bad.location!)).text),
      /Not done: is not a valid email address \(email\)/,
    );
    // Suspending Bob stops his token at once.
    const clientId = await register(as, 'Bob agent');
    const { token } = await userToken({
      issuer: as.issuer,
      clientId,
      redirectUri: REDIRECT,
      scope: 'stocks:read',
      email: 'bob@example.com',
    });
    // A change that takes something away asks first, and changes nothing until confirmed.
    const asked = await browser.request(`${as.issuer}/admin/users/status`, {
      form: { csrf, email: 'bob@example.com', status: 'suspended' },
    });
    assert.equal(asked.status, 200);
    assert.match(pageText(asked.text), /Suspend bob@example\.com\?/);
    assert.match(asked.text, /name="confirm" value="yes"/);
    assert.equal((await introspect(as, String(token.json.access_token))).active, true, 'nothing yet');
    await browser.request(`${as.issuer}/admin/users/status`, {
      form: { csrf, email: 'bob@example.com', status: 'suspended', confirm: 'yes' },
    });
    assert.deepEqual(await introspect(as, String(token.json.access_token)), { active: false });
    assert.equal(as.audit('admin.user.suspended').at(-1)?.actor, 'admin@example.com');
    const removed = await browser.request(`${as.issuer}/admin/users/remove`, {
      form: { csrf, email: 'heidi@example.com', confirm: 'yes' },
    });
    assert.equal(removed.status, 303);
    assert.equal(as.audit('admin.user.removed').at(-1)?.actor, 'admin@example.com');
    // A form without the session's token changes nothing.
    const forged = await browser.request(`${as.issuer}/admin/users/remove`, {
      form: { csrf: 'x', email: 'alice@example.com' },
    });
    assert.equal(forged.status, 403);
    // Pre-registering a workload shows its secret once, on the answer page only.
    const registered = await browser.request(`${as.issuer}/admin/clients/register`, {
      form: {
        csrf,
        name: 'Report job',
        client_id: 'report-job',
        role: 'workload',
        auth_method: '',
        redirect_uris: '',
        scopes: 'stocks:read',
        jwks: '',
      },
    });
    assert.equal(registered.status, 201);
    const secret = /<pre>([A-Za-z0-9_-]{43,})<\/pre>/.exec(registered.text)?.[1];
    assert.ok(secret, 'the secret is on the page');
    assert.match(pageText(registered.text), /not shown again/);
    const issued = await postForm(
      `${as.issuer}/token`,
      { grant_type: 'client_credentials', scope: 'stocks:read' },
      { authorization: basic('report-job', secret) },
    );
    assert.equal(issued.status, 200);
    const clients = await browser.request(`${as.issuer}/admin/clients`);
    assert.doesNotMatch(clients.text, new RegExp(secret));
    assert.match(pageText(clients.text), /Report job/);
    assert.match(pageText(clients.text), /Bob agent/);
    const audit = await browser.request(`${as.issuer}/admin/audit?user=bob%40example.com`);
    assert.equal(audit.status, 200);
    assert.match(pageText(audit.text), /admin\.user\.suspended/);
    const exported = await browser.request(`${as.issuer}/admin/audit/export?user=bob%40example.com`);
    assert.equal(exported.status, 200);
    assert.match(exported.headers.get('content-disposition') ?? '', /attachment; filename="gatehouse-audit-/);
    assert.ok(
      exported.text
        .trim()
        .split('\n')
        .every((line) => JSON.parse(line).event),
    );
    const keys = await browser.request(`${as.issuer}/admin/keys`);
    assert.equal(keys.status, 200);
    assert.match(pageText(keys.text), /current/);
    assert.match(pageText(keys.text), /next/);
    const tooSoon = await browser.request(`${as.issuer}/admin/keys/rotate`, { form: { csrf } });
    assert.match(
      pageText((await browser.request(tooSoon.location!)).text),
      /Not done: the next key is not published long enough/,
    );
    const clientPage = await browser.request(`${as.issuer}/admin/clients/${encodeURIComponent(clientId)}`);
    assert.equal(clientPage.status, 200);
    assert.match(pageText(clientPage.text), /Users who allowed it/);
    assert.match(pageText(clients.text), /DCR/);
  });
});

describe('the approval queue', () => {
  let as: TestAuthorizationServer;
  before(async () => {
    as = await startTestAuthorizationServer({ clientApproval: { dynamic: 'approval' } });
  });
  after(() => as.close());

  test('holds a new client after sign-in, and lets the next attempt through once an administrator approves', async () => {
    const clientId = await register(as, 'Queued agent');
    await assert.rejects(
      userToken({ issuer: as.issuer, clientId, redirectUri: REDIRECT, scope: 'stocks:read' }),
      /unexpected 403|answered 403/,
    );
    const admin = await openSignedIn(as.issuer, '/admin/approvals', 'admin@example.com');
    const text = pageText(admin.text);
    assert.match(text, /Queued agent/);
    assert.match(text, /Tried by alice@example\.com/);
    assert.match(text, /http:\/\/127\.0\.0\.1\/callback/);
    assert.match(text, /stocks:read/);
    const approved = await admin.browser.request(`${as.issuer}/admin/approvals/decide`, {
      form: { csrf: csrfOf(admin.text), client_id: clientId, decision: 'approved' },
    });
    assert.equal(approved.status, 303);
    assert.equal(as.audit('admin.client.approved').at(-1)?.actor, 'admin@example.com');
    const { token } = await userToken({
      issuer: as.issuer,
      clientId,
      redirectUri: REDIRECT,
      scope: 'stocks:read',
    });
    assert.equal(token.status, 200);
  });

  test('tells the user what is happening, in words', async () => {
    const clientId = await register(as, 'Waiting agent');
    assert.match(
      await heldPage(as, clientId),
      /Waiting for your administrator to approve Waiting agent \(127\.0\.0\.1\)/,
    );
  });

  test('a denied client is refused from then on', async () => {
    const clientId = await register(as, 'Denied agent');
    await userToken({ issuer: as.issuer, clientId, redirectUri: REDIRECT }).catch(() => undefined);
    const admin = await openSignedIn(as.issuer, '/admin/approvals', 'admin@example.com');
    await admin.browser.request(`${as.issuer}/admin/approvals/decide`, {
      form: { csrf: csrfOf(admin.text), client_id: clientId, decision: 'denied' },
    });
    assert.match(await heldPage(as, clientId), /has not allowed Denied agent/);
  });
});
