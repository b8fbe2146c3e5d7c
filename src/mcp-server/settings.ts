/**
 * The MCP server's view of the configuration, resolved once at start into one typed object: the
 * canonical resource URI and the URLs derived from it, the authorization server it trusts and where
 * to reach it, its own client credentials, the upstream APIs and the scopes it speaks.
 *
 * Cross-checks that span sections (a tool needing a scope the authorization server does not define
 * could never be granted) fail here, at start, with the key to fix.
 */
import { getOAuthProtectedResourceMetadataUrl } from '@modelcontextprotocol/server';
import { authorizationServerUrl } from '../shared/component.ts';
import { ConfigError, type LoadedConfig } from '../shared/config/load.ts';
import type { ToolConfig } from '../shared/config/schema.ts';
import { resolveSecret } from '../shared/config/secrets.ts';

export interface UpstreamApi {
  /** The key in `mcpServer.apis`, used in messages and audit lines. */
  name: string;
  /** Where the MCP server calls the API (directly, not through the gateway). */
  baseUrl: string;
  /** The API's audience: what the exchanged token is minted for. */
  audience: string;
}

/** A tool of the configuration with its API scopes resolved (resolveApiScopes). */
export type ResolvedToolConfig = ToolConfig & { apiScopes: string[] };

export interface McpServerSettings {
  /** Canonical URI of the MCP server as agents see it, through the gateway (RFC 8707, RFC 9728 `resource`). */
  resource: URL;
  /** The path-inserted RFC 9728 metadata URL, advertised in every challenge. */
  resourceMetadataUrl: string;
  resourceName: string;
  /** Issuer identifier the tokens must carry and the PRM advertises (`authorizationServer.issuer`). */
  issuer: string;
  /** Where the authorization server is reached (JWKS, token endpoint); the issuer unless overridden. */
  authorizationServerUrl: string;
  jwksUri: string;
  tokenEndpoint: string;
  client: { clientId: string; secret: string };
  /** Scopes asked for in the 401 challenge: what an agent should start with. */
  baseScopes: string[];
  /** Algorithms the gateway accepts for DPoP proofs (`gateway.dpop.algorithms`): PRM and challenges name them. */
  dpopAlgorithms: string[];
  /** Every client class must use DPoP (`authorizationServer.dpop`), so PRM says it is required. */
  dpopRequired: boolean;
  /** Every scope of the MCP resource (PRM `scopes_supported`). */
  scopesSupported: string[];
  /** Hostnames whose browser `Origin` may call /mcp; requests without `Origin` are not browsers. */
  allowedOriginHostnames: string[];
  apis: Map<string, UpstreamApi>;
  tools: ResolvedToolConfig[];
  upstreamTimeoutMs: number;
  exchangeCache: { maxEntries: number; refreshBeforeSeconds: number };
  jwksCacheSeconds: number;
  listen: { host: string; port: number };
}

const withoutTrailingSlash = (url: string) => url.replace(/\/$/, '');

/** `http://localhost` → `localhost`; a bare hostname stays as it is (the SDK's guard wants hostnames). */
export function originHostname(entry: string): string {
  try {
    return new URL(entry).hostname;
  } catch {
    return entry;
  }
}

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

export function resolveMcpServerSettings(loaded: LoadedConfig): McpServerSettings {
  const { config } = loaded;
  const mcp = config.mcpServer;
  const mcpResource = config.authorizationServer.resources.mcp;
  const resource = new URL(mcp.resource ?? mcpResource.uri);
  const asUrl = authorizationServerUrl(loaded, mcp.authorizationServerUrl);
  const scopesSupported = Object.keys(mcpResource.scopes);

  mcp.tools.forEach((tool, i) => {
    for (const scope of tool.scopes) {
      if (!scopesSupported.includes(scope)) {
        throw new ConfigError(
          `mcpServer.tools.${i}.scopes: "${scope}" is not one of authorizationServer.resources.mcp.scopes, so no agent could ever be granted it`,
        );
      }
    }
  });

  return {
    resource,
    resourceMetadataUrl: getOAuthProtectedResourceMetadataUrl(resource),
    resourceName: mcpResource.name,
    issuer: withoutTrailingSlash(new URL(config.authorizationServer.issuer).href),
    authorizationServerUrl: asUrl,
    jwksUri: `${asUrl}/jwks`,
    tokenEndpoint: `${asUrl}/token`,
    client: {
      clientId: mcp.client.clientId,
      // Never generated here: the authorization server owns the client and its secret.
      secret: resolveSecret(mcp.client.secret, loaded.dataDir),
    },
    baseScopes: mcpResource.baseScopes,
    dpopAlgorithms: [...config.gateway.dpop.algorithms],
    dpopRequired: Object.values(config.authorizationServer.dpop)
      .filter((v) => typeof v === 'string')
      .every((v) => v === 'required'),
    scopesSupported,
    allowedOriginHostnames: mcp.allowedOrigins.map(originHostname),
    apis: new Map(
      Object.entries(mcp.apis).map(([name, api]) => [
        name,
        { name, baseUrl: withoutTrailingSlash(api.baseUrl), audience: api.audience },
      ]),
    ),
    tools: resolveApiScopes(config),
    upstreamTimeoutMs: mcp.upstreamTimeoutMs,
    exchangeCache: mcp.exchangeCache,
    jwksCacheSeconds: mcp.jwksCacheSeconds,
    listen: { host: mcp.listen.host, port: mcp.listen.port ?? 8001 },
  };
}
