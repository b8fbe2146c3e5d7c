/**
 * Runs one tool call after the SDK has authenticated the caller, checked the tool's scopes (the 403
 * challenge) and validated the arguments: exchange the caller's token for the API's audience, call
 * the API with the exchanged token, audit, and answer with a tool result whatever happened.
 */
import {
  type AuthInfo,
  type CallToolResult,
  type InputRequiredResult,
  inputRequired,
} from '@modelcontextprotocol/server';
import type { Logger } from '../../shared/logging.ts';
import { argumentsDigest, TOOL_CALL_DETAILS_TYPE } from '../../shared/operation-approval.ts';
import { type ApprovalClient, ApprovalRequestError } from '../approval-client.ts';
import { auditToolCall } from '../audit.ts';
import { type TokenExchangeClient, TokenExchangeError } from '../token-exchange-client.ts';
import { principalOf, requestIdOfCall } from '../token-validation.ts';
import type { ToolArguments, ToolDefinition } from './catalogue.ts';
import { buildUpstreamRequest, callUpstream, errorResult, UpstreamRequestError } from './upstream-call.ts';

export interface ToolCallDependencies {
  tokenExchange: Pick<TokenExchangeClient, 'exchange'>;
  /** Asks the user's approval of a call of a tool with `approval: required`. */
  approvals?: ApprovalClient;
  logger: Logger;
  upstreamTimeoutMs: number;
  fetch?: typeof fetch;
}

/** What went wrong obtaining a token for the API, and what to do about it. */
export function describeExchangeFailure(apiName: string, error: TokenExchangeError): string {
  switch (error.code) {
    case 'invalid_grant':
      return `Your authorization can no longer be used for the ${apiName} API (it has expired or been revoked). Sign in again and retry.`;
    case 'invalid_scope':
      return `The signed-in user has not granted the permission the ${apiName} API needs for this (invalid_scope). Re-authorize with the scopes this tool needs and retry.`;
    case 'timeout':
    case 'unreachable':
    case 'server_error':
    case 'temporarily_unavailable':
      return `The authorization server could not provide a token for the ${apiName} API right now. Try again later.`;
    default:
      return `The MCP server could not obtain a token for the ${apiName} API (${error.code}). This is a server configuration problem; tell the administrator.`;
  }
}

/**
 * No approval of this call was waiting: ask for one (or learn the decision already made) and tell
 * the agent where the user decides. Nothing was exchanged or sent to the API.
 */
async function approvalNeeded(
  tool: ToolDefinition,
  args: ToolArguments,
  authInfo: AuthInfo,
  requestId: string | undefined,
  approvals: ApprovalClient,
): Promise<[CallToolResult, { reason: string; approval_id?: string }]> {
  try {
    const approval = await approvals.request({
      subjectToken: authInfo.token,
      tool: tool.name,
      arguments: args,
      requestId,
    });
    if (approval.status === 'denied')
      return [
        errorResult(
          `The user denied this ${tool.name} call. It was not run. Do not retry it unless the user asks again.`,
        ),
        { reason: 'approval_denied', approval_id: approval.approvalId },
      ];
    const minutes = Math.max(1, Math.round((approval.expiresAt - Date.now() / 1000) / 60));
    return [
      {
        content: [
          {
            type: 'text',
            text:
              `This ${tool.name} call needs the user's approval before it runs, and has not run. ` +
              `Ask the user to open ${approval.url} , check the values and approve; then call ${tool.name} ` +
              `again with exactly the same arguments. The approval is for this one call and lasts ${minutes} minute${minutes === 1 ? '' : 's'}.` +
              (approval.identicalCallRanAt
                ? ` Note: an identical ${tool.name} call already ran at ${new Date(approval.identicalCallRanAt * 1000).toISOString()}; approving again would run it a second time.`
                : ''),
          },
        ],
        isError: true,
        _meta: {
          [APPROVAL_META_KEY]: {
            url: approval.url,
            approvalId: approval.approvalId,
            status: approval.status,
          },
        },
      },
      { reason: 'approval_required', approval_id: approval.approvalId },
    ];
  } catch (error) {
    const code = error instanceof ApprovalRequestError ? error.code : 'server_error';
    if (code === 'invalid_grant')
      return [
        errorResult(
          `The ${tool.name} tool runs only with a user's approval of each call, and no user can be asked for this one. It was not run.`,
        ),
        { reason: 'approval_request:invalid_grant' },
      ];
    return [
      errorResult(
        `The ${tool.name} call needs the user's approval, which could not be asked for right now (${code}). Try again later.`,
      ),
      { reason: `approval_request:${code}` },
    ];
  }
}

/** Where a tool result that needs approval names the approval page (beside the text for the model). */
export const APPROVAL_META_KEY = 'gatehouse/approval';

/**
 * How this call may ask the person for an approval: with URL-mode elicitation when the client said
 * it can open URLs for the user (a 2026-07-28 request whose envelope declares `elicitation.url`),
 * unless this very call is already the retry after one; else the tool result carries the link.
 */
export interface ApprovalAsking {
  urlElicitation: boolean;
  /** The retry after the user was sent to the approval page (the request carries its response). */
  afterElicitation: boolean;
  /** That response was `accept`: anything else (decline, cancel) stops the call here. */
  accepted?: boolean;
}

