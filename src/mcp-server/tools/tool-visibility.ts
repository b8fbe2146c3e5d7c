/**
 * Which tools a caller sees in `tools/list`, and may call: the tools the authorization server's tool
 * policy lets them use (their token's `mcp_tools`, shared/tool-claims.ts), whether their token has
 * the scopes yet or not. A tool the token's scopes do not cover yet is listed, marked in its `_meta`
 * with the scopes a step-up would add; a tool outside the policy is not registered at all, so a
 * call to it gets the same JSON-RPC error as a call to a tool that does not exist.
 *
 * The marker: MCP SEP-1881 ("Scope-Filtered Tool Discovery", draft of 2025-11-23) lets a server list
 * only the tools the token's scopes authorize, and defines no marker for the rest; SEP-1880 (draft)
 * describes a tool's scopes as `{ scopes: [...] }`. Neither is in the schema yet, so the tools a
 * step-up opens keep that shape under a key of our own, `gatehouse/step-up`, which clients that do
 * not know it ignore.
 */
import type { AuthInfo } from '@modelcontextprotocol/server';
import { principalOf } from '../token-validation.ts';
import type { ToolDefinition } from './catalogue.ts';

export const STEP_UP_META_KEY = 'gatehouse/step-up';

export interface VisibleTool {
  tool: ToolDefinition;
  /** Scopes the tool needs that the token lacks: empty when it can be called now. */
  missingScopes: string[];
}

export function visibleTools(catalogue: ToolDefinition[], authInfo: AuthInfo | undefined): VisibleTool[] {
  // No authInfo never reaches a tool (the HTTP layer answers 401 first): nothing to show.
  if (!authInfo) return [];
  const principal = principalOf(authInfo);
  // No principal (never, past authentication): no tools. A workload sees every tool its scopes reach.
  const may = (tool: ToolDefinition) =>
    principal !== undefined && (principal.workload || principal.permittedTools.has(tool.name));
  const held = new Set(authInfo.scopes);
  return catalogue
    .filter(may)
    .map((tool) => ({ tool, missingScopes: tool.scopes.filter((scope) => !held.has(scope)) }));
}

/** The tool's `_meta` in `tools/list`: the step-up marker when the token lacks some of its scopes. */
export function toolMeta(visible: VisibleTool): Record<string, unknown> | undefined {
  return visible.missingScopes.length > 0
    ? { [STEP_UP_META_KEY]: { scopes: visible.missingScopes } }
    : undefined;
}
