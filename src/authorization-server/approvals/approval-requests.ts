/**
 * `POST /approvals`: the MCP server asks for the user's approval of one tool call (a tool with
 * `approval: required`) and gets the page where the user decides, `<issuer>/account/approvals/<id>`.
 *
 * Only clients of role `mcp-server` may ask (HTTP Basic, their own credentials), and only for the
 * user behind a valid phantom token (the same verification as token exchange) whose tool policy
 * lets them use the tool. The digest the approval binds is computed here from the arguments, never
 * taken from the caller. Asking again for the same call answers with the approval already current
 * (pending, approved, or denied until it expires), so a retried call neither multiplies requests
 * nor forgets a denial.
 */
import { randomBytes } from 'node:crypto';
import type { Context, Middleware } from 'koa';
import type { Logger } from '../../shared/logging.ts';
import { argumentsDigest } from '../../shared/operation-approval.ts';
import { permittedToolsOf } from '../../shared/tool-claims.ts';
import { internalCaller } from '../http/internal-client-auth.ts';
import { readBoundedJson } from '../http/json-body.ts';
import type { Subject } from '../tokens/token-exchange.ts';
import type { OperationApproval, OperationApprovals } from './operation-approvals.ts';

export const APPROVAL_REQUESTS_PATH = '/approvals';
/** Tool arguments are small; an approval shows them to a person. */
const MAX_BODY_BYTES = 16 * 1024;
const REQUEST_ID = /^[\x21-\x7e]{1,200}$/;

export interface ApprovalRequestDependencies {
  issuer: string;
  /** The MCP servers' clients: client id → secret. */
  mcpServers: ReadonlyMap<string, string>;
  /** Tools whose calls need approval (`mcpServer.tools[].approval: required`). */
  approvalTools: ReadonlySet<string>;
  approvals: OperationApprovals;
  ttlSeconds: number;
  /** Verifies the phantom token (tokens/token-exchange.ts verifyPhantomSubject); throws when invalid. */
  verifySubject: (token: string) => Promise<Subject>;
  /** The subject's grant is still there (not revoked), and the user still approved. */
  stillAllowed: (subject: Subject) => Promise<boolean>;
  logger: Logger;
}

export const approvalUrl = (issuer: string, id: string) => `${issuer}/account/approvals/${id}`;

/** No NUL and no lone surrogate anywhere in the value (strings and keys alike). */
function storable(value: unknown): boolean {
  if (typeof value === 'string') return value.isWellFormed() && !value.includes('\u0000');
  if (Array.isArray(value)) return value.every(storable);
  if (value !== null && typeof value === 'object')
    return Object.entries(value).every(([key, inner]) => storable(key) && storable(inner));
  return true;
}