export async function runToolCall(
  tool: ToolDefinition,
  args: ToolArguments,
  authInfo: AuthInfo | undefined,
  deps: ToolCallDependencies,
  signal?: AbortSignal,
  asking: ApprovalAsking = { urlElicitation: false, afterElicitation: false },
): Promise<CallToolResult | InputRequiredResult> {
  const started = performance.now();
  const principal = principalOf(authInfo);
  const requestId = requestIdOfCall(authInfo);
  const record = {
    request_id: requestId,
    sub: principal?.sub,
    client_id: principal?.clientId ?? authInfo?.clientId,
    tool: tool.name,
    api: tool.api.name,
    audience: tool.api.audience,
    grant_id: principal?.grantId,
  };
  const finish = (
    outcome: 'success' | 'failure' | 'denied',
    result: CallToolResult,
    extra: { upstream_status?: number | undefined; reason?: string; approval_id?: string } = {},
  ) => {
    auditToolCall(deps.logger, {
      outcome,
      ...record,
      ...extra,
      duration_ms: Math.round(performance.now() - started),
    });
    return result;
  };

  // The HTTP layer refuses unauthenticated requests; this is a guard, not a path.
  if (!authInfo)
    return finish('failure', errorResult('This call is not authenticated.'), { reason: 'no_token' });

  // The person said no (or closed the prompt) when the client sent them to approve: not run, and
  // the approval, if they gave one on the page anyway, stays for a call they do want.
  if (tool.approval === 'required' && asking.afterElicitation && asking.accepted !== true)
    return finish(
      'denied',
      errorResult(`The user did not confirm approving this ${tool.name} call. It was not run.`),
      {
        reason: 'approval_declined',
      },
    );
  try {
    const request = buildUpstreamRequest(tool, tool.api.baseUrl, args);
    // A tool whose calls need approval: the exchange names this exact call (RFC 9396), and the
    // authorization server mints the token only against the user's approval of it, once.
    const authorizationDetails =
      tool.approval === 'required'
        ? JSON.stringify([
            { type: TOOL_CALL_DETAILS_TYPE, tool: tool.name, arguments_digest: argumentsDigest(args) },
          ])
        : undefined;
    // Least privilege per call: exactly the API scopes this tool needs (RFC 8693 §2.1 `scope`), not
    // everything the caller's MCP scopes map to; the token names the tool.
    const { accessToken, approvalId } = await deps.tokenExchange.exchange({
      subjectToken: authInfo.token,
      audience: tool.api.audience,
      scope: tool.apiScopes.join(' '),
      tool: tool.name,
      ...(authorizationDetails ? { authorizationDetails } : {}),
      ...(requestId ? { requestId } : {}),
      ...(principal && authInfo.expiresAt
        ? {
            subject: {
              grantId: principal.grantId,
              ...(principal.tokenHash ? { tokenHash: principal.tokenHash } : {}),
              sub: principal.sub,
              clientId: principal.clientId,
              expiresAt: authInfo.expiresAt,
              scopes: authInfo.scopes,
            },
          }
        : {}),
    });
    const outcome = await callUpstream({
      apiName: tool.api.name,
      request,
      accessToken,
      timeoutMs: deps.upstreamTimeoutMs,
      requestId,
      ...(signal ? { signal } : {}),
      ...(deps.fetch ? { fetch: deps.fetch } : {}),
    });
    return finish(outcome.failure ? 'failure' : 'success', outcome.result, {
      upstream_status: outcome.status,
      ...(approvalId ? { approval_id: approvalId } : {}),
      ...(outcome.failure ? { reason: `upstream_${outcome.failure}` } : {}),
    });
  } catch (error) {
    if (error instanceof UpstreamRequestError) {
      return finish('failure', errorResult(`Invalid arguments for ${tool.name}: ${error.message}.`), {
        reason: 'invalid_arguments',
      });
    }
    if (
      error instanceof TokenExchangeError &&
      error.code === 'invalid_authorization_details' &&
      tool.approval === 'required' &&
      deps.approvals
    ) {
      const [result, extra] = await approvalNeeded(tool, args, authInfo, requestId, deps.approvals);
      const url =
        (result._meta?.[APPROVAL_META_KEY] as { url?: string; approvalId?: string } | undefined) ?? {};
      if (url.url && url.approvalId && asking.urlElicitation && !asking.afterElicitation) {
        // MCP URL-mode elicitation (2025-11-25 and later; on 2026-07-28 an input_required result):
        // the client sends the user to the page, then retries this call with the same arguments.
        auditToolCall(deps.logger, {
          outcome: 'denied',
          ...record,
          ...extra,
          reason: 'approval_elicited',
          duration_ms: 0,
        });
        return inputRequired({
          inputRequests: {
            approval: inputRequired.elicitUrl({
              message: `Approve this ${tool.name} call (tool and arguments exactly as sent) at the sign-in service; it runs once you approve.`,
              url: url.url,
            }),
          },
        });
      }
      return finish('denied', result, extra);
    }
    if (error instanceof TokenExchangeError) {
      deps.logger.warn('token exchange failed', {
        request_id: requestId,
        api: tool.api.name,
        error: error.code,
        status: error.status,
      });
      return finish('failure', errorResult(describeExchangeFailure(tool.api.name, error)), {
        reason: `token_exchange:${error.code}`,
      });
    }
    // A bug, not the caller's problem: the message goes to the log, a plain sentence to the agent.
    deps.logger.error('tool call failed', {
      request_id: requestId,
      tool: tool.name,
      error: (error as Error).message,
    });
    return finish(
      'failure',
      errorResult(`The ${tool.name} tool failed inside the MCP server. Try again later.`),
      {
        reason: 'internal_error',
      },
    );
  }
}
