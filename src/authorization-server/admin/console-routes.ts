/**
 * The admin console at `<issuer>/admin`: the admin service (admin-service.ts) behind server-rendered
 * pages. Anonymous visitors are sent to sign in (first-party-sign-in.ts) and never see data; a
 * signed-in user who is not an administrator gets a page that says so, for every path. Every change
 * is a POST with the session's anti-CSRF token and our Origin, answered by a redirect back
 * (Post/Redirect/Get) with a notice.
 */
import type { Context, Middleware } from 'koa';
import type { Logger } from '../../shared/logging.ts';
import type { FirstPartySignIn, SignedIn } from '../account/first-party-sign-in.ts';
import { readForm, renderPage } from '../account/pages-http.ts';
import type { Branding } from '../interactions/views/branding.ts';
import { messagePage } from '../interactions/views/message-page.ts';
import type { Accounts } from '../login/accounts.ts';
import { AdminError, invalid } from './admin-error.ts';
import type { AdminService } from './admin-service.ts';
import {
  approvalsPage,
  type ConsoleFrame,
  type ConsoleTab,
  clientPage,
  clientsPage,
  confirmPage,
  notAdministratorPage,
  registeredClientPage,
  userPage,
  usersPage,
} from './views/console-pages.ts';

/** A page or an action another part of the server adds to the console (keys, audit). */
export interface ConsoleExtension {
  tab: ConsoleTab;
  /** GET /admin/<tab>: the page. */
  page(frame: ConsoleFrame, ctx: Context): Promise<string> | string;
  /** GET /admin/<tab>/export: a download (the audit trail's JSON lines). */
  download?(ctx: Context): Promise<void> | void;
  /** POST /admin/<tab>/<name>: a change; returns the notice. */
  actions?: Record<string, (actor: string, form: URLSearchParams) => Promise<string> | string>;
}

export interface ConsoleDependencies {
  signIn: FirstPartySignIn;
  service: AdminService;
  accounts: Accounts;
  isAdministrator: (email: string) => boolean;
  branding: Branding;
  devBanner: boolean;
  extensions?: ConsoleExtension[];
  logger: Logger;
}

/** "region=eu groups=ops,dev" → { region: 'eu', groups: ['ops', 'dev'] }. */
export function parseClaimsText(text: string): Record<string, unknown> {
  const claims: Record<string, unknown> = {};
  for (const pair of text.trim().split(/\s+/).filter(Boolean)) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw invalid('claims', `"${pair}" is not name=value`);
    const value = pair.slice(eq + 1);
    claims[pair.slice(0, eq)] = value.includes(',') ? value.split(',').filter(Boolean) : value;
  }
  return claims;
}

