/**
 * Runs one tool call after the SDK has authenticated the caller, checked the tool's scopes (the 403
 * challenge) and validated the arguments: exchange the caller's token for the API's audience, call
 * the API with the exchanged token, audit, and answer with a tool result whatever happened.
 */
import type { AuthInfo, CallToolResult } from '@modelcontextprotocol/server';
import type { Logger } from '../../shared/logging.ts';
import { auditToolCall } from '../audit.ts';
import { type TokenExchangeClient, TokenExchangeError } from '../token-exchange-client.ts';
import { principalOf, requestIdOfCall } from '../token-validation.ts';
import type { ToolArguments, ToolDefinition } from './catalogue.ts';
import { buildUpstreamRequest, callUpstream, errorResult, UpstreamRequestError } from './upstream-call.ts';

export interface ToolCallDependencies {
  tokenExchange: Pick<TokenExchangeClient, 'exchange'>;
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

export async function runToolCall(
  tool: ToolDefinition,
  args: ToolArguments,
  authInfo: AuthInfo | undefined,
  deps: ToolCallDependencies,
  signal?: AbortSignal,
): Promise<CallToolResult> {
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
    outcome: 'success' | 'failure',
    result: CallToolResult,
    extra: { upstream_status?: number | undefined; reason?: string } = {},
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

  try {
    const request = buildUpstreamRequest(tool, tool.api.baseUrl, args);
    // Least privilege per call: exactly the API scopes this tool needs (RFC 8693 §2.1 `scope`), not
    // everything the caller's MCP scopes map to; the token names the tool.
    const { accessToken } = await deps.tokenExchange.exchange({
      subjectToken: authInfo.token,
      audience: tool.api.audience,
      scope: tool.apiScopes.join(' '),
      tool: tool.name,
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
      ...(outcome.failure ? { reason: `upstream_${outcome.failure}` } : {}),
    });
  } catch (error) {
    if (error instanceof UpstreamRequestError) {
      return finish('failure', errorResult(`Invalid arguments for ${tool.name}: ${error.message}.`), {
        reason: 'invalid_arguments',
      });
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
