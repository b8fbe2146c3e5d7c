/**
 * Step-by-step control of the sign-in and consent pages, for attacks that act between the steps:
 * start an authorization in a browser, send the email, submit a code, reach the consent page, and
 * submit forms with whatever headers, tokens and cookies the attack needs.
 */
import assert from 'node:assert/strict';
import type { TestAuthorizationServer } from '../../helpers/authorization-server.ts';
import { Browser, csrfOf, inbox } from '../../helpers/oauth.ts';
import type { SecretLedger } from '../../helpers/secret-leaks.ts';
import { authorizationRequest, codeRequest } from './authorization-server.ts';

export interface Page {
  status: number;
  headers: Headers;
  location: string | undefined;
  text: string;
}

export interface Interaction {
  browser: Browser;
  /** `/interaction/<uid>` of the page currently shown. */
  path: string;
  page: Page;
  csrf: string;
  /** The authorization request's parameters and PKCE verifier. */
  params: Record<string, string | undefined>;
  verifier: string;
}

/** Opens an authorization request in `browser` and stops at the first page (sign-in or consent). */
export async function startInteraction(
  as: TestAuthorizationServer,
  clientId: string,
  options: { browser?: Browser; redirectUri?: string; extra?: Record<string, string> } = {},
): Promise<Interaction> {
  const browser = options.browser ?? new Browser();
  const { params, verifier } = codeRequest(clientId, options.redirectUri ?? 'http://127.0.0.1/callback', {
    ...options.extra,
  });
  const start = await authorizationRequest(as.issuer, params, browser);
  assert.equal(start.status, 303, start.text.slice(0, 300));
  const location = start.location;
  assert.ok(location, 'a redirect');
  assert.ok(location.pathname.startsWith('/interaction/'), `sent to ${location.href}`);
  const page = await browser.request(location.href);
  assert.equal(page.status, 200, page.text.slice(0, 300));
  return { browser, path: location.pathname, page, csrf: csrfOf(page.text), params, verifier };
}

/** POSTs a form of the interaction (`email`, `code`, `resend`, `consent`) from `browser`. */
export function submit(
  as: TestAuthorizationServer,
  interaction: Pick<Interaction, 'path'>,
  action: string,
  form: Record<string, string>,
  options: { browser: Browser; headers?: Record<string, string> },
): Promise<Page> {
  return options.browser.request(`${as.issuer}${interaction.path}/${action}`, {
    form,
    ...(options.headers ? { headers: options.headers } : {}),
  });
}

/** Sends the email step; returns the code page and the code mailed (undefined for a decoy). */
export async function sendEmail(
  as: TestAuthorizationServer,
  ledger: SecretLedger,
  interaction: Interaction,
  email: string,
): Promise<{ page: Page; csrf: string; code: string | undefined }> {
  const before = new Set((await inbox(as.issuer)).map((m) => `${m.time} ${m.text}`));
  const page = await submit(
    as,
    interaction,
    'email',
    { csrf: interaction.csrf, email },
    {
      browser: interaction.browser,
    },
  );
  assert.equal(page.status, 200, page.text.slice(0, 300));
  const message = (await inbox(as.issuer)).find(
    (m) => m.to === email.trim().toLowerCase() && !before.has(`${m.time} ${m.text}`),
  );
  const code = message ? /\b(\d{6})\b/.exec(message.text)?.[1] : undefined;
  if (code) ledger.rememberOneTimeCode(code);
  return { page, csrf: csrfOf(page.text), code };
}

/** Signs in through email and code; returns the answer to the code form (a 303 on success). */
export async function signInWithCode(
  as: TestAuthorizationServer,
  ledger: SecretLedger,
  interaction: Interaction,
  email = 'alice@example.com',
): Promise<Page> {
  const sent = await sendEmail(as, ledger, interaction, email);
  assert.ok(sent.code, `a code was mailed to ${email}`);
  return submit(
    as,
    interaction,
    'code',
    { csrf: sent.csrf, code: sent.code },
    { browser: interaction.browser },
  );
}

/**
 * Follows redirects on the issuer from `page` until a page is shown (another interaction step) or
 * the browser is sent back to the client. Returns which.
 */
export async function follow(
  as: TestAuthorizationServer,
  browser: Browser,
  page: Page,
): Promise<{ callback: URL } | { interaction: { path: string; page: Page; csrf: string } }> {
  let current = page;
  for (let step = 0; step < 8; step += 1) {
    if (current.status !== 303 && current.status !== 302) {
      throw new Error(`expected a redirect, got ${current.status}: ${current.text.slice(0, 300)}`);
    }
    const location = new URL(current.location!);
    if (location.origin !== as.issuer) return { callback: location };
    const next = await browser.request(location.href);
    if (next.status === 200) {
      return { interaction: { path: location.pathname, page: next, csrf: csrfOf(next.text) } };
    }
    current = next;
  }
  throw new Error('too many redirects');
}

/** Signs in (as `email`) and stops on the consent page; the client must not have consent yet. */
export async function toConsentPage(
  as: TestAuthorizationServer,
  ledger: SecretLedger,
  clientId: string,
  options: { email?: string; browser?: Browser; redirectUri?: string } = {},
): Promise<Interaction> {
  const started = await startInteraction(as, clientId, {
    ...(options.browser ? { browser: options.browser } : {}),
    ...(options.redirectUri ? { redirectUri: options.redirectUri } : {}),
  });
  const signedIn = await signInWithCode(as, ledger, started, options.email);
  const next = await follow(as, started.browser, signedIn);
  assert.ok('interaction' in next, 'the consent page is shown');
  assert.match(next.interaction.page.text, /name="decision"/);
  return { ...started, ...next.interaction };
}