export function approvalRequests(deps: ApprovalRequestDependencies): Middleware {
  const { logger } = deps;
  const answer = (ctx: Context, status: number, body: Record<string, unknown>) => {
    ctx.status = status;
    ctx.set('cache-control', 'no-store');
    ctx.body = body;
  };
  const refuse = (ctx: Context, status: number, error: string, description: string) =>
    answer(ctx, status, { error, error_description: description });
  const view = (approval: OperationApproval, sameRanAt?: number) => ({
    approval_id: approval.id,
    status: approval.status,
    approval_url: approvalUrl(deps.issuer, approval.id),
    expires_at: Math.floor(approval.expiresAt / 1000),
    // An identical call ran a moment ago (a retry that raced the one that ran, say): said, so
    // that nobody approves a second one by mistake.
    ...(sameRanAt ? { identical_call_ran_at: Math.floor(sameRanAt / 1000) } : {}),
  });

  return async (ctx, next) => {
    if (ctx.path !== APPROVAL_REQUESTS_PATH) return next();
    if (ctx.method !== 'POST') {
      ctx.set('allow', 'POST');
      return refuse(ctx, 405, 'invalid_request', 'POST approval requests here');
    }
    const { clientId, named } = internalCaller(ctx.get('authorization'), deps.mcpServers);
    if (!clientId) {
      logger.audit('approval.requested', {
        outcome: 'denied',
        client_id: named,
        ip: ctx.ip,
        reason: 'not the MCP server',
      });
      ctx.set('www-authenticate', 'Basic realm="approvals"');
      return refuse(ctx, 401, 'invalid_client', 'only the MCP server asks for approvals');
    }
    if (!ctx.is('application/json'))
      return refuse(ctx, 415, 'invalid_request', 'send {"subject_token", "tool", "arguments"} as JSON');
    const body = (await readBoundedJson(ctx, MAX_BODY_BYTES)) as Record<string, unknown> | undefined;
    const { subject_token: token, tool, arguments: args, request_id: requestId } = body ?? {};
    if (
      typeof token !== 'string' ||
      typeof tool !== 'string' ||
      typeof args !== 'object' ||
      args === null ||
      Array.isArray(args) ||
      (requestId !== undefined && (typeof requestId !== 'string' || !REQUEST_ID.test(requestId)))
    )
      return refuse(
        ctx,
        400,
        'invalid_request',
        `expected {"subject_token", "tool", "arguments": {...}} within ${MAX_BODY_BYTES} bytes`,
      );
    if (!deps.approvalTools.has(tool))
      return refuse(ctx, 400, 'invalid_request', `the ${tool} tool does not need approval`);
    let subject: Subject;
    try {
      subject = await deps.verifySubject(token);
    } catch {
      return refuse(
        ctx,
        400,
        'invalid_grant',
        'subject_token is invalid, expired or not meant for the MCP server',
      );
    }
    const base = {
      actor: clientId,
      sub: subject.sub,
      client_id: subject.clientId,
      tool,
      ...(requestId ? { request_id: requestId } : {}),
    };
    // Approvals are for people: a workload (client credentials) has nobody to ask.
    if (subject.extra.client_type === 'workload' || !subject.grantId) {
      logger.audit('approval.requested', { outcome: 'denied', ...base, reason: 'no user to ask' });
      return refuse(
        ctx,
        400,
        'invalid_grant',
        'only a user can approve a call: this token has no user behind it',
      );
    }
    if (!permittedToolsOf(subject.extra)?.has(tool) || !(await deps.stillAllowed(subject))) {
      logger.audit('approval.requested', { outcome: 'denied', ...base, reason: 'tool or grant not allowed' });
      return refuse(ctx, 400, 'invalid_grant', `the subject may not use the ${tool} tool`);
    }
    const now = Date.now();
    // PostgreSQL's jsonb cannot hold NUL or a lone surrogate: such arguments are refused here, as
    // bad input, not met with a 500 from the store.
    if (!storable(args))
      return refuse(ctx, 400, 'invalid_request', 'the arguments hold characters that cannot be stored');
    const operation = {
      sub: subject.sub,
      clientId: subject.clientId,
      tool,
      argumentsDigest: argumentsDigest(args),
      grantId: subject.grantId,
    };
    const current = await deps.approvals.findCurrent(operation, now);
    const ran = (await deps.approvals.lastUsed(operation, now - deps.ttlSeconds * 1000))?.usedAt;
    if (current) return answer(ctx, 200, view(current, ran));
    const approval = await deps.approvals.create({
      id: `ap_${randomBytes(18).toString('base64url')}`,
      ...operation,
      grantId: subject.grantId,
      arguments: args as Record<string, unknown>,
      ...(typeof requestId === 'string' ? { requestId } : {}),
      createdAt: now,
      expiresAt: now + deps.ttlSeconds * 1000,
    });
    logger.audit('approval.requested', {
      outcome: 'success',
      ...base,
      grant_id: subject.grantId,
      approval_id: approval.id,
    });
    answer(ctx, approval.createdAt === now ? 201 : 200, view(approval, ran));
  };
}
