/**
 * The interaction pages: sign-in by email one-time code, then consent.
 *
 * oidc-provider sends the browser here with an interaction uid whenever a prompt (login or consent)
 * must be answered, and takes the result back through `interactionResult`. Forms are protected by
 * the interaction cookie (SameSite=Lax, so it does not travel on cross-site POSTs), a per-interaction
 * CSRF token and an Origin check; pages forbid framing and scripts (html.ts's CSP).
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import ipaddr from 'ipaddr.js';
import type { Context, Middleware } from 'koa';
import type Provider from 'oidc-provider';
import type { InteractionResults } from 'oidc-provider';
import type { Logger } from '../../shared/logging.ts';
import { FIRST_PARTY_CLIENT_ID } from '../account/first-party-sign-in.ts';
import type { ApprovalGate } from '../admin/approval-gate.ts';
import type { ClientClassifier } from '../clients/client-classification.ts';
import type { Accounts } from '../login/accounts.ts';
import type { ApprovedUserLookup } from '../login/approved-users.ts';
import { loginCodeMessage, type Mailer } from '../login/mailer.ts';
import type { OneTimeCodes } from '../login/one-time-codes.ts';
import type { ResourceRegistry } from '../resources.ts';
import { type Branding, LOGO_PATH, type Logo } from './views/branding.ts';
import { consentPage } from './views/consent-page.ts';
import { devInboxPage } from './views/dev-inbox-page.ts';
import { waitInWords } from './views/duration.ts';
import { CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY_REDIRECTING_FORMS } from './views/html.ts';
import { codePage, emailPage } from './views/login-pages.ts';
import { messagePage } from './views/message-page.ts';
import { scopeRefusalPage } from './views/scope-refusal-page.ts';

export interface InteractionDependencies {
  provider: Provider;
  issuer: string;
  csrfKey: Uint8Array;
  approvedUsers: ApprovedUserLookup;
  accounts: Accounts;
  codes: OneTimeCodes;
  mailer: Mailer;
  classifier: ClientClassifier;
  resources: ResourceRegistry;
  codeTtlSeconds: number;
  devBanner: boolean;
  /** The organization's name, support contact and logo on every page and in the code mail. */
  branding: Branding;
  /** The configured logo, served at LOGO_PATH. */
  logo?: Logo | undefined;
  /** The approval queue (admin/approval-gate.ts); every client allowed when absent. */
  approvalGate?: ApprovalGate;
  logger: Logger;
}

const FORM_LIMIT_BYTES = 8 * 1024;
const ROUTE = /^\/interaction\/([A-Za-z0-9_-]{10,64})(?:\/(email|code|resend|consent))?$/;

class PageError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