export function consoleRoutes(deps: ConsoleDependencies): Middleware {
  const { service, signIn } = deps;
  const extensions = new Map((deps.extensions ?? []).map((extension) => [extension.tab, extension]));

  const frameFor = async (ctx: Context, session: SignedIn, email: string): Promise<ConsoleFrame> => ({
    email,
    csrf: signIn.csrfFor(session, 'admin'),
    notice: signIn.notices.read(ctx),
    pendingApprovals: (await service.listApprovals('pending')).length,
    branding: deps.branding,
    devBanner: deps.devBanner,
    extraTabs: [...extensions.keys()],
  });

  type Action = (actor: string, form: URLSearchParams) => Promise<string> | string;
  const field = (form: URLSearchParams, name: string) => form.get(name) ?? '';
  const actions: Record<string, Action> = {
    'users/add': async (actor, form) => {
      const user = await service.addUser(actor, {
        email: field(form, 'email'),
        name: field(form, 'name'),
        claims: parseClaimsText(field(form, 'claims')),
        invite: form.get('invite') === 'true',
      });
      return `${user.email} was added${form.get('invite') === 'true' ? ' and invited' : ''}.`;
    },
    'users/update': async (actor, form) => {
      const user = await service.updateUser(actor, field(form, 'email'), {
        name: field(form, 'name'),
        claims: parseClaimsText(field(form, 'claims')),
      });
      return `${user.email} was saved.`;
    },
    'users/status': async (actor, form) => {
      const user = await service.updateUser(actor, field(form, 'email'), { status: field(form, 'status') });
      return user.status === 'suspended'
        ? `${user.email} was suspended: their tokens stopped working.`
        : `${user.email} was reinstated.`;
    },
    'users/remove': async (actor, form) => {
      await service.removeUser(actor, field(form, 'email'));
      return `${field(form, 'email')} was removed: their tokens stopped working.`;
    },
    'users/sign-out': async (actor, form) => {
      const sessions = await service.signOutEverywhere(actor, field(form, 'email'));
      return `${field(form, 'email')} was signed out of ${sessions} browser session${sessions === 1 ? '' : 's'}.`;
    },
    'domains/add': async (actor, form) =>
      `${(await service.addDomain(actor, { domain: field(form, 'domain') })).domain} was approved.`,
    'domains/remove': async (actor, form) => {
      await service.removeDomain(actor, field(form, 'domain'));
      return `${field(form, 'domain')} is no longer approved.`;
    },
    'grants/revoke': async (actor, form) => {
      const grant = await service.revokeGrant(actor, field(form, 'grant_id'));
      return `The grant of ${grant.client_name ?? grant.client_id} for ${grant.email ?? grant.sub} was revoked.`;
    },
    'clients/disable': async (actor, form) => {
      await service.setClientDisabled(actor, field(form, 'client_id'), true);
      return `${field(form, 'client_id')} was disabled: its tokens stopped working.`;
    },
    'clients/enable': async (actor, form) => {
      await service.setClientDisabled(actor, field(form, 'client_id'), false);
      return `${field(form, 'client_id')} was enabled.`;
    },
    'clients/delete': async (actor, form) => {
      await service.deleteClient(actor, field(form, 'client_id'));
      return `${field(form, 'client_id')} was deleted.`;
    },
    'trusted-domains/add': async (actor, form) =>
      `${(await service.addTrustedDomain(actor, { domain: field(form, 'domain') })).domain} is now a trusted domain.`,
    'trusted-domains/remove': async (actor, form) => {
      await service.removeTrustedDomain(actor, field(form, 'domain'));
      return `${field(form, 'domain')} is no longer trusted.`;
    },
    'approvals/decide': async (actor, form) => {
      const decided = await service.decideApproval(actor, field(form, 'client_id'), field(form, 'decision'));
      return `${decided.name} was ${decided.status}.`;
    },
  };
  for (const extension of extensions.values()) {
    for (const [name, handler] of Object.entries(extension.actions ?? {}))
      actions[`${extension.tab}/${name}`] = handler;
  }

  /**
   * The actions that take something away at once: each asks first, on a page that says what it
   * will do (no script: the question is a page, the answer a form with `confirm=yes`).
   */
  const question = (name: string, form: URLSearchParams) => {
    const email = field(form, 'email');
    const client = field(form, 'client_id');
    const domain = field(form, 'domain');
    switch (name) {
      case 'users/remove':
        return {
          title: `Remove ${email}?`,
          consequence: `${email} can no longer sign in; their agents stop at once and every browser session of theirs ends.`,
          button: `Yes, remove ${email}`,
        };
      case 'users/status':
        return form.get('status') === 'suspended'
          ? {
              title: `Suspend ${email}?`,
              consequence: `${email} cannot sign in until reinstated; their agents stop at once and must ask again afterwards.`,
              button: `Yes, suspend ${email}`,
            }
          : undefined;
      case 'clients/disable':
        return {
          title: `Disable ${client}?`,
          consequence:
            'Its tokens stop at once and nobody can use it until it is enabled again; users will be asked for consent again.',
          button: `Yes, disable ${client}`,
        };
      case 'clients/delete':
        return {
          title: `Delete ${client}?`,
          consequence:
            'Its tokens and grants are removed at once, and its registration with them (a metadata document may come back, as a new client).',
          button: `Yes, delete ${client}`,
        };
      case 'domains/remove':
        return {
          title: `Stop approving ${domain}?`,
          consequence: `Everyone at ${domain} without an entry of their own is cut off at once.`,
          button: `Yes, stop approving ${domain}`,
        };
      case 'grants/revoke':
        return {
          title: 'Revoke this grant?',
          consequence: 'The agent loses access at once and must ask the user again.',
          button: 'Yes, revoke it',
        };
      default:
        return undefined;
    }
  };

  /** The page each kind of action goes back to, unless the form says (`back`, a console path). */
  const HOME: Record<string, string> = {
    users: '/admin/users',
    domains: '/admin/users',
    grants: '/admin/users',
    clients: '/admin/clients',
    'trusted-domains': '/admin/clients',
    approvals: '/admin/approvals',
  };
  const backOf = (name: string, form: URLSearchParams) => {
    const back = form.get('back') ?? '';
    if (/^\/admin\/[A-Za-z0-9._~%/-]*$/.test(back)) return back;
    // Changes made on a user's own page return to it.
    if (name === 'users/update' || name === 'users/sign-out')
      return `/admin/users/${encodeURIComponent(field(form, 'email'))}`;
    const tab = name.split('/')[0]!;
    return HOME[tab] ?? `/admin/${tab}`;
  };

  async function page(ctx: Context, frame: ConsoleFrame, path: string): Promise<string | undefined> {
    if (path === '/users') {
      const search = typeof ctx.query.search === 'string' ? ctx.query.search : undefined;
      return usersPage(frame, await service.listUsers(search), search, await service.listDomains());
    }
    const user = /^\/users\/([^/]+)$/.exec(path);
    if (user) {
      const email = decodeURIComponent(user[1]!);
      return userPage(frame, await service.getUser(email), await service.listGrants({ email }));
    }
    if (path === '/clients')
      return clientsPage(frame, await service.listClients(), await service.listTrustedDomains());
    const client = /^\/clients\/([^/]+)$/.exec(path);
    if (client) {
      const clientId = decodeURIComponent(client[1]!);
      return clientPage(frame, await service.getClient(clientId), await service.listGrants({ clientId }));
    }
    if (path === '/approvals') return approvalsPage(frame, await service.listApprovals());
    const extension = extensions.get(path.slice(1) as ConsoleTab);
    if (extension) return extension.page(frame, ctx);
    const download = /^\/([a-z]+)\/export$/.exec(path);
    const downloading = download && extensions.get(download[1] as ConsoleTab);
    if (downloading?.download) {
      await downloading.download(ctx);
      return undefined;
    }
    return undefined;
  }

  return async (ctx, next) => {
    if (ctx.path !== '/admin' && !ctx.path.startsWith('/admin/')) return next();
    if (ctx.path === '/admin/api' || ctx.path.startsWith('/admin/api/')) return next();
    if (ctx.path === '/admin/callback' && ctx.method === 'GET') {
      const result = await signIn.finishSignIn(ctx);
      if ('error' in result)
        return renderPage(
          ctx,
          messagePage({
            title: 'Sign-in did not finish',
            message: `${result.error} Open the admin console again to retry.`,
            branding: deps.branding,
          }),
          400,
        );
      ctx.status = 303;
      return ctx.redirect(result.returnTo);
    }
    const session = await signIn.signedIn(ctx);
    const email = session ? await deps.accounts.emailOf(session.accountId) : undefined;
    if (!session || !email) {
      if (ctx.method !== 'GET' && ctx.method !== 'HEAD')
        return renderPage(
          ctx,
          messagePage({
            title: 'You are signed out',
            message: 'Open the admin console to sign in again.',
            branding: deps.branding,
          }),
          401,
        );
      const wanted = /^\/admin(\/[A-Za-z0-9._~%/-]*)?$/.test(ctx.path) ? ctx.path : '/admin';
      return signIn.startSignIn(ctx, 'admin', wanted);
    }
    if (!deps.isAdministrator(email)) {
      deps.logger.audit('admin.console', {
        outcome: 'denied',
        sub: session.accountId,
        reason: 'not an administrator',
      });
      return renderPage(ctx, notAdministratorPage(email, deps.branding), 403);
    }
    const path = ctx.path.slice('/admin'.length) || '/';
    if (ctx.method === 'GET' || ctx.method === 'HEAD') {
      if (path === '/') {
        ctx.status = 303;
        return ctx.redirect('/admin/users');
      }
      try {
        const body = await page(ctx, await frameFor(ctx, session, email), path);
        if (body) return renderPage(ctx, body);
        if (ctx.body !== undefined && ctx.body !== null) return; // a download
      } catch (error) {
        if (!(error instanceof AdminError)) throw error;
        return renderPage(
          ctx,
          messagePage({
            title: 'Not found',
            message: `${error.message}. Go back to the console.`,
            branding: deps.branding,
          }),
          error.status,
        );
      }
      return renderPage(
        ctx,
        messagePage({
          title: 'Page not found',
          message: 'There is no such page in the admin console.',
          branding: deps.branding,
        }),
        404,
      );
    }
    if (ctx.method !== 'POST')
      return renderPage(
        ctx,
        messagePage({
          title: 'Not allowed',
          message: 'This page cannot be used that way.',
          branding: deps.branding,
        }),
        405,
      );
    const name = path.slice(1);
    const handler = name === 'clients/register' ? () => '' : actions[name];
    if (!handler)
      return renderPage(
        ctx,
        messagePage({
          title: 'Page not found',
          message: 'There is no such action.',
          branding: deps.branding,
        }),
        404,
      );
    const form = await readForm(ctx);
    if (!form || !signIn.checkForm(ctx, session, 'admin', form))
      return renderPage(
        ctx,
        messagePage({
          title: 'This form has expired',
          message: 'Open the admin console again and retry.',
          branding: deps.branding,
        }),
        403,
      );
    const ask = form.get('confirm') === 'yes' ? undefined : question(name, form);
    if (ask) {
      const fields = Object.fromEntries([...form].filter(([key]) => key !== 'csrf' && key !== 'confirm'));
      const back = backOf(name, form);
      return renderPage(
        ctx,
        confirmPage(
          await frameFor(ctx, session, email),
          (back.split('/')[2] ?? 'users') as ConsoleTab,
          { ...ask, path: name, back },
          fields,
        ),
      );
    }
    try {
      if (name === 'clients/register') {
        // Answered with a page, not a redirect: the secret is shown this once and kept nowhere else.
        const words = (value: string) => value.trim().split(/\s+/).filter(Boolean);
        let jwks: unknown;
        if (field(form, 'jwks').trim()) {
          try {
            jwks = JSON.parse(field(form, 'jwks'));
          } catch {
            throw invalid('jwks', 'is not JSON');
          }
        }
        const { client_secret: secret, ...client } = await service.registerClient(email, {
          name: field(form, 'name'),
          client_id: field(form, 'client_id'),
          role: field(form, 'role'),
          ...(field(form, 'auth_method') ? { auth_method: field(form, 'auth_method') } : {}),
          redirect_uris: words(field(form, 'redirect_uris')),
          scopes: words(field(form, 'scopes')),
          ...(jwks !== undefined ? { jwks } : {}),
        });
        return renderPage(
          ctx,
          registeredClientPage(await frameFor(ctx, session, email), client, secret),
          201,
        );
      }
      return signIn.notices.redirect(ctx, backOf(name, form), await handler(email, form));
    } catch (error) {
      if (!(error instanceof AdminError)) throw error;
      const where = error.field ? ` (${error.field})` : '';
      return signIn.notices.redirect(ctx, backOf(name, form), `Not done: ${error.message}${where}.`);
    }
  };
}
