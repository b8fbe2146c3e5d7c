/**
 * The resource servers the authorization server issues tokens for (RFC 8707 resource indicators).
 *
 * Only the MCP server can be named as a `resource` at the authorization and token endpoints: agents
 * hold opaque tokens for it and nothing else. Upstream API audiences are reachable only through token
 * exchange, so an agent can never obtain a JWT meant for an API (design invariant 1).
 */
import type { AuthorizationServerConfig, UpstreamApiConfig } from '../shared/config/schema.ts';

/** RFC 8707 resource URIs compare ignoring one trailing slash (interoperability: clients differ). */
export function normalizeResourceUri(uri: string): string {
  return uri.endsWith('/') ? uri.slice(0, -1) : uri;
}

export interface McpResource {
  uri: string;
  name: string;
  scopes: Map<string, string>;
  baseScopes: string[];
  accessTokenTtlSeconds: number;
}

export interface ResourceRegistry {
  mcp: McpResource;
  /** Finds the MCP server by any spelling of its URI (one trailing slash ignored). */
  isMcpResource(uri: string): boolean;
  /** Finds an upstream API by its audience, for token exchange. */
  findApi(audience: string): UpstreamApiConfig | undefined;
  /** Keeps the scopes the MCP server defines, in request order, dropping the rest. */
  keepMcpScopes(scopes: Iterable<string>): string[];
}

export function createResourceRegistry(config: AuthorizationServerConfig): ResourceRegistry {
  const mcpUri = normalizeResourceUri(config.resources.mcp.uri);
  const apis = new Map(config.resources.apis.map((api) => [normalizeResourceUri(api.audience), api]));
  const mcp: McpResource = {
    uri: config.resources.mcp.uri,
    name: config.resources.mcp.name,
    scopes: new Map(Object.entries(config.resources.mcp.scopes)),
    baseScopes: config.resources.mcp.baseScopes,
    accessTokenTtlSeconds: config.resources.mcp.accessTokenTtlSeconds,
  };
  return {
    mcp,
    isMcpResource: (uri) => normalizeResourceUri(uri) === mcpUri,
    findApi: (audience) => apis.get(normalizeResourceUri(audience)),
    keepMcpScopes: (scopes) => [...new Set(scopes)].filter((scope) => mcp.scopes.has(scope)),
  };
}
