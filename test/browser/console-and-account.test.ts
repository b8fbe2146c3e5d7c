/**
 * The account page and the admin console in a real browser: headless Chromium driven by
 * playwright-core walks whole journeys through the server-rendered pages (no script runs on them,
 * under a strict CSP), signing in with the one-time code from the development inbox:
 *
 * - an administrator approves a queued client, and the user's next try goes on to consent;
 * - a user revokes an agent on /account, and its next tool call through the gateway is refused
 *   within a second;
 * - an administrator removes a user, whose token stops at once;
 * - anonymous visitors and signed-in users who are not administrators see no console page;
 * - an administrator rotates the signing keys while an agent keeps working.
 *
 * Needs Chromium, as test/browser/login-consent.test.ts does (GATEHOUSE_CHROMIUM_PATH, or
 * GATEHOUSE_BROWSER_TESTS=0 to skip). Screenshots go to a temporary directory (or
 * GATEHOUSE_SCREENSHOT_DIR) and their paths are printed as test diagnostics; with
 * GATEHOUSE_DOC_SCREENSHOTS=1 the pages shown in the documentation are also written to docs/images/
 * (tracked files, so only on request).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { copyFileSync, mkdirSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before, describe, type TestContext, test } from 'node:test';
import type { Browser, BrowserContext, Locator, Page } from 'playwright-core';
import {
  startTestAuthorizationServer,
  type TestAuthorizationServer,
} from '../helpers/authorization-server.ts';
import { launchChromium, SKIP_BROWSER_TESTS, screenshotDirectory } from '../helpers/chromium.ts';
import {
  basic,
  type InboxMessage,
  inbox,
  pkce,
  postForm,
  redeemCode,
  registerNativeClient,
  userToken,
} from '../helpers/oauth.ts';
import { callGetStock, internalSecret, until } from '../helpers/revocation.ts';
import { startTestStack, type TestStack } from '../helpers/stack.ts';

const SKIP = SKIP_BROWSER_TESTS;
/** Every browser action and navigation may take this long (a loaded CI machine is slow, not broken). */
const ACTION_TIMEOUT_MS = 10_000;
const TEST_TIMEOUT_MS = 90_000;
/** Where the documentation's screenshots live, written only with GATEHOUSE_DOC_SCREENSHOTS=1. */
const DOC_IMAGES = path.resolve(import.meta.dirname, '../../docs/images');
const DOC_SCREENSHOTS = process.env.GATEHOUSE_DOC_SCREENSHOTS === '1';
const ALICE = 'alice@example.com';
const BOB = 'bob@example.com';
const ADMIN = 'admin@example.com';
/** The resource the approval journey asks for (the authorization server alone, no stack). */
const MCP = 'http://localhost:8000/mcp';
/** A loopback redirect the plain-HTTP helpers never follow (userToken stops at the redirect). */
const HTTP_REDIRECT = 'http://127.0.0.1/callback';

/** The client's side: a loopback redirect target that records what it received. */
interface ClientSite {
  origin: string;
  redirectUri: string;
  callbacks: URLSearchParams[];
  close(): Promise<void>;
}

