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
import { resolveSecret } from '../shared/config/secrets.ts';
import { type ResolvedToolConfig, resolveApiScopes } from '../shared/config/tool-api-scopes.ts';

export interface UpstreamApi {
  /** The key in `mcpServer.apis`, used in messages and audit lines. */
  name: string;
  /** Where the MCP server calls the API (directly, not through the gateway). */
  baseUrl: string;
  /** The API's audience: what the exchanged token is minted for. */
  audience: string;
}

export { type ResolvedToolConfig, resolveApiScopes } from '../shared/config/tool-api-scopes.ts';

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
