/**
 * The sign-in and consent pages in a real browser: headless Chromium driven by playwright-core walks
 * from the authorization URL through the email page, the one-time code page and the consent page to
 * the client's loopback callback, then the code is redeemed. Also proves what only a browser can: the
 * pages cannot be framed, and their Content-Security-Policy lets no script run.
 *
 * Needs Chromium (`sudo apt-get install -y chromium`, which `npm test` does itself as root on
 * Debian/Ubuntu through scripts/ensure-chromium.mjs, or GATEHOUSE_CHROMIUM_PATH pointing at another
 * Chromium or Chrome). GATEHOUSE_BROWSER_TESTS=0 skips the suite; a missing browser otherwise fails
 * it, so a CI machine without Chromium cannot pass silently. Screenshots go to a temporary directory
 * (or GATEHOUSE_SCREENSHOT_DIR) and their paths are printed as test diagnostics.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Browser, BrowserContext, Locator, Page, Response } from 'playwright-core';
import {
  startTestAuthorizationServer,
  type TestAuthorizationServer,
} from '../helpers/authorization-server.ts';
import { launchChromium, SKIP_BROWSER_TESTS, screenshotDirectory } from '../helpers/chromium.ts';
import { type InboxMessage, inbox, pkce, redeemCode } from '../helpers/oauth.ts';

const SKIP = SKIP_BROWSER_TESTS;
/** Every browser action and navigation may take this long (a loaded CI machine is slow, not broken). */
const ACTION_TIMEOUT_MS = 10_000;
const TEST_TIMEOUT_MS = 90_000;
const EMAIL = 'alice@example.com';
const MCP = 'http://localhost:8000/mcp';
const SCOPES: Record<string, string> = {
  'stocks:read': 'See stock prices in your region',
  'customers:read': 'See your customer record',
};

/** The client's side: a loopback redirect target, plus a page that tries to frame Gatehouse. */
interface ClientSite {
  origin: string;
  redirectUri: string;
  callbacks: URLSearchParams[];
  /** What `/frame` puts in its iframe. */
  frameSource: string;
  close(): Promise<void>;
}

