/**
 * `/account/approvals/<id>`: the signed-in user approves or denies one tool call their agent asked
 * for (approval-requests.ts). Only the user the call is for may decide: anyone else, signed in or
 * not, learns nothing about it. A decision needs the form's token, bound to this approval and the
 * browser session, and our Origin (first-party-sign-in.ts `checkForm`); it is final, and an
 * approval not used within its lifetime expires.
 */
import type { Context, Middleware } from 'koa';
import type { Logger } from '../../shared/logging.ts';
import type { FirstPartySignIn } from '../account/first-party-sign-in.ts';
import { readForm, renderPage } from '../account/pages-http.ts';
import type { ClientClassifier } from '../clients/client-classification.ts';
import type { Branding } from '../interactions/views/branding.ts';
import { messagePage } from '../interactions/views/message-page.ts';
import type { Accounts } from '../login/accounts.ts';
import { approvalPage } from './approval-page.ts';
import type { OperationApproval, OperationApprovals } from './operation-approvals.ts';

const ROUTE = /^\/account\/approvals\/(ap_[A-Za-z0-9_-]{24})$/;

export interface ApprovalPageDependencies {
  signIn: FirstPartySignIn;
  approvals: OperationApprovals;
  accounts: Accounts;
  classifier: ClientClassifier;
  clientName: (clientId: string) => Promise<string | undefined>;
  /** The approval's grant still stands (not revoked): else nothing of it may be decided. */
  grantStands: (grantId: string, sub: string) => Promise<boolean>;
  /** How long an approval, once given, waits for the agent's retry (operationApprovals.ttlSeconds). */
  ttlSeconds: number;
  tools: ReadonlyMap<
    string,
    { title?: string | undefined; description: string; amountArgument?: string | undefined }
  >;
  branding: Branding;
  devBanner: boolean;
  logger: Logger;
}

export function approvalPages(deps: ApprovalPageDependencies): Middleware {
  const { signIn, logger } = deps;
  const message = (ctx: Context, title: string, text: string, status: number) =>
    renderPage(
      ctx,
      messagePage({ title, message: text, branding: deps.branding, devBanner: deps.devBanner }),
      status,
    );
  const purpose = (id: string) => `approval:${id}`;
  const notYours = (ctx: Context) =>
    message(
      ctx,
      'No such approval',
      'There is no approval waiting for you here. If your agent asked for one, open the link it gave you while signed in as yourself.',
      404,
    );
  const decided = (ctx: Context, approval: OperationApproval, now: number) => {
    if ((approval.status === 'pending' || approval.status === 'approved') && approval.expiresAt <= now)
      return message(
        ctx,
        'This approval has expired',
        'Nothing was run. Ask your agent to try again: it will ask for a new approval.',
        410,
      );
    const words: Record<string, string> = {
      approved:
        'You approved this operation. Go back to your agent: it runs the operation when it tries again.',
      used: 'You approved this operation, and it has run.',
      denied: 'You denied this operation. Nothing was run.',
    };
    return message(ctx, 'Already decided', words[approval.status] ?? 'Nothing to decide here.', 409);
  };

  return async (ctx, next) => {
    const match = ROUTE.exec(ctx.path);
    if (!match) return next();
    const id = match[1]!;
    const session = await signIn.signedIn(ctx);
    const email = session ? await deps.accounts.emailOf(session.accountId) : undefined;
    if (!session || !email) {
      if (ctx.method !== 'GET' && ctx.method !== 'HEAD')
        return message(ctx, 'You are signed out', 'Open the approval link again to sign in.', 401);
      return signIn.startSignIn(ctx, 'account', ctx.path);
    }
    const approval = await deps.approvals.get(id);
    if (!approval || approval.sub !== session.accountId) {
      if (approval)
        logger.audit('approval.decided', {
          outcome: 'denied',
          approval_id: id,
          sub: session.accountId,
          reason: 'another user',
        });
      return notYours(ctx);
    }
    const now = Date.now();
    if (approval.status !== 'pending' || approval.expiresAt <= now) return decided(ctx, approval, now);
    if (!approval.grantId || !(await deps.grantStands(approval.grantId, approval.sub)))
      return message(
        ctx,
        'This agent no longer acts for you',
        'Its access was revoked, so there is nothing to approve: nothing will run.',
        410,
      );
    const tool = deps.tools.get(approval.tool) ?? { description: '' };

    if (ctx.method === 'GET' || ctx.method === 'HEAD') {
      const classification = await deps.classifier.classify(approval.clientId);
      return renderPage(
        ctx,
        approvalPage({
          action: ctx.path,
          csrfToken: signIn.csrfFor(session, purpose(id)),
          email,
          tool: {
            name: approval.tool,
            title: tool.title,
            description: tool.description,
            amountArgument: tool.amountArgument,
          },
          arguments: approval.arguments,
          agent: {
            name: (await deps.clientName(approval.clientId)) ?? approval.clientId,
            verified: classification.verified,
            kind: classification.kind,
          },
          secondsLeft: Math.max(1, Math.floor((approval.expiresAt - now) / 1000)),
          identicalCallRanAt: approval.grantId
            ? (
                await deps.approvals.lastUsed(
                  { ...approval, grantId: approval.grantId },
                  now - deps.ttlSeconds * 1000,
                )
              )?.usedAt
            : undefined,
          devBanner: deps.devBanner,
          branding: deps.branding,
        }),
      );
    }
    if (ctx.method !== 'POST') return message(ctx, 'Not allowed', 'This page cannot be used that way.', 405);
    const form = await readForm(ctx);
    if (!form || !signIn.checkForm(ctx, session, purpose(id), form))
      return message(ctx, 'This form has expired', 'Open the approval link again and decide there.', 403);
    const decision = form.get('decision');
    if (decision !== 'approve' && decision !== 'deny')
      return message(ctx, 'Nothing was decided', 'Choose Approve or Deny.', 400);
    const decidedAt = Date.now();
    // From the decision, the agent has the whole lifetime again for its retry (a denial stands as long).
    const result = await deps.approvals.decide(
      id,
      decision === 'approve' ? 'approved' : 'denied',
      decidedAt,
      decidedAt + deps.ttlSeconds * 1000,
    );
    if (!result) return decided(ctx, (await deps.approvals.get(id)) ?? approval, Date.now());
    logger.audit('approval.decided', {
      outcome: result.status === 'approved' ? 'success' : 'denied',
      approval_id: id,
      decision: result.status,
      sub: result.sub,
      client_id: result.clientId,
      tool: result.tool,
      ...(result.grantId ? { grant_id: result.grantId } : {}),
      ...(result.requestId ? { request_id: result.requestId } : {}),
    });
    return message(
      ctx,
      result.status === 'approved' ? 'Approved' : 'Denied',
      result.status === 'approved'
        ? 'Go back to your agent: it runs this operation, once, when it tries again.'
        : 'Nothing was run. Your agent is told when it tries again.',
      200,
    );
  };
}