/** Reads an urlencoded form, refusing bodies over the limit (nothing user-supplied is unbounded). */
async function readForm(ctx: Context): Promise<URLSearchParams> {
  if (!ctx.is('application/x-www-form-urlencoded'))
    throw new PageError(415, 'The form was not sent as a web form.');
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of ctx.req) {
    size += (chunk as Buffer).length;
    if (size > FORM_LIMIT_BYTES) throw new PageError(413, 'The form is too large.');
    chunks.push(chunk as Buffer);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

/** Throttling keys: an IPv6 client controls a whole /64, so it counts as one address. */
function throttleAddress(ip: string): string {
  try {
    const parsed = ipaddr.process(ip);
    if (parsed.kind() === 'ipv6') {
      const bytes = parsed.toByteArray().slice(0, 8);
      return `${Buffer.from(bytes).toString('hex')}::/64`;
    }
    return parsed.toString();
  } catch {
    return ip;
  }
}

const SCOPE_DESCRIPTIONS: Record<string, string> = { openid: 'Know who you are (your email address)' };

export function interactionRoutes(deps: InteractionDependencies): Middleware {
  const { provider, logger } = deps;
  const issuerOrigin = new URL(deps.issuer).origin;

  const csrfToken = (uid: string) =>
    createHmac('sha256', deps.csrfKey).update(`csrf:${uid}`).digest('base64url');
  const checkCsrf = (ctx: Context, uid: string, form: URLSearchParams) => {
    const origin = ctx.get('origin');
    if (origin && origin !== issuerOrigin) throw new PageError(403, 'This form was sent from another site.');
    const expected = Buffer.from(csrfToken(uid));
    const given = Buffer.from(form.get('csrf') ?? '');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      throw new PageError(403, 'This form has expired. Go back to your application and start again.');
    }
  };

  const render = (
    ctx: Context,
    body: string,
    options: { redirectingForm?: boolean; status?: number } = {},
  ) => {
    ctx.status = options.status ?? 200;
    ctx.type = 'html';
    ctx.set(
      'content-security-policy',
      options.redirectingForm ? CONTENT_SECURITY_POLICY_REDIRECTING_FORMS : CONTENT_SECURITY_POLICY,
    );
    ctx.set('x-frame-options', 'DENY');
    ctx.set('cache-control', 'no-store');
    ctx.body = body;
  };

  const finish = async (ctx: Context, result: InteractionResults) => {
    const location = await provider.interactionResult(ctx.req, ctx.res, result, {
      mergeWithLastSubmission: true,
    });
    ctx.status = 303;
    ctx.redirect(location);
  };

  async function clientOf(clientId: string) {
    const client = await provider.Client.find(clientId);
    if (!client) throw new PageError(400, 'The application that sent you here is not known.');
    return client;
  }

  async function showEmailPage(
    ctx: Context,
    uid: string,
    details: Awaited<ReturnType<Provider['interactionDetails']>>,
    extra: { error?: string; email?: string; status?: number } = {},
  ) {
    const clientId = String(details.params.client_id);
    const client = await clientOf(clientId);
    // Signed in already, asked to sign in again (prompt=login, max_age, another account): say as whom.
    // Only an existing session whose account is known; never a guess.
    const accountId = details.session?.accountId;
    const signedInEmail = accountId ? await deps.accounts.emailOf(accountId) : undefined;
    render(
      ctx,
      emailPage({
        action: `/interaction/${uid}/email`,
        csrfToken: csrfToken(uid),
        clientName: client.clientName ?? clientId,
        clientVerified: (await deps.classifier.classify(clientId)).verified,
        devBanner: deps.devBanner,
        branding: deps.branding,
        ...(extra.error ? { error: extra.error } : {}),
        ...(extra.email ? { email: extra.email } : {}),
        ...(signedInEmail ? { signedIn: { email: signedInEmail, signOutUrl: '/session/end' } } : {}),
      }),
      { status: extra.status ?? 200 },
    );
  }

  function showCodePage(
    ctx: Context,
    uid: string,
    email: string,
    extra: { error?: string; attemptsLeft?: number; status?: number } = {},
  ) {
    render(
      ctx,
      codePage({
        action: `/interaction/${uid}/code`,
        resendAction: `/interaction/${uid}/resend`,
        csrfToken: csrfToken(uid),
        email,
        useAnotherEmailHref: `/interaction/${uid}`,
        devBanner: deps.devBanner,
        branding: deps.branding,
        ...(extra.error ? { error: extra.error } : {}),
        ...(extra.attemptsLeft !== undefined ? { attemptsLeft: extra.attemptsLeft } : {}),
      }),
      { redirectingForm: true, status: extra.status ?? 200 },
    );
  }

  /** Sends a code to an approved address, or records a decoy: the page is the same either way. */
  async function sendCode(
    ctx: Context,
    uid: string,
    clientId: string,
    typedEmail: string,
  ): Promise<string | undefined> {
    const address = throttleAddress(ctx.ip);
    const user = await deps.approvedUsers.find(typedEmail);
    const result = user
      ? await deps.codes.issue({ loginId: uid, email: user.email, address })
      : await deps.codes.issueDecoy({ loginId: uid, email: typedEmail, address });
    if (result.status === 'throttled') {
      logger.audit('login.code', { outcome: 'denied', client_id: clientId, reason: 'throttled', ip: ctx.ip });
      return `Too many codes were requested. Try again in ${waitInWords(result.retryAfterSeconds)}.`;
    }
    if (user && 'code' in result) {
      const message = loginCodeMessage(
        (result as { code: string }).code,
        deps.branding.organizationName,
        Math.round(deps.codeTtlSeconds / 60),
      );
      // Not awaited: a slow mail server must not reveal which addresses are approved.
      deps.mailer.send({ to: user.email, ...message }).catch(() => {
        logger.error('could not send a sign-in code', { client_id: clientId });
      });
      logger.audit('login.code', { outcome: 'success', sub: user.sub, client_id: clientId });
    } else {
      logger.audit('login.code', { outcome: 'denied', client_id: clientId, reason: 'email not approved' });
    }
    return undefined;
  }

  async function handle(ctx: Context, uid: string, action: string | undefined): Promise<void> {
    const details = await provider.interactionDetails(ctx.req, ctx.res).catch(() => {
      throw new PageError(
        400,
        'This sign-in page has expired or was opened in another browser. Go back to your application and start again.',
      );
    });
    if (details.uid !== uid)
      throw new PageError(400, 'This sign-in page does not belong to this browser session.');
    const clientId = String(details.params.client_id);
    const prompt = details.prompt.name;

    if (ctx.method === 'GET' && !action) {
      if (prompt === 'login') return showEmailPage(ctx, uid, details);
      if (prompt === 'consent' && clientId === FIRST_PARTY_CLIENT_ID) return consentToOwnPages(ctx, details);
      if (prompt === 'consent' && (await heldForApproval(ctx, clientId, details))) return;
      if (prompt === 'consent') return showConsent(ctx, uid, details);
      throw new PageError(400, 'This sign-in step is not supported.');
    }
    if (ctx.method !== 'POST' || !action) throw new PageError(405, 'This page cannot be used that way.');
    const form = await readForm(ctx);
    checkCsrf(ctx, uid, form);

    if (action === 'email' || action === 'resend') {
      if (prompt !== 'login') throw new PageError(400, 'You are already signed in.');
      // Resend: the code page's forms carry the address as typed (views/login-pages.ts).
      const email = form.get('email')?.trim() ?? '';
      if (!email || email.length > 254) {
        return showEmailPage(ctx, uid, details, { error: 'Enter your email address.', status: 400 });
      }
      const error = await sendCode(ctx, uid, clientId, email);
      if (error) return showEmailPage(ctx, uid, details, { error, email, status: 429 });
      return showCodePage(ctx, uid, email);
    }

    if (action === 'code') {
      if (prompt !== 'login') throw new PageError(400, 'You are already signed in.');
      // Only shown again on the page; the code is checked against the login's own record.
      const email = (form.get('email') ?? '').trim().slice(0, 254);
      const result = await deps.codes.verify({
        loginId: uid,
        code: form.get('code') ?? '',
        address: throttleAddress(ctx.ip),
      });
      if (result.status === 'invalid') {
        logger.audit('login', { outcome: 'failure', client_id: clientId, reason: 'wrong code', ip: ctx.ip });
        return showCodePage(ctx, uid, email, {
          error: 'That code is not right.',
          attemptsLeft: result.attemptsLeft,
          status: 400,
        });
      }
      if (result.status !== 'ok') {
        logger.audit('login', { outcome: 'failure', client_id: clientId, reason: result.status, ip: ctx.ip });
        const reasons = {
          expired: 'That code has expired. Ask for a new one.',
          locked: 'Too many wrong codes. Ask for a new one.',
          unknown: 'Ask for a sign-in code first.',
        } as const;
        return showEmailPage(ctx, uid, details, { error: reasons[result.status], email, status: 400 });
      }
      const user = await deps.approvedUsers.find(result.email);
      if (!user) throw new PageError(403, 'This email address may no longer sign in.');
      await deps.accounts.remember(user.sub, user.email);
      logger.audit('login', { outcome: 'success', sub: user.sub, client_id: clientId });
      return finish(ctx, { login: { accountId: user.sub, amr: ['otp'], remember: true } });
    }

    // action === 'consent'
    if (prompt !== 'consent' || !details.session?.accountId)
      throw new PageError(400, 'There is nothing to consent to.');
    const accountId = details.session.accountId;
    const { permitted, forbidden } = splitByToolPolicy(details);
    // The refusal page's button, or an Allow with nothing the user may be given: no grant, access_denied.
    if (
      forbidden.length > 0 &&
      (form.get('decision') === 'refused' || (form.get('decision') === 'allow' && permitted.length === 0))
    ) {
      logger.audit('consent', {
        outcome: 'denied',
        sub: accountId,
        client_id: clientId,
        ...(details.grantId ? { grant_id: details.grantId } : {}),
        scope: forbidden.join(' '),
        reason: 'scope not permitted by the tool policy',
      });
      return finish(ctx, {
        error: 'access_denied',
        error_description: `not available to this user: ${forbidden.join(' ')}`,
      });
    }
    if (form.get('decision') !== 'allow') {
      logger.audit('consent', {
        outcome: 'denied',
        sub: accountId,
        client_id: clientId,
        ...(details.grantId ? { grant_id: details.grantId } : {}),
      });
      return finish(ctx, { error: 'access_denied', error_description: 'The user denied the request.' });
    }
    if (await heldForApproval(ctx, clientId, details)) return;
    const missing = details.prompt.details as {
      missingOIDCScope?: string[];
      missingOIDCClaims?: string[];
      missingResourceScopes?: Record<string, string[]>;
    };
    const grant =
      (details.grantId ? await provider.Grant.find(details.grantId) : undefined) ??
      new provider.Grant({ accountId, clientId });
    // The MCP scopes are OpenID scopes of this provider too (provider.ts `scopes`): refused on both sides.
    const oidcScopes = (missing.missingOIDCScope ?? []).filter((scope) => !forbidden.includes(scope));
    if (oidcScopes.length) grant.addOIDCScope(oidcScopes.join(' '));
    if (missing.missingOIDCClaims?.length) grant.addOIDCClaims(missing.missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
      const allowed = scopes.filter((scope) => !forbidden.includes(scope));
      if (allowed.length > 0) grant.addResourceScope(indicator, allowed.join(' '));
    }
    // Recorded as refused, so the next request that asks for them beside what the user holds goes
    // through without them (provider.ts, forbiddenScopeCheck).
    if (forbidden.length > 0) {
      // Under every indicator that names the MCP server (`…/mcp` and `…/mcp/` are two keys).
      const indicators = new Set([
        deps.resources.mcp.uri,
        ...Object.keys(missing.missingResourceScopes ?? {}).filter(deps.resources.isMcpResource),
      ]);
      for (const indicator of indicators) grant.rejectResourceScope(indicator, forbidden.join(' '));
      grant.rejectOIDCScope(forbidden.join(' '));
    }
    const grantId = await grant.save();
    await deps.accounts.rememberGrant(accountId, clientId, grantId);
    // grant_id joins the consent to the tokens and token exchanges (tool calls) resting on it.
    logger.audit('consent', {
      outcome: 'success',
      sub: accountId,
      client_id: clientId,
      grant_id: grantId,
      scope: permitted.join(' '),
      ...(forbidden.length > 0 ? { refused: forbidden.join(' ') } : {}),
    });
    return finish(ctx, { consent: { grantId } });
  }

  /**
   * The MCP scopes a consent prompt asks for, split by the tool policy: those the user may be given
   * and those they may never hold (provider.ts's check names them in `forbiddenScopes`).
   */
  function splitByToolPolicy(details: Awaited<ReturnType<Provider['interactionDetails']>>) {
    const prompt = details.prompt.details as {
      missingResourceScopes?: Record<string, string[]>;
      forbiddenScopes?: string[];
    };
    const forbidden = prompt.forbiddenScopes ?? [];
    const permitted = Object.values(prompt.missingResourceScopes ?? {})
      .flat()
      .filter((scope) => !forbidden.includes(scope));
    return { permitted: [...new Set(permitted)], forbidden };
  }

  /**
   * The server's own pages (/account, /admin) ask for nothing but who the user is: signing in is the
   * consent. Only `openid` is granted, so this grant reaches no API.
   */
  async function consentToOwnPages(
    ctx: Context,
    details: Awaited<ReturnType<Provider['interactionDetails']>>,
  ) {
    const accountId = details.session?.accountId;
    if (!accountId) throw new PageError(400, 'There is nothing to consent to.');
    // Implied only for what the pages themselves ask: who the user is, back to the issuer's own
    // callbacks. Anything more (another scope, a claim, a resource) is not theirs to be given here.
    const missing = details.prompt.details as {
      missingOIDCScope?: string[];
      missingOIDCClaims?: string[];
      missingResourceScopes?: Record<string, string[]>;
    };
    const ownCallbacks = [`${deps.issuer}/account/callback`, `${deps.issuer}/admin/callback`];
    const onlyOpenid =
      String(details.params.scope ?? '') === 'openid' &&
      (missing.missingOIDCScope ?? []).every((scope) => scope === 'openid') &&
      (missing.missingOIDCClaims ?? []).length === 0 &&
      Object.values(missing.missingResourceScopes ?? {}).every((scopes) => scopes.length === 0);
    if (!onlyOpenid || !ownCallbacks.includes(String(details.params.redirect_uri ?? '')))
      throw new PageError(
        400,
        'This sign-in asks for more than your account page needs. Open your account page again.',
      );
    const grant =
      (details.grantId ? await provider.Grant.find(details.grantId) : undefined) ??
      new provider.Grant({ accountId, clientId: FIRST_PARTY_CLIENT_ID });
    grant.addOIDCScope('openid');
    const grantId = await grant.save();
    return finish(ctx, { consent: { grantId } });
  }

  /** True when the approval queue holds the client back; the page saying so is then rendered. */
  async function heldForApproval(
    ctx: Context,
    clientId: string,
    details: Awaited<ReturnType<Provider['interactionDetails']>>,
  ): Promise<boolean> {
    if (!deps.approvalGate) return false;
    const missing = details.prompt.details as { missingResourceScopes?: Record<string, string[]> };
    const answer = await deps.approvalGate(clientId, {
      email: await deps.accounts.emailOf(details.session?.accountId ?? ''),
      scopes: Object.values(missing.missingResourceScopes ?? {}).flat(),
      redirectUri: typeof details.params.redirect_uri === 'string' ? details.params.redirect_uri : undefined,
    });
    if (answer.outcome === 'allow') return false;
    const title =
      answer.outcome === 'pending' ? 'Waiting for your administrator' : 'This application is not allowed';
    const message =
      answer.outcome === 'pending'
        ? `Waiting for your administrator to approve ${answer.clientName} (${answer.redirectHost}). Your request has been passed on; once it is approved, start again from your application.`
        : `Your administrator has not allowed ${answer.clientName} (${answer.redirectHost}). Ask them if you need it.`;
    render(ctx, messagePage({ title, message, branding: deps.branding, devBanner: deps.devBanner }), {
      status: 403,
    });
    return true;
  }

  async function showConsent(
    ctx: Context,
    uid: string,
    details: Awaited<ReturnType<Provider['interactionDetails']>>,
  ) {
    const clientId = String(details.params.client_id);
    const client = await clientOf(clientId);
    const classification = await deps.classifier.classify(clientId);
    const missing = details.prompt.details as {
      missingOIDCScope?: string[];
      missingResourceScopes?: Record<string, string[]>;
    };
    const existing = details.grantId ? await provider.Grant.find(details.grantId) : undefined;
    const granted = new Set(
      existing?.getResourceScope(deps.resources.mcp.uri)?.split(' ').filter(Boolean) ?? [],
    );
    const { permitted, forbidden } = splitByToolPolicy(details);
    const requested = [
      ...(missing.missingOIDCScope ?? []).filter((scope) => !forbidden.includes(scope)),
      ...permitted,
    ];
    const describe = (name: string) =>
      deps.resources.mcp.scopes.get(name) ?? SCOPE_DESCRIPTIONS[name] ?? name;
    const redirectUri = URL.parse(String(details.params.redirect_uri ?? ''));
    const described = (names: string[]) => names.map((name) => ({ name, description: describe(name) }));
    // Nothing new the user could allow: a step-up for what the policy closes to them. A consent page
    // would only lead back here; this page says why, and ends the request.
    if (forbidden.length > 0 && permitted.length === 0) {
      render(
        ctx,
        scopeRefusalPage({
          action: `/interaction/${uid}/consent`,
          csrfToken: csrfToken(uid),
          clientName: client.clientName ?? clientId,
          redirectHost: redirectUri?.host ?? 'unknown',
          email: (await deps.accounts.emailOf(details.session?.accountId ?? '')) ?? 'you',
          scopes: described(forbidden),
          devBanner: deps.devBanner,
          branding: deps.branding,
        }),
        { redirectingForm: true, status: 403 },
      );
      return;
    }
    render(
      ctx,
      consentPage({
        action: `/interaction/${uid}/consent`,
        csrfToken: csrfToken(uid),
        client: {
          name: client.clientName ?? clientId,
          kind: classification.kind,
          verified: classification.verified,
          ...(classification.kind === 'cimd' ? { clientIdHost: new URL(clientId).host } : {}),
        },
        redirectHost: redirectUri?.host ?? 'unknown',
        user: {
          email: (await deps.accounts.emailOf(details.session?.accountId ?? '')) ?? 'you',
          // A shared browser: whoever is signed in may not be who is at the keyboard.
          signOutUrl: '/session/end',
          accountUrl: `${deps.issuer}/account`,
        },
        resource: { name: deps.resources.mcp.name, uri: deps.resources.mcp.uri },
        scopes: [
          ...[...new Set(requested)].map((name) => ({
            name,
            description: describe(name),
            alreadyGranted: false,
          })),
          ...[...granted]
            .filter((name) => !requested.includes(name))
            .map((name) => ({ name, description: describe(name), alreadyGranted: true })),
        ],
        unavailable: described(forbidden),
        devBanner: deps.devBanner,
        branding: deps.branding,
      }),
      { redirectingForm: true },
    );
  }

  return async (ctx, next) => {
    if (deps.logo && (ctx.method === 'GET' || ctx.method === 'HEAD') && ctx.path === LOGO_PATH) {
      ctx.type = deps.logo.type;
      ctx.set('cache-control', 'public, max-age=3600');
      ctx.set('content-security-policy', "default-src 'none'");
      ctx.body = deps.logo.bytes;
      return;
    }
    // The server's root, where a person may land by typing the address: say what this is.
    if ((ctx.method === 'GET' || ctx.method === 'HEAD') && ctx.path === '/') {
      render(
        ctx,
        messagePage({
          branding: deps.branding,
          title: 'Sign-in service',
          message:
            'This is where the AI agents and applications you use send you to sign in and to allow them access. There is nothing to do here: your application opens the right page when it needs you.',
        }),
      );
      return;
    }
    if (
      deps.mailer.devInbox &&
      ctx.method === 'GET' &&
      (ctx.path === '/dev/inbox' || ctx.path === '/dev/inbox.json')
    ) {
      const messages = await deps.mailer.devInbox.list();
      if (ctx.path.endsWith('.json')) {
        ctx.set('cache-control', 'no-store');
        ctx.body = { development_only: true, messages };
      } else {
        render(ctx, devInboxPage(messages));
      }
      return;
    }
    const match = ROUTE.exec(ctx.path);
    if (!match) return next();
    try {
      await handle(ctx, match[1]!, match[2]);
    } catch (error) {
      const status = error instanceof PageError ? error.status : 500;
      if (!(error instanceof PageError))
        logger.error('interaction failed', { error: (error as Error).message });
      const message =
        error instanceof PageError
          ? error.message
          : 'Something went wrong. Go back to your application and try again.';
      render(ctx, messagePage({ title: 'Sign-in could not continue', message, branding: deps.branding }), {
        status,
      });
    }
  };
}
