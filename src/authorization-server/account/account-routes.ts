/**
 * `/account`: after the usual one-time-code sign-in (first-party-sign-in.ts), the user sees the
 * agents they allowed and revokes any of them at once (the admin service's revocation, so the
 * gateway and the MCP server drop it within a second).
 */
import type { Context, Middleware } from 'koa';
import type { Logger } from '../../shared/logging.ts';
import { AdminError } from '../admin/admin-error.ts';
import type { AdminService } from '../admin/admin-service.ts';
import type { ClientClassifier } from '../clients/client-classification.ts';
import type { Branding } from '../interactions/views/branding.ts';
import { messagePage } from '../interactions/views/message-page.ts';
import type { Accounts } from '../login/accounts.ts';
import { type AccountAgent, accountPage } from './account-page.ts';
import { FIRST_PARTY_CLIENT_ID, type FirstPartySignIn, type SignedIn } from './first-party-sign-in.ts';
import { readForm, renderPage } from './pages-http.ts';

export interface AccountDependencies {
  signIn: FirstPartySignIn;
  service: AdminService;
  accounts: Accounts;
  classifier: ClientClassifier;
  describeScope: (name: string) => string;
  isAdministrator: (email: string) => boolean;
  branding: Branding;
  devBanner: boolean;
  logger: Logger;
}

export function accountRoutes(deps: AccountDependencies): Middleware {
  const { signIn } = deps;
  const page = (ctx: Context, title: string, message: string, status: number) =>
    renderPage(ctx, messagePage({ title, message, branding: deps.branding }), status);

  async function agentsOf(session: SignedIn): Promise<AccountAgent[]> {
    const email = (await deps.accounts.emailOf(session.accountId)) ?? '';
    const grants = await deps.service.listGrants({ email });
    // One lookup per agent of this user: the page must not cost what the number of clients costs.
    const agents = grants.filter(
      (grant) => grant.client_id !== FIRST_PARTY_CLIENT_ID && grant.sub === session.accountId,
    );
    return Promise.all(
      agents.map(async (grant) => {
        const client = await deps.service.clientSummary(grant.client_id);
        return {
          grantId: grant.grant_id,
          name: client.name ?? grant.client_id,
          verified: (await deps.classifier.classify(grant.client_id)).verified,
          redirectHosts: client.redirectHosts,
          scopes: grant.scopes
            .filter((scope) => scope !== 'openid')
            .map((name) => ({ name, description: deps.describeScope(name) })),
          ...(grant.consented_at ? { allowedAt: grant.consented_at } : {}),
          ...(grant.last_used_at ? { lastUsedAt: grant.last_used_at } : {}),
        };
      }),
    );
  }

  return async (ctx, next) => {
    if (ctx.path !== '/account' && !ctx.path.startsWith('/account/')) return next();
    if (ctx.path === '/account/callback' && ctx.method === 'GET') {
      const result = await signIn.finishSignIn(ctx);
      if ('error' in result)
        return page(
          ctx,
          'Sign-in did not finish',
          `${result.error} Open your account page again to retry.`,
          400,
        );
      ctx.status = 303;
      return ctx.redirect(result.returnTo);
    }
    const session = await signIn.signedIn(ctx);
    const email = session ? await deps.accounts.emailOf(session.accountId) : undefined;
    if (ctx.path === '/account' && (ctx.method === 'GET' || ctx.method === 'HEAD')) {
      if (!session || !email) return signIn.startSignIn(ctx, 'account', '/account');
      return renderPage(
        ctx,
        accountPage({
          email,
          agents: await agentsOf(session),
          csrfToken: signIn.csrfFor(session, 'account'),
          notice: signIn.notices.read(ctx),
          administrator: deps.isAdministrator(email),
          branding: deps.branding,
          devBanner: deps.devBanner,
        }),
      );
    }
    if (ctx.path === '/account/revoke' && ctx.method === 'POST') {
      if (!session || !email)
        return page(ctx, 'You are signed out', 'Open your account page to sign in again.', 401);
      const form = await readForm(ctx);
      if (!form || !signIn.checkForm(ctx, session, 'account', form))
        return page(ctx, 'This form has expired', 'Open your account page again and retry.', 403);
      try {
        const revoked = await deps.service.revokeGrant(email, form.get('grant_id') ?? '', {
          sub: session.accountId,
        });
        const name = revoked.client_name ?? revoked.client_id;
        return signIn.notices.redirect(ctx, '/account', `${name} was revoked. It can no longer act for you.`);
      } catch (error) {
        if (error instanceof AdminError)
          return page(
            ctx,
            'Nothing was revoked',
            'That agent is not among yours any more. Open your account page again.',
            404,
          );
        throw error;
      }
    }
    return page(ctx, 'Page not found', 'There is nothing here. Your agents are listed at /account.', 404);
  };
}
