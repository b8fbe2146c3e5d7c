/**
 * OAuth client-side helpers for tests: PKCE, token requests, and a scripted user who signs in with
 * the one-time code from the development inbox and answers the consent page, over plain HTTP.
 */
import { createHash, randomBytes } from 'node:crypto';

export function pkce() {
  const verifier = randomBytes(32).toString('base64url');
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  return { verifier, challenge };
}

/**
 * Registers a native public client by DCR (RFC 7591), as MCP agents do, and returns its client_id;
 * `extra` adds or overrides metadata. Fails the test when registration is refused.
 */
export async function registerNativeClient(
  issuer: string,
  redirectUris: string[] = ['http://127.0.0.1/callback'],
  extra: Record<string, unknown> = {},
): Promise<string> {
  const response = await fetch(`${issuer}/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      redirect_uris: redirectUris,
      application_type: 'native',
      token_endpoint_auth_method: 'none',
      ...extra,
    }),
  });
  const body = (await response.json()) as { client_id?: string };
  if (response.status !== 201 || !body.client_id)
    throw new Error(`registration answered ${response.status}: ${JSON.stringify(body)}`);
  return body.client_id;
}

/** The text a person reads on a page: no style sheet, no tags, spaces collapsed. */
export const pageText = (html: string) =>
  html
    .replace(/<style[\s\S]*?<\/style>/g, '')
    .replace(/<[^>]+>/g, ' ')
    .replace(/\s+/g, ' ');

export const basic = (id: string, secret: string) =>
  `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;

export async function postForm(
  url: string,
  fields: Record<string, string | undefined>,
  headers: Record<string, string> = {},
) {
  const body = new URLSearchParams();
  for (const [key, value] of Object.entries(fields)) if (value !== undefined) body.set(key, value);
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body,
    redirect: 'manual',
  });
  const text = await response.text();
  let json: Record<string, unknown> | undefined;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: response.status, headers: response.headers, text, json: json ?? {} };
}

/** A browser without a renderer: a cookie jar and manual redirects. */
export class Browser {
  readonly cookies = new Map<string, string>();

  async request(
    url: string,
    init: { method?: string; form?: Record<string, string>; headers?: Record<string, string> } = {},
  ) {
    const headers: Record<string, string> = { ...init.headers };
    if (this.cookies.size > 0)
      headers.cookie = [...this.cookies].map(([name, value]) => `${name}=${value}`).join('; ');
    let body: URLSearchParams | undefined;
    if (init.form) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      body = new URLSearchParams(init.form);
    }
    const response = await fetch(url, {
      method: init.method ?? (body ? 'POST' : 'GET'),
      headers,
      body,
      redirect: 'manual',
    });
    for (const cookie of response.headers.getSetCookie()) {
      const [pair, ...attributes] = cookie.split(';');
      const index = pair!.indexOf('=');
      const name = pair!.slice(0, index).trim();
      const value = pair!.slice(index + 1).trim();
      const expired = attributes.some((a) => /expires=thu, 01 jan 1970/i.test(a.trim())) || value === '';
      if (expired) this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
    const text = await response.text();
    const location = response.headers.get('location');
    return {
      status: response.status,
      headers: response.headers,
      text,
      location: location ? new URL(location, url).href : undefined,
    };
  }
}

export const csrfOf = (html: string) => /name="csrf" value="([^"]+)"/.exec(html)?.[1] ?? '';

export interface InboxMessage {
  to: string;
  subject: string;
  text: string;
  time: string;
}

export async function inbox(issuer: string): Promise<InboxMessage[]> {
  const response = await fetch(`${issuer}/dev/inbox.json`);
  return ((await response.json()) as { messages: InboxMessage[] }).messages;
}

