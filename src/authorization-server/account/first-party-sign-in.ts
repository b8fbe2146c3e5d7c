/**
 * Signing in to the server's own pages (the user's `/account` and the admin console `/admin`) with
 * the same one-time-code sign-in agents send people to.
 *
 * The pages are a first-party client of this authorization server (`gatehouse-account`, public,
 * PKCE, redirect URIs on the issuer itself, consent implied: interactions/routes.ts). A visitor
 * without a browser session is sent through `/authorize`; on the way back the code is destroyed
 * unused, as the pages need no token: they read the browser session oidc-provider keeps, whose
 * cookie is httpOnly, signed and SameSite=Lax. The state travels in a signed cookie of its own,
 * so a callback this browser did not start is refused (RFC 6749 §10.12).
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Context } from 'koa';
import type Provider from 'oidc-provider';
import type { PreRegisteredClientConfig } from '../../shared/config/schema.ts';
import { notFoundUnlessUnavailable } from '../store/postgres/connection.ts';
import { createNotices } from './pages-http.ts';

export const FIRST_PARTY_CLIENT_ID = 'gatehouse-account';
const STATE_COOKIE = '_gh_pages_state';

/** The first-party client, as a pre-registered client of the configuration's form. */
export function firstPartyClient(issuer: string): PreRegisteredClientConfig {
  return {
    clientId: FIRST_PARTY_CLIENT_ID,
    name: 'Your account',
    role: 'agent',
    authMethod: 'none',
    generateKeys: false,
    redirectUris: [`${issuer}/account/callback`, `${issuer}/admin/callback`],
    scopes: [],
  };
}

export interface SignedIn {
  accountId: string;
  /** Stable for the browser session: forms are bound to it (csrfFor). */
  sessionUid: string;
}

export function firstPartySignIn(options: { provider: Provider; issuer: string; csrfKey: Uint8Array }) {
  const { provider, issuer } = options;
  const issuerOrigin = new URL(issuer).origin;

  async function signedIn(ctx: Context): Promise<SignedIn | undefined> {
    const session = await provider.Session.get(ctx as never);
    const accountId = session.accountId;
    if (!accountId) return undefined;
    return { accountId, sessionUid: session.uid };
  }

  /** Sends the browser to sign in, to come back to `returnTo` (a path of `area`). */
  function startSignIn(ctx: Context, area: 'account' | 'admin', returnTo: string): void {
    const state = randomBytes(16).toString('base64url');
    const verifier = randomBytes(32).toString('base64url');
    ctx.cookies.set(STATE_COOKIE, `${state}.${returnTo}`, {
      signed: true,
      httpOnly: true,
      sameSite: 'lax',
      maxAge: 15 * 60 * 1000,
      path: `/${area}`,
      secure: issuer.startsWith('https:'),
    });
    const url = new URL(`${issuer}/authorize`);
    url.search = new URLSearchParams({
      client_id: FIRST_PARTY_CLIENT_ID,
      response_type: 'code',
      scope: 'openid',
      redirect_uri: `${issuer}/${area}/callback`,
      state,
      code_challenge: createHash('sha256').update(verifier).digest('base64url'),
      code_challenge_method: 'S256',
    }).toString();
    ctx.status = 303;
    ctx.redirect(url.href);
  }

  /**
   * The way back: the state must be this browser's; the code is destroyed (nothing redeems it).
   * Returns where to go, or the error the authorization server sent (the user said no, or the
   * sign-in could not be done).
   */
  async function finishSignIn(ctx: Context): Promise<{ returnTo: string } | { error: string }> {
    // The code first: whatever else happens, nothing redeems it (the pages need no token).
    const code = typeof ctx.query.code === 'string' ? ctx.query.code : undefined;
    if (code) {
      const found = await provider.AuthorizationCode.find(code).catch(notFoundUnlessUnavailable);
      await found?.destroy();
    }
    const stored = ctx.cookies.get(STATE_COOKIE, { signed: true }) ?? '';
    const dot = stored.indexOf('.');
    const expected = Buffer.from(dot > 0 ? stored.slice(0, dot) : '');
    const given = Buffer.from(String(ctx.query.state ?? ''));
    if (expected.length === 0 || expected.length !== given.length || !timingSafeEqual(expected, given))
      return { error: 'This sign-in was not started in this browser, or it took too long.' };
    ctx.cookies.set(STATE_COOKIE, null, { path: ctx.path.replace(/\/callback$/, '') });
    if (!code)
      return {
        error: String(ctx.query.error_description ?? ctx.query.error ?? 'The sign-in did not finish.'),
      };
    const returnTo = stored.slice(dot + 1);
    // Only a path of ours: never an absolute URL another site could put here.
    return {
      returnTo: /^\/(account|admin)(\/[A-Za-z0-9._~%/?=&+-]*)?$/.test(returnTo) ? returnTo : '/account',
    };
  }

  /** The anti-CSRF token of a form on these pages, bound to the browser session and its purpose. */
  const csrfFor = (session: SignedIn, purpose: string) =>
    createHmac('sha256', options.csrfKey)
      .update(`pages:${purpose}:${session.sessionUid}`)
      .digest('base64url');

  /** A form post must come from our origin and carry the session's token. */
  function checkForm(ctx: Context, session: SignedIn, purpose: string, form: URLSearchParams): boolean {
    const origin = ctx.get('origin');
    if (origin && origin !== issuerOrigin) return false;
    const expected = Buffer.from(csrfFor(session, purpose));
    const given = Buffer.from(form.get('csrf') ?? '');
    return expected.length === given.length && timingSafeEqual(expected, given);
  }

  return { signedIn, startSignIn, finishSignIn, csrfFor, checkForm, notices: createNotices(options.csrfKey) };
}

export type FirstPartySignIn = ReturnType<typeof firstPartySignIn>;
