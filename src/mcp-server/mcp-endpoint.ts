/**
 * The MCP protocol side of /mcp, all of it the SDK's: `createMcpHandler` serves the stateless
 * 2026-07-28 protocol (`server/discover`, per-request `_meta` envelope) and, through its default
 * `legacy: 'stateless'` fallback, 2025-11-25 and 2025-06-18 clients with the `initialize` handshake;
 * malformed JSON-RPC gets JSON-RPC errors from it. A fresh `McpServer` is built per request from the
 * one tool catalogue and the caller's token, so both eras see the same tools: those the caller may
 * use (tools/tool-visibility.ts).
 *
 * Each tool's `scopeChallenge` makes the SDK answer a `tools/call` the token's scopes do not cover
 * with HTTP 403 `insufficient_scope` before the handler runs: before any token exchange or API call.
 */
import { toNodeHandler } from '@modelcontextprotocol/node';
import {
  type AuthInfo,
  CLIENT_CAPABILITIES_META_KEY,
  createMcpHandler,
  inputResponse,
  McpServer,
  type McpServerFactory,
  type ScopeChallengeHandler,
} from '@modelcontextprotocol/server';
import type { Logger } from '../shared/logging.ts';
import { inToolCallSpan } from '../shared/tracing.ts';
import { auditToolCall } from './audit.ts';
import { type ProtocolEra, scopeChallenge } from './challenges.ts';
import { principalOf, requestIdOfCall } from './token-validation.ts';
import type { ToolDefinition } from './tools/catalogue.ts';
import { type ApprovalAsking, runToolCall, type ToolCallDependencies } from './tools/tool-call.ts';
import { toolMeta, visibleTools } from './tools/tool-visibility.ts';

/** 2026-07-28 over `server/discover`; the 2025 revisions over `initialize`, newest first. */
export const PROTOCOL_VERSIONS = ['2026-07-28', '2025-11-25', '2025-06-18'];
/** Tool arguments are small; anything near this is not a legitimate call. */
export const MAX_REQUEST_BODY_BYTES = 1024 * 1024;

const SERVER_INFO = { name: 'gatehouse-mcp-server', title: 'Gatehouse', version: '0.1.0' };

function toolScopeChallenge(tool: ToolDefinition, era: ProtocolEra, logger: Logger): ScopeChallengeHandler {
  return ({ authInfo }) => {
    // No authInfo never reaches here (the HTTP layer answers 401 first); the SDK leaves it to the auth gate.
    if (!authInfo) return undefined;
    const challenge = scopeChallenge(`the ${tool.name} tool`, tool.scopes, authInfo.scopes, era);
    if (challenge) {
      const principal = principalOf(authInfo);
      auditToolCall(logger, {
        outcome: 'denied',
        request_id: requestIdOfCall(authInfo),
        sub: principal?.sub,
        client_id: principal?.clientId ?? authInfo.clientId,
        tool: tool.name,
        api: tool.api.name,
        audience: tool.api.audience,
        grant_id: principal?.grantId,
        duration_ms: 0,
        reason: 'insufficient_scope',
      });
    }
    return challenge;
  };
}

/**
 * Whether this request's client can be sent to a URL for the approval (tools/tool-call.ts): only
 * on 2026-07-28, where the envelope of each request declares the client's capabilities; a 2025-era
 * stateless request does not say, and gets the link in the tool result.
 */
function approvalAsking(
  era: ProtocolEra,
  request: {
    envelope?: Record<string, unknown> | undefined;
    inputResponses?: Record<string, unknown> | undefined;
  },
): ApprovalAsking {
  const capabilities = request.envelope?.[CLIENT_CAPABILITIES_META_KEY] as
    | { elicitation?: { url?: unknown } }
    | undefined;
  const answer = request.inputResponses?.approval;
  const view = answer === undefined ? undefined : inputResponse(request.inputResponses, 'approval');
  return {
    urlElicitation: era === 'modern' && capabilities?.elicitation?.url !== undefined,
    afterElicitation: answer !== undefined,
    // The person's answer to the elicitation: only `accept` lets the call go on.
    accepted: view?.kind === 'elicit' && view.action === 'accept',
  };
}

/** The tool call span's attributes: the client and the request id, never the subject or a token. */
function toolSpanAttributes(authInfo: AuthInfo | undefined): Record<string, string | undefined> {
  return {
    'gatehouse.client_id': principalOf(authInfo)?.clientId ?? authInfo?.clientId,
    'gatehouse.request_id': requestIdOfCall(authInfo),
  };
}

/**
 * The list follows the token (tools/tool-visibility.ts), so it may be kept only by the client that
 * asked (SEP-2549 `cacheScope: private`), and not at all (`ttlMs: 0`): a step-up or a policy change
 * gives the next token another list, and a stateless server cannot announce it.
 */
const LIST_CACHE_HINT = { ttlMs: 0, cacheScope: 'private' } as const;

/**
 * The per-request server: the tools this caller may use (tools/tool-visibility.ts), each with its
 * schema, annotations and scope check, and the step-up marker where the token lacks its scopes.
 */
export function createServerFactory(
  catalogue: ToolDefinition[],
  deps: ToolCallDependencies,
): McpServerFactory {
  return ({ era, authInfo }) => {
    const server = new McpServer(SERVER_INFO, {
      capabilities: { tools: {} },
      supportedProtocolVersions: PROTOCOL_VERSIONS,
      cacheHints: { 'tools/list': LIST_CACHE_HINT },
    });
    for (const visible of visibleTools(catalogue, authInfo)) {
      const { tool } = visible;
      const _meta = toolMeta(visible);
      server.registerTool(
        tool.name,
        {
          ...(tool.title ? { title: tool.title } : {}),
          description: tool.description,
          inputSchema: tool.inputSchema,
          annotations: tool.annotations,
          ...(_meta ? { _meta } : {}),
          scopeChallenge: toolScopeChallenge(tool, era, deps.logger),
        },
        // SEP-414: the caller's trace context may come in `_meta` (shared/tracing.ts decides its use).
        (args, ctx) =>
          inToolCallSpan(tool.name, ctx.mcpReq._meta, toolSpanAttributes(ctx.http?.authInfo), () =>
            runToolCall(
              tool,
              args,
              ctx.http?.authInfo,
              deps,
              ctx.mcpReq.signal,
              approvalAsking(era, ctx.mcpReq),
            ),
          ),
      );
    }
    return server;
  };
}

/** The Node request handler for /mcp; the caller authenticates first and sets `req.auth`. */
export function createMcpEndpoint(catalogue: ToolDefinition[], deps: ToolCallDependencies) {
  // The SDK reports rejected requests here too (bad JSON-RPC, wrong headers): the client got its answer.
  const onerror = (error: Error) => deps.logger.debug('mcp request not served', { reason: error.message });
  const handler = createMcpHandler(createServerFactory(catalogue, deps), {
    onerror,
    maxRequestBodySize: MAX_REQUEST_BODY_BYTES,
  });
  return {
    handle: toNodeHandler(handler, { onerror, maxRequestBodySize: MAX_REQUEST_BODY_BYTES }),
    close: () => handler.close(),
  };
}