export async function latestCode(issuer: string, email: string): Promise<string> {
  // The code is mailed after the page answers (so timing reveals nothing): with the inbox in
  // PostgreSQL it can land a moment later.
  for (let attempt = 0; ; attempt++) {
    const message = (await inbox(issuer)).find((m) => m.to === email);
    const code = message && /\b(\d{6})\b/.exec(message.text)?.[1];
    if (code) return code;
    if (attempt >= 20) throw new Error(`no sign-in code for ${email} in the development inbox`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

export interface AuthorizeOptions {
  issuer: string;
  clientId: string;
  redirectUri: string;
  scope?: string;
  resource?: string;
  email?: string;
  /** What to answer on the consent page. */
  consent?: 'allow' | 'deny';
  browser?: Browser;
  extra?: Record<string, string>;
}

export interface AuthorizeResult {
  /** The final redirect back to the client, parsed. */
  callback: URL;
  state: string;
  verifier: string;
  browser: Browser;
  /** Pages the user saw, in order: 'email', 'code', 'consent'. */
  pages: string[];
  consentHtml?: string;
}

/** Plays the user through login and consent until the browser is sent back to the client. */
export async function authorize(options: AuthorizeOptions): Promise<AuthorizeResult> {
  const browser = options.browser ?? new Browser();
  const { verifier, challenge } = pkce();
  const state = randomBytes(12).toString('base64url');
  const url = new URL(`${options.issuer}/authorize`);
  const params: Record<string, string | undefined> = {
    response_type: 'code',
    client_id: options.clientId,
    redirect_uri: options.redirectUri,
    scope: options.scope,
    resource: options.resource,
    state,
    code_challenge: challenge,
    code_challenge_method: 'S256',
    ...options.extra,
  };
  for (const [key, value] of Object.entries(params))
    if (value !== undefined) url.searchParams.set(key, value);
  const played = await playUser(url.href, {
    browser,
    ...(options.email ? { email: options.email } : {}),
    ...(options.consent ? { consent: options.consent } : {}),
  });
  return { ...played, state, verifier };
}

export interface PlayUserOptions {
  email?: string;
  consent?: 'allow' | 'deny';
  browser?: Browser;
  /** Follow the final redirect too (to a client's loopback callback server), as a browser would. */
  followCallback?: boolean;
}

export interface PlayedUser {
  callback: URL;
  browser: Browser;
  pages: string[];
  consentHtml?: string;
}

/**
 * Plays the user for an authorization URL someone else built (an agent, an SDK): signs in with the
 * code from the development inbox, answers the consent page, and stops at the redirect back to the
 * client (or follows it with `followCallback`).
 */
export async function playUser(authorizationUrl: string, options: PlayUserOptions = {}): Promise<PlayedUser> {
  const browser = options.browser ?? new Browser();
  const issuer = new URL(authorizationUrl).origin;
  const pages: string[] = [];
  let consentHtml: string | undefined;
  let response = await browser.request(authorizationUrl);
  for (let step = 0; step < 12; step += 1) {
    if (response.status !== 303 && response.status !== 302) {
      throw new Error(`unexpected ${response.status} during authorization: ${response.text.slice(0, 300)}`);
    }
    const location = response.location!;
    if (!location.startsWith(issuer)) {
      if (options.followCallback) await fetch(location).then((r) => r.text());
      return { callback: new URL(location), browser, pages, ...(consentHtml ? { consentHtml } : {}) };
    }
    const page = await browser.request(location);
    if (page.status === 303 || page.status === 302) {
      response = page;
      continue;
    }
    if (page.status !== 200)
      throw new Error(`page ${location} answered ${page.status}: ${page.text.slice(0, 300)}`);
    const uidPath = new URL(location).pathname;
    if (page.text.includes('name="email"')) {
      pages.push('email');
      const email = options.email ?? 'alice@example.com';
      const sent = await browser.request(`${issuer}${uidPath}/email`, {
        form: { csrf: csrfOf(page.text), email },
      });
      if (sent.status !== 200) {
        const text = sent.text
          .replace(/<[^>]+>/g, ' ')
          .replace(/\s+/g, ' ')
          .slice(0, 600);
        throw new Error(`email step answered ${sent.status}: ${text}`);
      }
      pages.push('code');
      const code = await latestCode(issuer, email);
      response = await browser.request(`${issuer}${uidPath}/code`, {
        form: { csrf: csrfOf(sent.text), code },
      });
    } else if (page.text.includes('name="decision"')) {
      pages.push('consent');
      consentHtml = page.text;
      response = await browser.request(`${issuer}${uidPath}/consent`, {
        form: { csrf: csrfOf(page.text), decision: options.consent ?? 'allow' },
      });
    } else {
      throw new Error(`unexpected page at ${location}: ${page.text.slice(0, 300)}`);
    }
  }
  throw new Error('authorization did not finish');
}

/** Exchanges an authorization code at the token endpoint. */
export function redeemCode(
  issuer: string,
  fields: { code: string; verifier?: string; redirectUri: string; clientId: string; resource?: string },
  headers: Record<string, string> = {},
) {
  return postForm(
    `${issuer}/token`,
    {
      grant_type: 'authorization_code',
      code: fields.code,
      code_verifier: fields.verifier,
      redirect_uri: fields.redirectUri,
      client_id: headers.authorization ? undefined : fields.clientId,
      resource: fields.resource,
    },
    headers,
  );
}

/**
 * A user's token in one step: plays the user through authorization (authorize()) and redeems the
 * code with the same redirect URI, client and resource. Returns the token response as it came.
 */
export async function userToken(options: AuthorizeOptions) {
  const result = await authorize(options);
  const token = await redeemCode(options.issuer, {
    code: result.callback.searchParams.get('code') ?? '',
    verifier: result.verifier,
    redirectUri: options.redirectUri,
    clientId: options.clientId,
    ...(options.resource ? { resource: options.resource } : {}),
  });
  return { token, result };
}

/** Opens a page of ours in `browser`, signing in as `email` when sent to, and returns the final page. */
export async function openSignedIn(issuer: string, route: string, email: string, browser = new Browser()) {
  let response = await browser.request(`${issuer}${route}`);
  for (let step = 0; step < 15; step++) {
    if (response.status === 303 || response.status === 302) {
      response = await browser.request(response.location!);
      continue;
    }
    const uidPath = /action="(\/interaction\/[^/]+)\/email"/.exec(response.text)?.[1];
    if (uidPath) {
      const sent = await browser.request(`${issuer}${uidPath}/email`, {
        form: { csrf: csrfOf(response.text), email },
      });
      response = await browser.request(`${issuer}${uidPath}/code`, {
        form: { csrf: csrfOf(sent.text), code: await latestCode(issuer, email) },
      });
      continue;
    }
    return { ...response, browser };
  }
  throw new Error('did not arrive');
}

/**
 * The `Gatehouse-Tool` header the MCP server sends on a token exchange: a user's token is exchanged
 * for one call of one tool, capped at that tool's API scopes. By the API audience: a read of the
 * stocks API (`list_stocks`) or of the customers API (`get_my_customer_record`), unless named.
 */
export const toolHeader = (audience: string | undefined, tool?: string): Record<string, string> => ({
  'gatehouse-tool': tool ?? (audience?.includes('customers') ? 'get_my_customer_record' : 'list_stocks'),
});