async function startClientSite(): Promise<ClientSite> {
  const callbacks: URLSearchParams[] = [];
  const server: Server = createServer((request, response) => {
    const url = new URL(request.url ?? '/', 'http://127.0.0.1');
    response.setHeader('content-type', 'text/html; charset=utf-8');
    response.setHeader('cache-control', 'no-store');
    if (url.pathname === '/callback') {
      callbacks.push(url.searchParams);
      response.end('<!doctype html><title>Client callback</title><h1>Back at the client</h1>');
    } else {
      response.statusCode = 404;
      response.end('<!doctype html><title>Not found</title>');
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const origin = `http://127.0.0.1:${port}`;
  return {
    origin,
    redirectUri: `${origin}/callback`,
    callbacks,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((error) => (error ? reject(error) : resolve()));
      }),
  };
}

/** The development inbox lists each message with an id (the shared helper's type leaves it out). */
type InboxEntry = InboxMessage & { id: string };

const inboxIds = async (issuer: string) => new Set(((await inbox(issuer)) as InboxEntry[]).map((m) => m.id));

/** The user's one-time code: the first inbox message for `email` that was not there before. */
async function waitForNewCode(issuer: string, email: string, seen: Set<string>): Promise<string> {
  const deadline = Date.now() + ACTION_TIMEOUT_MS;
  // The server does not wait for the mail to be "sent" before answering, so poll briefly.
  while (Date.now() < deadline) {
    const message = ((await inbox(issuer)) as InboxEntry[]).find((m) => m.to === email && !seen.has(m.id));
    const code = message && /\b(\d{6})\b/.exec(message.text)?.[1];
    if (code) return code;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`no new sign-in code for ${email} in the development inbox`);
}

/** The text a user reads in the element, as rendered (Playwright's innerText), trimmed. */
async function shown(locator: Locator): Promise<string> {
  // biome-ignore lint/performance/useDomNodeTextContent: the rendered text is what the user reads
  return (await locator.innerText()).trim();
}

/** The <dd> that follows the <dt> named `term` in `scope`. */
const definition = (scope: Locator, term: string) =>
  scope.locator('dt', { hasText: term }).locator('xpath=following-sibling::dd[1]');

async function introspect(server: { issuer: string; dataDir: string }, token: string) {
  const secret = internalSecret(server, 'gatehouse-gateway');
  const answer = await postForm(
    `${server.issuer}/introspect`,
    { token },
    { authorization: basic('gatehouse-gateway', secret) },
  );
  return answer.json;
}

describe('the account page and the admin console in Chromium', {
  skip: SKIP,
  timeout: 5 * TEST_TIMEOUT_MS,
}, () => {
  /** The authorization server alone, holding dynamically registered clients for approval. */
  let as: TestAuthorizationServer;
  /** The whole stack (gateway, MCP server, APIs), for tool calls through the gateway. */
  let stack: TestStack;
  let site: ClientSite;
  let browser: Browser | undefined;
  let screenshots: string;
  const contexts: BrowserContext[] = [];

  before(async () => {
    screenshots = screenshotDirectory();
    if (DOC_SCREENSHOTS) mkdirSync(DOC_IMAGES, { recursive: true });
    const launching = launchChromium();
    // Each is kept as soon as it is up, so `after` closes whatever started even if another failed.
    const started = await Promise.allSettled([
      startTestAuthorizationServer({ clientApproval: { dynamic: 'approval' } }).then((value) => {
        as = value;
      }),
      // Short key and JWKS cache times, so the rotation journey need not wait an hour (the overlap rule).
      startTestStack({
        authorizationServer: { keys: { publishBeforeUseSeconds: 1 } },
        mcpServer: { jwksCacheSeconds: 1 },
        apis: { jwksCacheSeconds: 1 },
      }).then((value) => {
        stack = value;
      }),
      startClientSite().then((value) => {
        site = value;
      }),
      launching.then((value) => {
        browser = value;
      }),
    ]);
    for (const outcome of started) if (outcome.status === 'rejected') throw outcome.reason;
    // The gateway must hear revocations before a refusal within a second can be expected of it.
    await until(
      async () => (await fetch(`${stack.gatewayUrl}/readyz`)).status === 200,
      'the gateway is ready',
      ACTION_TIMEOUT_MS,
    );
  });

  after(async () => {
    // Each step runs even if an earlier one failed, so no Chromium process outlives the suite.
    for (const context of contexts) await context.close().catch(() => {});
    await browser?.close().catch(() => {});
    await site?.close().catch(() => {});
    await as?.close().catch(() => {});
    await stack?.close().catch(() => {});
  });

  /** A fresh browser profile (no cookies, so no session) with generous timeouts. */
  async function newPage(
    width = 800,
  ): Promise<{ page: Page; consoleMessages: string[]; context: BrowserContext }> {
    assert.ok(browser, 'the browser was not launched');
    const context = await browser.newContext({ viewport: { width, height: 900 }, locale: 'en-US' });
    contexts.push(context);
    context.setDefaultTimeout(ACTION_TIMEOUT_MS);
    context.setDefaultNavigationTimeout(ACTION_TIMEOUT_MS);
    const page = await context.newPage();
    const consoleMessages: string[] = [];
    page.on('console', (message) => consoleMessages.push(`${message.type()}: ${message.text()}`));
    return { page, consoleMessages, context };
  }

  /**
   * A full-page screenshot into the screenshot directory, its path printed; with
   * GATEHOUSE_DOC_SCREENSHOTS=1, copied to docs/images/<name> too.
   */
  async function screenshot(t: TestContext, page: Page, name: string, what: string) {
    const file = path.join(screenshots, name);
    await page.screenshot({ path: file, fullPage: true });
    t.diagnostic(`screenshot of ${what}: ${file}`);
    if (DOC_SCREENSHOTS) {
      copyFileSync(file, path.join(DOC_IMAGES, name));
      t.diagnostic(`written to docs/images/${name}`);
    }
  }

  /**
   * Runs a journey; when it fails, saves a screenshot of each page given and says where each was,
   * so a failure on a slow machine can be read without running it again.
   */
  async function journey(t: TestContext, pages: () => Page[], run: () => Promise<void>) {
    try {
      await run();
    } catch (error) {
      for (const [index, page] of pages().entries()) {
        const file = path.join(
          screenshots,
          `failure-${t.name.replace(/\W+/g, '-').slice(0, 60)}-${index}.png`,
        );
        await page.screenshot({ path: file, fullPage: true }).catch(() => {});
        t.diagnostic(`page ${index} was at ${page.url()}; screenshot: ${file}`);
      }
      throw error;
    }
  }

  /**
   * On the email page (where `page` has just landed): signs in as `email` with the code from the
   * inbox, and waits until the browser has left the code page.
   */
  async function signIn(page: Page, issuer: string, email: string) {
    await page.getByRole('heading', { name: 'Sign in', exact: true }).waitFor();
    await page.getByLabel('Email address').fill(email);
    const seen = await inboxIds(issuer);
    await page.getByRole('button', { name: 'Send code' }).click();
    await page.getByRole('heading', { name: 'Check your email' }).waitFor();
    await page.getByLabel('Six-digit code').fill(await waitForNewCode(issuer, email, seen));
    await page.getByRole('button', { name: 'Sign in' }).click();
    // The next page may still be an interaction's (the waiting page is), so wait for the code page to go.
    await page.getByRole('heading', { name: 'Check your email' }).waitFor({ state: 'detached' });
    await page.waitForLoadState('load');
  }

  /** Opens one of our pages (`/account`, `/admin/...`) and signs in as `email` on the way. */
  async function openSignedIn(page: Page, issuer: string, route: string, email: string) {
    await page.goto(`${issuer}${route}`);
    assert.equal(new URL(page.url()).pathname.startsWith('/interaction/'), true, 'sent to sign in');
    await signIn(page, issuer, email);
  }

  function authorizationRequest(issuer: string, clientId: string, scope: string) {
    const { verifier, challenge } = pkce();
    const state = randomBytes(16).toString('base64url');
    const url = new URL(`${issuer}/authorize`);
    url.search = new URLSearchParams({
      response_type: 'code',
      client_id: clientId,
      redirect_uri: site.redirectUri,
      scope,
      resource: MCP,
      state,
      code_challenge: challenge,
      code_challenge_method: 'S256',
    }).toString();
    return { url: url.href, state, verifier };
  }

  /** Asserts no page refused a resource under its Content-Security-Policy (so the style applied). */
  function assertNoCspViolation(consoleMessages: string[], where: string) {
    assert.deepEqual(
      consoleMessages.filter((line) => /Content Security Policy/i.test(line)),
      [],
      `no CSP violation on ${where}`,
    );
  }

  test('an administrator approves a queued client, and the user’s next try proceeds to consent and a code', {
    timeout: TEST_TIMEOUT_MS,
  }, async (t) => {
    const clientName = 'Queued Browser Agent';
    const clientId = await registerNativeClient(as.issuer, [site.redirectUri], { client_name: clientName });
    const alice = await newPage();
    const admin = await newPage(1280);
    await journey(
      t,
      () => [alice.page, admin.page],
      async () => {
        // Alice signs in for the new client and is told to wait.
        const first = authorizationRequest(as.issuer, clientId, 'stocks:read');
        await alice.page.goto(first.url);
        await signIn(alice.page, as.issuer, ALICE);
        const waiting = alice.page.getByRole('heading', { name: 'Waiting for your administrator' });
        await waiting.waitFor();
        assert.match(
          await shown(alice.page.locator('main')),
          new RegExp(
            `Waiting for your administrator to approve ${clientName} \\(${new URL(site.origin).host.replace(/\./g, '\\.')}\\)\\.`,
          ),
        );
        assert.equal(site.callbacks.length, 0, 'the client received nothing');
        await screenshot(t, alice.page, 'waiting-for-approval.png', 'the waiting-for-approval page');

        // The administrator signs in to the console, which opens on Users; Approvals counts one.
        await openSignedIn(admin.page, as.issuer, '/admin', ADMIN);
        assert.equal(new URL(admin.page.url()).pathname, '/admin/users');
        await admin.page.getByRole('heading', { name: 'Users', exact: true }).waitFor();
        const users = admin.page.locator('table tbody tr');
        const listed = (await users.allInnerTexts()).map((row) => row.split(/\s/)[0]);
        assert.ok(listed.includes(ALICE) && listed.includes(BOB), `users listed: ${listed.join(', ')}`);
        await screenshot(t, admin.page, 'console-users.png', 'the console Users page');

        await admin.page.getByRole('link', { name: 'Approvals (1)' }).click();
        await admin.page.getByRole('heading', { name: 'Approvals', exact: true }).waitFor();
        const queued = admin.page.locator('ul.agents > li', { hasText: clientId });
        assert.equal(await shown(queued.locator('h2')), clientName);
        assert.equal(await shown(definition(queued, 'Client id')), clientId);
        assert.equal(await shown(definition(queued, 'Redirect URIs')), site.redirectUri);
        assert.equal(await shown(definition(queued, 'Scopes asked')), 'stocks:read');
        assert.match(await shown(definition(queued, 'Tried by')), /^alice@example\.com, \d{4}-\d\d-\d\d /);
        assert.match(await shown(queued), /Tried by\s+alice@example\.com/);
        await screenshot(t, admin.page, 'console-approvals.png', 'the Approvals page with a pending client');

        await queued.getByRole('button', { name: `Approve ${clientName}` }).click();
        await admin.page.getByRole('status').waitFor();
        assert.equal(await shown(admin.page.getByRole('status')), `${clientName} was approved.`);
        assert.match(await shown(admin.page.locator('main')), /Nothing is waiting\./);
        assert.equal(await admin.page.getByRole('link', { name: 'Approvals', exact: true }).count(), 1);
        assert.equal(as.audit('admin.client.approved').at(-1)?.actor, ADMIN);

        // The client is listed on Clients with its class.
        await admin.page.getByRole('link', { name: 'Clients', exact: true }).click();
        await admin.page.getByRole('heading', { name: 'Clients', exact: true }).waitFor();
        const row = admin.page.locator('table tbody tr', { hasText: clientId });
        assert.match(await shown(row), new RegExp(`^${clientName}\\s+${clientId}\\s+DCR`));
        await screenshot(t, admin.page, 'console-clients.png', 'the console Clients page');
        assertNoCspViolation(admin.consoleMessages, 'the console pages');

        // Alice starts again (still signed in): consent, Allow, the client's callback, a code that redeems.
        const second = authorizationRequest(as.issuer, clientId, 'stocks:read');
        await alice.page.goto(second.url);
        await alice.page.getByRole('heading', { name: `Allow ${clientName} to access` }).waitFor();
        await alice.page.getByRole('button', { name: 'Allow', exact: true }).click();
        await alice.page.waitForURL((url) => url.origin === site.origin && url.pathname === '/callback');
        assert.equal(site.callbacks.length, 1, 'the client received exactly one callback');
        const callback = site.callbacks[0]!;
        assert.equal(callback.get('state'), second.state);
        assert.equal(callback.get('error'), null);
        const token = await redeemCode(as.issuer, {
          code: callback.get('code') ?? '',
          verifier: second.verifier,
          redirectUri: site.redirectUri,
          clientId,
          resource: MCP,
        });
        assert.equal(token.status, 200, token.text);
        assert.equal(token.json.scope, 'stocks:read');
        assertNoCspViolation(alice.consoleMessages, 'the sign-in, waiting and consent pages');
      },
    );
  });

  test('a user revokes an agent on /account, and its next tool call is refused within a second', {
    timeout: TEST_TIMEOUT_MS,
  }, async (t) => {
    const agentName = 'Stock Watcher';
    const clientId = await registerNativeClient(stack.issuer, [HTTP_REDIRECT], { client_name: agentName });
    const { token } = await userToken({
      issuer: stack.issuer,
      clientId,
      redirectUri: HTTP_REDIRECT,
      scope: 'stocks:read',
      resource: stack.mcpUrl,
    });
    assert.equal(token.status, 200, token.text);
    const accessToken = String(token.json.access_token);
    const call = await callGetStock(stack.gatewayUrl, accessToken);
    assert.equal(call.status, 200, 'the tool call works before the revocation');
    assert.match(await call.text(), /SAP/);

    const alice = await newPage();
    await journey(
      t,
      () => [alice.page],
      async () => {
        await openSignedIn(alice.page, stack.issuer, '/account', ALICE);
        assert.equal(new URL(alice.page.url()).pathname, '/account');
        await alice.page.getByRole('heading', { name: 'Your agents' }).waitFor();
        const main = alice.page.locator('main');
        assert.match(await shown(main), /Signed in as alice@example\.com/);
        const agent = main.locator('li.agent', { hasText: agentName });
        assert.equal(await shown(agent.locator('h2')), `${agentName} Unverified`);
        assert.equal(await shown(definition(agent, 'Sends you back to')), '127.0.0.1');
        assert.match(
          await shown(agent.locator('ul.scopes')),
          /See stock prices in your region\s+stocks:read/,
        );
        assert.match(await shown(definition(agent, 'Allowed')), /^\w{3}, \d\d \w{3} \d{4} [\d:]{8} UTC$/);
        t.diagnostic(`last used, as shown: ${await shown(definition(agent, 'Last used'))}`);
        await screenshot(t, alice.page, 'account-agents.png', 'the account page with an agent');

        await agent.getByRole('button', { name: `Revoke ${agentName}` }).click();
        await alice.page.getByRole('status').waitFor();
        const refusedAfter = await until(
          async () => {
            const answer = await callGetStock(stack.gatewayUrl, accessToken);
            await answer.text();
            return answer.status === 401;
          },
          'the revoked agent’s tool call is refused',
          1000,
        );
        t.diagnostic(`refused ${refusedAfter} ms after the page confirmed the revocation`);
        assert.equal(
          await shown(alice.page.getByRole('status')),
          `${agentName} was revoked. It can no longer act for you.`,
        );
        assert.equal(await main.locator('li.agent', { hasText: agentName }).count(), 0, 'no longer listed');
        assert.match(await shown(main), /You have not allowed any agent yet/);
        assert.deepEqual(await introspect(stack, accessToken), { active: false });
        assertNoCspViolation(alice.consoleMessages, 'the account page');
      },
    );
  });

  test('an administrator removes a user in the console: their token stops and they leave the list', {
    timeout: TEST_TIMEOUT_MS,
  }, async (t) => {
    const clientId = await registerNativeClient(stack.issuer, [HTTP_REDIRECT], {
      client_name: 'Bob’s agent',
    });
    const { token } = await userToken({
      issuer: stack.issuer,
      clientId,
      redirectUri: HTTP_REDIRECT,
      scope: 'stocks:read',
      resource: stack.mcpUrl,
      email: BOB,
    });
    assert.equal(token.status, 200, token.text);
    const bobToken = String(token.json.access_token);
    assert.equal((await callGetStock(stack.gatewayUrl, bobToken)).status, 200);

    const admin = await newPage(1280);
    await journey(
      t,
      () => [admin.page],
      async () => {
        await openSignedIn(admin.page, stack.issuer, '/admin/users', ADMIN);
        await admin.page.getByRole('heading', { name: 'Users', exact: true }).waitFor();
        const bobRow = admin.page.locator('table tbody tr', { hasText: BOB });
        assert.equal(await bobRow.count(), 1);
        await bobRow.getByRole('button', { name: 'Remove', exact: true }).click();
        // The console asks first, saying what removing does.
        await admin.page.getByRole('heading', { name: `Remove ${BOB}?` }).waitFor();
        assert.equal((await callGetStock(stack.gatewayUrl, bobToken)).status, 200, 'nothing until confirmed');
        await admin.page.getByRole('button', { name: `Yes, remove ${BOB}` }).click();
        await admin.page.getByRole('status').waitFor();
        assert.equal(
          await shown(admin.page.getByRole('status')),
          `${BOB} was removed: their tokens stopped working.`,
        );
        const refusedAfter = await until(
          async () => {
            const answer = await callGetStock(stack.gatewayUrl, bobToken);
            await answer.text();
            return answer.status === 401;
          },
          'the removed user’s tool call is refused',
          1000,
        );
        t.diagnostic(`refused ${refusedAfter} ms after the console confirmed the removal`);
        assert.deepEqual(await introspect(stack, bobToken), { active: false });
        const emails = (await admin.page.locator('table tbody tr td:first-child').allInnerTexts()).map(
          (cell) => cell.trim(),
        );
        assert.equal(emails.includes(BOB), false, `bob is gone from the list: ${emails.join(', ')}`);
        assert.ok(emails.includes(ALICE), 'the others stay');
        assert.equal(stack.audit('admin.user.removed').at(-1)?.actor, ADMIN);
        assertNoCspViolation(admin.consoleMessages, 'the Users page');
      },
    );
  });

  test('anonymous visitors and signed-in users who are not administrators see no console page', {
    timeout: TEST_TIMEOUT_MS,
  }, async (t) => {
    const routes = [
      '/admin',
      '/admin/users',
      '/admin/clients',
      '/admin/approvals',
      '/admin/users/bob%40example.com',
    ];
    const anonymous = await newPage();
    const alice = await newPage();
    await journey(
      t,
      () => [anonymous.page, alice.page],
      async () => {
        for (const route of routes) {
          const response = await anonymous.page.goto(`${as.issuer}${route}`);
          assert.equal(response?.status(), 200, `${route}: the sign-in page`);
          assert.match(new URL(anonymous.page.url()).pathname, /^\/interaction\/[^/]+$/, route);
          assert.equal(await shown(anonymous.page.locator('h1')), 'Sign in', route);
          assert.equal(await anonymous.page.getByLabel('Email address').count(), 1, route);
          const text = await shown(anonymous.page.locator('body'));
          assert.doesNotMatch(text, /alice@|bob@|admin@/, `${route}: no user data`);
        }

        await openSignedIn(alice.page, as.issuer, '/admin', ALICE);
        for (const route of routes) {
          const response = await alice.page.goto(`${as.issuer}${route}`);
          assert.equal(response?.status(), 403, route);
          assert.equal(new URL(alice.page.url()).pathname, route, route);
          assert.equal(await shown(alice.page.locator('h1')), 'Not an administrator', route);
          const text = await shown(alice.page.locator('body'));
          assert.match(text, /You are signed in as alice@example\.com, who is not an administrator/);
          assert.doesNotMatch(text, /bob@|admin@/, `${route}: no user data`);
          assert.equal(await alice.page.locator('table, nav.tabs, form').count(), 0, `${route}: no console`);
        }
      },
    );
  });

  test('an administrator rotates the signing keys in the console while an agent keeps working', {
    timeout: TEST_TIMEOUT_MS,
  }, async (t) => {
    const clientId = await registerNativeClient(stack.issuer, [HTTP_REDIRECT], {
      client_name: 'Steady agent',
    });
    const { token } = await userToken({
      issuer: stack.issuer,
      clientId,
      redirectUri: HTTP_REDIRECT,
      scope: 'stocks:read',
      resource: stack.mcpUrl,
    });
    assert.equal(token.status, 200, token.text);
    const accessToken = String(token.json.access_token);
    assert.equal((await callGetStock(stack.gatewayUrl, accessToken)).status, 200);
    const keys = stack.running.authorizationServer.keys;
    const before = keys.list().filter((key) => key.use === 'access_token');
    const current = before.find((key) => key.state === 'current')!;
    const next = before.find((key) => key.state === 'next')!;
    const idKeys = keys.list().filter((key) => key.use === 'id_token');
    const idCurrent = idKeys.find((key) => key.state === 'current')!;
    const idNext = idKeys.find((key) => key.state === 'next')!;
    const wait = Date.parse(next.promotableFrom ?? '') - Date.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait + 50));

    const admin = await newPage(1280);
    await journey(
      t,
      () => [admin.page],
      async () => {
        await openSignedIn(admin.page, stack.issuer, '/admin/keys', ADMIN);
        await admin.page.getByRole('heading', { name: 'Signing keys', exact: true }).waitFor();
        const rowOf = (kid: string) => admin.page.locator('table tbody tr', { hasText: kid });
        assert.match(await shown(rowOf(current.kid)), /current/);
        assert.match(await shown(rowOf(next.kid)), /next/);
        assert.match(await shown(rowOf(idCurrent.kid)), /ID tokens.*current/s);
        assert.match(await shown(rowOf(idNext.kid)), /ID tokens.*next/s);
        await screenshot(t, admin.page, 'console-keys.png', 'the Keys tab before a rotation');
        await admin.page.getByRole('button', { name: 'Rotate now', exact: true }).click();
        await admin.page.getByRole('status').waitFor();
        assert.match(
          await shown(admin.page.getByRole('status')),
          new RegExp(`Key ${next.kid} signs from now on`),
        );
        assert.match(
          await shown(admin.page.getByRole('status')),
          new RegExp(`${idNext.kid} \\(ID tokens\\)`),
        );
        assert.match(await shown(rowOf(current.kid)), /retired/);
        assert.match(await shown(rowOf(next.kid)), /current/);
        // The ID-token ring rotated with it.
        assert.match(await shown(rowOf(idCurrent.kid)), /retired/);
        assert.match(await shown(rowOf(idNext.kid)), /current/);
        assertNoCspViolation(admin.consoleMessages, 'the Keys tab');
        // The rotation is in the audit trail, with who did it.
        await admin.page.goto(`${stack.issuer}/admin/audit?event=keys.rotated`);
        await admin.page.getByRole('heading', { name: 'Audit trail', exact: true }).waitFor();
        assert.match(await shown(admin.page.locator('table tbody')), /keys\.rotated/);
        assert.match(await shown(admin.page.locator('table tbody')), new RegExp(ADMIN.replace('.', '\\.')));
        await admin.page.goto(`${stack.issuer}/admin/audit?tool=get_stock`);
        await screenshot(t, admin.page, 'console-audit.png', 'the Audit trail tab');
        assertNoCspViolation(admin.consoleMessages, 'the Audit trail tab');
      },
    );
    // The agent goes on: its token from before the rotation, and a new one signed by the new key.
    for (let call = 0; call < 5; call++) {
      const answer = await callGetStock(stack.gatewayUrl, accessToken);
      assert.equal(answer.status, 200, `call ${call} after the rotation: ${await answer.text()}`);
    }
    const fresh = await userToken({
      issuer: stack.issuer,
      clientId,
      redirectUri: HTTP_REDIRECT,
      scope: 'stocks:read',
      resource: stack.mcpUrl,
    });
    assert.equal((await callGetStock(stack.gatewayUrl, String(fresh.token.json.access_token))).status, 200);
    assert.equal(stack.audit('keys.rotated').at(-1)?.actor, ADMIN);
  });
});
