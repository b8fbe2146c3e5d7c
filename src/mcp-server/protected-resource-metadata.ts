/**
 * OAuth 2.0 Protected Resource Metadata (RFC 9728): how an agent that met the 401 learns which
 * authorization server to use and which scopes exist.
 *
 * Served at the path-inserted URL (`/.well-known/oauth-protected-resource/mcp`, RFC 9728 §3.1),
 * which every challenge points to, and at the root variant for clients that probe only that. Every
 * URL in it is built from the canonical resource URI (public, through the gateway), never from the
 * address this process listens on. Public and read-only, so any origin may read it (CORS `*`).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { buildOAuthProtectedResourceMetadata, type OAuthMetadata } from '@modelcontextprotocol/server';
import { sendJson } from '../shared/http.ts';
import type { McpServerSettings } from './settings.ts';

export const ROOT_METADATA_PATH = '/.well-known/oauth-protected-resource';

export interface ProtectedResourceMetadata {
  resource: string;
  authorization_servers: string[];
  scopes_supported: string[];
  resource_name: string;
  /** RFC 6750 §2.1 only: tokens in the query or a form body are refused. */
  bearer_methods_supported: ['header'];
  /** RFC 9728 §2 / RFC 9449 §7: tokens may be DPoP-bound, with proofs signed by these. */
  dpop_signing_alg_values_supported: string[];
  dpop_bound_access_tokens_required: boolean;
}

/** Builds the document once; the SDK also checks the issuer (https outside localhost). */
export function buildProtectedResourceMetadata(settings: McpServerSettings): ProtectedResourceMetadata {
  let base: ReturnType<typeof buildOAuthProtectedResourceMetadata>;
  try {
    base = buildOAuthProtectedResourceMetadata({
      // Only `issuer` is read: the document names the authorization server, it does not copy its metadata.
      oauthMetadata: { issuer: settings.issuer } as OAuthMetadata,
      resourceServerUrl: settings.resource,
      scopesSupported: settings.scopesSupported,
      resourceName: settings.resourceName,
    });
  } catch (error) {
    throw new Error(`authorizationServer.issuer ${settings.issuer}: ${(error as Error).message}`);
  }
  return {
    resource: base.resource,
    authorization_servers: base.authorization_servers ?? [settings.issuer],
    scopes_supported: settings.scopesSupported,
    resource_name: settings.resourceName,
    bearer_methods_supported: ['header'],
    dpop_signing_alg_values_supported: settings.dpopAlgorithms,
    dpop_bound_access_tokens_required: settings.dpopRequired,
  };
}

/** The paths this document is served at: the path-inserted one and the root one. */
export function metadataPaths(settings: McpServerSettings): Set<string> {
  return new Set([new URL(settings.resourceMetadataUrl).pathname, ROOT_METADATA_PATH]);
}

const CORS = { 'access-control-allow-origin': '*' };
const ALLOWED_METHODS = 'GET, HEAD, OPTIONS';

/** Answers a request for the metadata: GET/HEAD the document, OPTIONS a preflight, anything else 405. */
export function serveProtectedResourceMetadata(
  req: IncomingMessage,
  res: ServerResponse,
  document: ProtectedResourceMetadata,
): void {
  if (req.method === 'OPTIONS') {
    res.writeHead(204, {
      ...CORS,
      'access-control-allow-methods': ALLOWED_METHODS,
      'access-control-allow-headers': req.headers['access-control-request-headers'] ?? 'mcp-protocol-version',
      'access-control-max-age': '600',
    });
    res.end();
    return;
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    sendJson(
      res,
      405,
      { error: 'method_not_allowed', error_description: `${req.method} is not allowed here` },
      { ...CORS, allow: ALLOWED_METHODS },
    );
    return;
  }
  const text = JSON.stringify(document);
  res.writeHead(200, {
    ...CORS,
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    // Metadata changes only with the configuration; a short cache spares repeated discovery.
    'cache-control': 'public, max-age=300',
  });
  res.end(req.method === 'HEAD' ? undefined : text);
}
