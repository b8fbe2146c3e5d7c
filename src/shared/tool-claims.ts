/**
 * The claims by which the authorization server tells the MCP server and the APIs about tools.
 *
 * The authorization server decides who may ever use which tool (its tool policy, on the user's
 * claims); the MCP server applies the decision without knowing the rules, so an administrator's
 * change in the console needs no change at the MCP server:
 *
 * - `mcp_tools` (user tokens for the MCP server, and so their phantom tokens): the names of the
 *   tools this user may use. A user token without it may use none (fail closed). Workload tokens
 *   (client credentials) carry none: a workload's registered scopes are its policy.
 * - `mcp_tool` (tokens minted by token exchange): the tool whose call the token is for, so the API
 *   can log which tool call it serves and the cache never hands one tool's token to another.
 */
export const PERMITTED_TOOLS_CLAIM = 'mcp_tools';
export const TOOL_CLAIM = 'mcp_tool';

/** The names in a token's `mcp_tools`, or undefined when the claim is absent or malformed. */
export function permittedToolsOf(payload: Record<string, unknown>): Set<string> | undefined {
  const value = payload[PERMITTED_TOOLS_CLAIM];
  if (!Array.isArray(value) || !value.every((name) => typeof name === 'string')) return undefined;
  return new Set(value as string[]);
}
