/**
 * Each tool's API scopes, resolved once from the whole configuration: what the MCP server's token
 * exchange for a call of the tool asks for, and what the authorization server grants at most for
 * it (tokens/token-exchange.ts). Shared, because both must agree and neither may import the other.
 */
import { ConfigError, type LoadedConfig } from './load.ts';
import type { ToolConfig } from './schema.ts';

/** A tool of the configuration with its API scopes resolved (resolveApiScopes). */
export type ResolvedToolConfig = ToolConfig & { apiScopes: string[] };

/**
 * Each tool's API scopes: what its token exchange asks for. By default what the tool's MCP scopes map
 * to at its API under the authorization server's exchange policy for this MCP server's client; given
 * explicitly, they must lie within that map, or every call would be refused (RFC 8693 `invalid_scope`).
 */
export function resolveApiScopes(config: LoadedConfig['config']): ResolvedToolConfig[] {
  const mcp = config.mcpServer;
  const policy = config.authorizationServer.tokenExchange.find((p) => p.clientId === mcp.client.clientId);
  return mcp.tools.map((tool, i) => {
    const audience = mcp.apis[tool.api]?.audience;
    const target = policy?.targets.find(
      (t) => audience && t.audience.replace(/\/$/, '') === audience.replace(/\/$/, ''),
    );
    const mapped = new Set(tool.scopes.flatMap((scope) => target?.scopeMap[scope] ?? []));
    const apiScopes = tool.apiScopes ?? [...mapped];
    const outside = apiScopes.filter((scope) => !mapped.has(scope));
    if (outside.length > 0 || apiScopes.length === 0) {
      throw new ConfigError(
        apiScopes.length === 0
          ? `mcpServer.tools.${i}: the scopes of ${tool.name} map to no scope of its API under authorizationServer.tokenExchange (${mcp.client.clientId}); add the mapping, or set apiScopes`
          : `mcpServer.tools.${i}.apiScopes: ${outside.join(', ')} is not what the tool's scopes map to at its API under authorizationServer.tokenExchange, so every exchange would be refused`,
      );
    }
    return { ...tool, apiScopes };
  });
}