const escapeAttribute = (value: string) => value.replace(/&/g, '&amp;').replace(/"/g, '&quot;');

async function startClientSite(): Promise<ClientSite> {
  const site: Omit<ClientSite, 'origin' | 'redirectUri' | 'close'> = { callbacks: [], frameSource: '' };
  const server: Server = createServer((request, response) => {
    const url = new URL(request.url ?? '/', 'http://127.0.0.1');
    response.setHeader('content-type', 'text/html; charset=utf-8');
    response.setHeader('cache-control', 'no-store');
    if (url.pathname === '/callback') {
      site.callbacks.push(url.searchParams);
      response.end('<!doctype html><title>Client callback</title><h1>Back at the client</h1>');
    } else if (url.pathname === '/frame') {
      response.end(
        `<!doctype html><title>Framing attempt</title><h1>A page that frames Gatehouse</h1>` +
          `<iframe id="gatehouse" title="Gatehouse" width="600" height="400" src="${escapeAttribute(site.frameSource)}"></iframe>`,
      );
    } else {
      response.statusCode = 404;
      response.end('<!doctype html><title>Not found</title>');
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const origin = `http://127.0.0.1:${port}`;
  return Object.assign(site, {
    origin,
    redirectUri: `${origin}/callback`,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((error) => (error ? reject(error) : resolve()));
      }),
  });
}

/** The development inbox lists each message with an id (the shared helper's type leaves it out). */
type InboxEntry = InboxMessage & { id: string };

/** Polls `check` until it holds, for up to the action timeout. */
async function eventually(check: () => boolean | Promise<boolean>): Promise<boolean> {
  const deadline = Date.now() + ACTION_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return check();
}

/** The user's one-time code: the first inbox message for `email` that was not there before. */
async function waitForNewCode(issuer: string, email: string, seen: Set<string>): Promise<string> {
  let code: string | undefined;
  // The server does not wait for the mail to be "sent" before answering, so poll briefly.
  const found = await eventually(async () => {
    const message = ((await inbox(issuer)) as InboxEntry[]).find((m) => m.to === email && !seen.has(m.id));
    code = message && /\b(\d{6})\b/.exec(message.text)?.[1];
    return code !== undefined;
  });
  if (found && code) return code;
  throw new Error(`no new sign-in code for ${email} in the development inbox`);
}

/** The text a user reads in the element, as rendered (Playwright's innerText), trimmed. */
async function shown(locator: Locator): Promise<string> {
  // biome-ignore lint/performance/useDomNodeTextContent: the rendered text is what the user reads
  return (await locator.innerText()).trim();
}

const inboxIds = async (issuer: string) => new Set(((await inbox(issuer)) as InboxEntry[]).map((m) => m.id));

/** Asserts the response carries the CSP that forbids script and framing, and X-Frame-Options. */
function assertLockedDown(response: Response | null, page: string) {
  assert.ok(response, `${page}: no response`);
  const headers = response.headers();
  const policy = headers['content-security-policy'] ?? '';
  const directives = new Map(
    policy
      .split(';')
      .map((directive) => directive.trim().split(/\s+/))
      .filter((parts) => parts[0])
      .map(([name, ...values]) => [name!, values] as const),
  );
  assert.deepEqual(directives.get('default-src'), ["'none'"], `${page}: default-src 'none' in ${policy}`);
  assert.equal(directives.has('script-src'), false, `${page}: no script-src widens default-src`);
  assert.equal(directives.has('script-src-elem'), false, `${page}: no script-src-elem`);
  assert.deepEqual(directives.get('frame-ancestors'), ["'none'"], `${page}: frame-ancestors 'none'`);
  assert.equal(headers['x-frame-options'], 'DENY', `${page}: X-Frame-Options`);
  assert.equal(headers['cache-control'], 'no-store', `${page}: not cached`);
}

describe('login and consent pages in Chromium', { skip: SKIP, timeout: 5 * TEST_TIMEOUT_MS }, () => {
  let as: TestAuthorizationServer;
  let site: ClientSite;
  let browser: Browser | undefined;
  let screenshots: string;
  const contexts: BrowserContext[] = [];

  before(async () => {
    screenshots = screenshotDirectory();
    as = await startTestAuthorizationServer();
    site = await startClientSite();
    browser = await launchChromium();
  });

  after(async () => {
    // Each step runs even if an earlier one failed, so no Chromium process outlives the suite.
    for (const context of contexts) await context.close().catch(() => {});
    await browser?.close().catch(() => {});
    await site?.close().catch(() => {});
    await as?.close();
  });

  /** A fresh browser profile (no cookies, so no session) with generous timeouts. */
  async function newPage(): Promise<{ page: Page; consoleMessages: string[] }> {
    assert.ok(browser, 'the browser was not launched');
    const context = await browser.newContext({ viewport: { width: 800, height: 900 }, locale: 'en-US' });
    contexts.push(context);
    context.setDefaultTimeout(ACTION_TIMEOUT_MS);
    context.setDefaultNavigationTimeout(ACTION_TIMEOUT_MS);
    const page = await context.newPage();
    const consoleMessages: string[] = [];
    page.on('console', (message) => consoleMessages.push(`${message.type()}: ${message.text()}`));
    return { page, consoleMessages };
  }

  /** Registers a new client (so no earlier consent applies) with the loopback callback. */
  async function registerClient(name: string): Promise<string> {
    const response = await fetch(`${as.issuer}/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        client_name: name,
        redirect_uris: [site.redirectUri],
        application_type: 'native',
        token_endpoint_auth_method: 'none',
      }),
    });
    const body = (await response.json()) as Record<string, unknown>;
    assert.equal(response.status, 201, JSON.stringify(body));
    return String(body.client_id);
  }

  function authorizationRequest(clientId: string, scope: string) {
    const { verifier, challenge } = pkce();
    const state = randomBytes(16).toString('base64url');
    const url = new URL(`${as.issuer}/authorize`);
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

  /** The email page: checks it, types the address with the keyboard (it has focus) and submits. */
  async function submitEmail(page: Page, clientName: string, response: Response | null) {
    assertLockedDown(response, 'email page');
    assert.equal(await page.title(), 'Sign in - Gatehouse');
    assert.equal(await shown(page.locator('h1')), 'Sign in');
    const intro = await shown(page.locator('main p').first());
    // The application's trust badge in words, as on the consent page: a registered test client.
    assert.equal(intro.trim(), `to continue to ${clientName} Unverified`);
    const email = page.getByLabel('Email address');
    assert.equal(await email.getAttribute('type'), 'email');
    assert.equal(await email.evaluate((input) => (input as HTMLInputElement).required), true);
    // autofocus: the field has focus without a click (polled: Chromium applies autofocus after load).
    await page.waitForFunction(() => document.activeElement?.id === 'email', undefined, {
      timeout: ACTION_TIMEOUT_MS,
    });
    await page.keyboard.type(EMAIL);
    assert.equal(await email.inputValue(), EMAIL);
    const seen = await inboxIds(as.issuer);
    await page.getByRole('button', { name: 'Send code' }).click();
    await page.getByRole('heading', { name: 'Check your email' }).waitFor();
    return seen;
  }

  /** From the authorization URL to the consent page, signing in with the code from the inbox. */
  async function signIn(
    page: Page,
    authorizationUrl: string,
    clientName: string,
    onEmailPage: () => Promise<void> = async () => {},
  ) {
    const response = await page.goto(authorizationUrl);
    await onEmailPage();
    const seen = await submitEmail(page, clientName, response);
    assert.equal(await page.title(), 'Enter your code - Gatehouse');
    const text = await shown(page.locator('main'));
    assert.match(text, /We sent a six-digit code to alice@example\.com if it is approved to sign in/);
    const code = await waitForNewCode(as.issuer, EMAIL, seen);
    await page.getByLabel('Six-digit code').fill(code);
    const consent = page.waitForResponse((r) => /\/interaction\/[^/]+$/.test(new URL(r.url()).pathname));
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: /^Allow / }).waitFor();
    return { code, consentResponse: await consent };
  }

  /** Clicks `button`, waits for the browser to land on the client's callback, returns what it received. */
  async function landOnCallback(page: Page, button: 'Allow' | 'Deny'): Promise<URLSearchParams> {
    const before = site.callbacks.length;
    await page.getByRole('button', { name: button, exact: true }).click();
    await page.waitForURL((url) => url.origin === site.origin && url.pathname === '/callback');
    await page.getByRole('heading', { name: 'Back at the client' }).waitFor();
    assert.equal(site.callbacks.length, before + 1, 'the client received exactly one callback');
    const received = site.callbacks.at(-1)!;
    assert.equal(new URL(page.url()).search, `?${received.toString()}`);
    return received;
  }

  test('email, code, consent, Allow: the browser lands on the callback and the code redeems', {
    timeout: TEST_TIMEOUT_MS,
  }, async (t) => {
    const clientName = 'Browser Test Agent';
    const clientId = await registerClient(clientName);
    const request = authorizationRequest(clientId, 'stocks:read customers:read');
    const { page, consoleMessages } = await newPage();

    const { consentResponse } = await signIn(page, request.url, clientName, async () => {
      const emailShot = path.join(screenshots, 'email-page.png');
      await page.screenshot({ path: emailShot, fullPage: true });
      t.diagnostic(`screenshot of the email page: ${emailShot}`);
    });

    // The consent page.
    assertLockedDown(consentResponse, 'consent page');
    assert.equal(await page.locator('script').count(), 0, 'no script element on the consent page');
    assert.equal(await page.title(), 'Allow access? - Gatehouse');
    const heading = await shown(page.locator('h1'));
    assert.equal(heading, `Allow ${clientName} to access Gatehouse MCP server?`);
    const main = page.locator('main');
    assert.equal(await shown(main.locator('.badge')), 'Unverified');
    assert.match(await shown(main), /could not verify who publishes this application/);
    const sendsBackTo = main
      .locator('dt', { hasText: 'Sends you back to' })
      .locator('xpath=following-sibling::dd[1]');
    assert.equal(await shown(sendsBackTo), new URL(site.origin).host);
    assert.ok((await shown(main)).includes(`you will be sent back to ${new URL(site.origin).host}.`));
    assert.match(await shown(main), /Signed in as\s+alice@example\.com/);
    const requested = (await main.locator('ul.scopes.requested li').allInnerTexts()).map((s) => s.trim());
    assert.deepEqual(
      requested.toSorted(),
      Object.entries(SCOPES)
        .map(([name, description]) => `${description} ${name}`)
        .toSorted(),
    );
    const allow = page.getByRole('button', { name: 'Allow', exact: true });
    const deny = page.getByRole('button', { name: 'Deny', exact: true });
    assert.equal(await allow.isVisible(), true);
    assert.equal(await deny.isVisible(), true);
    const consentShot = path.join(screenshots, 'consent-page.png');
    await page.screenshot({ path: consentShot, fullPage: true });
    t.diagnostic(`screenshot of the consent page: ${consentShot}`);

    // The inline style's CSP hash matched (the pages are styled) and nothing else was refused.
    assert.deepEqual(
      consoleMessages.filter((line) => /Content Security Policy/i.test(line)),
      [],
      'no CSP violation on the email, code and consent pages',
    );

    const callback = await landOnCallback(page, 'Allow');
    assert.equal(callback.get('state'), request.state, 'state round-trips');
    assert.equal(callback.get('iss'), as.issuer, 'RFC 9207 iss');
    assert.equal(callback.get('error'), null);
    const code = callback.get('code');
    assert.ok(code, 'an authorization code');

    const token = await redeemCode(as.issuer, {
      code,
      verifier: request.verifier,
      redirectUri: site.redirectUri,
      clientId,
      resource: MCP,
    });
    assert.equal(token.status, 200, token.text);
    assert.equal(token.json.token_type, 'Bearer');
    assert.deepEqual(String(token.json.scope).split(' ').toSorted(), Object.keys(SCOPES).toSorted());
    const accessToken = String(token.json.access_token ?? '');
    assert.ok(accessToken.length >= 32, 'an access token');
    assert.equal(accessToken.split('.').length, 1, 'opaque, not a JWT');
  });

  test('Deny: the browser lands on the callback with access_denied', {
    timeout: TEST_TIMEOUT_MS,
  }, async () => {
    const clientName = 'Browser Test Agent (deny)';
    const clientId = await registerClient(clientName);
    const request = authorizationRequest(clientId, 'stocks:read');
    const { page } = await newPage();
    await signIn(page, request.url, clientName);
    const callback = await landOnCallback(page, 'Deny');
    assert.equal(callback.get('error'), 'access_denied');
    assert.equal(callback.get('state'), request.state);
    assert.equal(callback.get('iss'), as.issuer);
    assert.equal(callback.get('code'), null, 'no code after Deny');
  });

  test('the pages cannot be framed, and their policy lets no script run', {
    timeout: TEST_TIMEOUT_MS,
  }, async () => {
    const clientId = await registerClient('Framing Test Agent');
    const request = authorizationRequest(clientId, 'stocks:read');
    site.frameSource = request.url;
    const { page, consoleMessages } = await newPage();
    const framed = page.waitForResponse((r) => /\/interaction\/[^/]+$/.test(new URL(r.url()).pathname));
    await page.goto(`${site.origin}/frame`);
    const interaction = await framed;
    // The server answered the framed request with the sign-in page...
    assert.equal(interaction.status(), 200);
    assertLockedDown(interaction, 'framed sign-in page');
    // ...and Chromium refused to show it.
    await page.waitForLoadState('load');
    const child = page.frames().find((frame) => frame !== page.mainFrame());
    assert.ok(child, 'the iframe exists');
    await child.waitForLoadState('load').catch(() => {});
    const childUrl = child.url();
    assert.equal(
      childUrl.startsWith(as.issuer),
      false,
      `the frame must not show a Gatehouse page (frame is at ${childUrl})`,
    );
    assert.equal(
      await child.locator('input[name="email"]').count(),
      0,
      'no email field rendered in the frame',
    );
    assert.ok(
      await eventually(() =>
        consoleMessages.some((line) => /Framing .* violates .*frame-ancestors 'none'/.test(line)),
      ),
      `Chromium reports the refusal: ${consoleMessages.join('\n')}`,
    );

    // Opened directly, the page renders, and the policy really is enforced: a script injected into
    // the page is refused (Playwright's own evaluate runs through DevTools and is not a page script).
    const direct = await page.goto(request.url);
    assertLockedDown(direct, 'sign-in page');
    assert.equal(await page.locator('script').count(), 0, 'no script element on the sign-in page');
    await assert.rejects(
      page.addScriptTag({ content: 'window.__gatehouseScriptRan = true;' }),
      /Executing inline script violates the following Content Security Policy directive 'default-src 'none''/,
    );
    assert.equal(
      await page.evaluate(
        () => (window as unknown as { __gatehouseScriptRan?: boolean }).__gatehouseScriptRan,
      ),
      undefined,
      'an inline script did not run',
    );
  });

  test('a wrong code shows an error and the tries left; the right code still works', {
    timeout: TEST_TIMEOUT_MS,
  }, async () => {
    const clientName = 'Wrong Code Test Agent';
    const clientId = await registerClient(clientName);
    const request = authorizationRequest(clientId, 'stocks:read');
    const { page } = await newPage();
    const seen = await submitEmail(page, clientName, await page.goto(request.url));
    const code = await waitForNewCode(as.issuer, EMAIL, seen);
    const wrong = String((Number(code) + 1) % 1_000_000).padStart(6, '0');

    await page.getByLabel('Six-digit code').fill(wrong);
    const answer = page.waitForResponse((r) => r.request().method() === 'POST' && r.url().endsWith('/code'));
    await page.getByRole('button', { name: 'Sign in' }).click();
    assert.equal((await answer).status(), 400);
    const alert = page.getByRole('alert');
    await alert.waitFor();
    assert.equal(await shown(alert), 'That code is not right.');
    assert.match(await shown(page.locator('#code-hint')), /\b4 attempts left\./);
    const field = page.getByLabel('Six-digit code');
    assert.equal(await field.getAttribute('aria-invalid'), 'true');
    assert.equal(await field.inputValue(), '', 'the wrong code is not echoed back');

    await field.fill(code);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page
      .getByRole('heading', { name: `Allow ${clientName} to access Gatehouse MCP server?` })
      .waitFor();
  });
});
