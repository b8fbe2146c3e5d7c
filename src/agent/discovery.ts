/**
 * Discovery per the MCP authorization spec: from the MCP server's 401 to the authorization server's
 * metadata.
 *
 *   1. Protected Resource Metadata (RFC 9728): the challenge's `resource_metadata` URL, else the
 *      path-inserted well-known URL, then the root one (the SDK's discoverOAuthProtectedResourceMetadata).
 *   2. Authorization server metadata: RFC 8414 then OpenID Connect discovery, with path insertion for
 *      issuers that have a path; the document's `issuer` must equal the one the URL was built from
 *      (RFC 8414 §3.3; the SDK's discoverAuthorizationServerMetadata).
 *   3. What the SDK leaves to us: refuse an authorization server that does not say it supports PKCE
 *      S256 (MCP authorization, "Authorization Code Protection"), and a resource document that is not
 *      about this server.
 */
import {
  type AuthorizationServerMetadata,
  buildDiscoveryUrls,
  checkResourceAllowed,
  discoverAuthorizationServerMetadata,
  discoverOAuthProtectedResourceMetadata,
  type FetchLike,
  type OAuthProtectedResourceMetadata,
  resourceUrlFromServerUrl,
} from '@modelcontextprotocol/client';
import { AgentError } from './errors.ts';

/** The parameters of a `WWW-Authenticate: Bearer` challenge the agent acts on. */
export interface Challenge {
  resourceMetadataUrl?: URL | undefined;
  scope?: string | undefined;
  error?: string | undefined;
  errorDescription?: string | undefined;
}

export interface Discovered {
  /** The RFC 8707 resource indicator: the `resource` of the Protected Resource Metadata, verbatim. */
  resource: string;
  resourceMetadata: OAuthProtectedResourceMetadata;
  /** The authorization server's issuer identifier, checked against its metadata. */
  issuer: string;
  metadata: AuthorizationServerMetadata;
}

/** The Protected Resource Metadata URLs tried for a server without a `resource_metadata` hint (RFC 9728 §3.1). */
export function protectedResourceMetadataUrls(serverUrl: string): string[] {
  const url = new URL(serverUrl);
  const path = url.pathname.replace(/\/$/, '');
  const root = new URL('/.well-known/oauth-protected-resource', url.origin).href;
  return path ? [new URL(`/.well-known/oauth-protected-resource${path}`, url.origin).href, root] : [root];
}

/**
 * An endpoint the metadata may name (`revocation_endpoint`, `pushed_authorization_request_endpoint`, …):
 * the SDK keeps every member, but types only those of one of its two metadata kinds.
 */
export function metadataEndpoint(metadata: AuthorizationServerMetadata, name: string): string | undefined {
  const value = (metadata as Record<string, unknown>)[name];
  return typeof value === 'string' && URL.canParse(value) ? value : undefined;
}

/** Refuses an authorization server that does not advertise PKCE S256: the code would be unprotected. */
export function requireS256(metadata: AuthorizationServerMetadata): void {
  const methods = metadata.code_challenge_methods_supported;
  if (!methods?.includes('S256')) {
    throw new AgentError(
      'authorization',
      methods
        ? `the authorization server ${metadata.issuer} does not support PKCE S256 (it offers ${methods.join(', ') || 'none'}): refusing to continue`
        : `the authorization server ${metadata.issuer} does not advertise code_challenge_methods_supported, so PKCE S256 cannot be relied on: refusing to continue`,
      'The MCP authorization spec requires PKCE S256; ask the server operator to enable it.',
    );
  }
}

export async function discover(
  serverUrl: string,
  challenge: Challenge,
  fetchFn: FetchLike,
): Promise<Discovered> {
  let resourceMetadata: OAuthProtectedResourceMetadata;
  try {
    resourceMetadata = await discoverOAuthProtectedResourceMetadata(
      serverUrl,
      challenge.resourceMetadataUrl ? { resourceMetadataUrl: challenge.resourceMetadataUrl } : {},
      fetchFn,
    );
  } catch (error) {
    if (error instanceof TypeError && error.message === 'fetch failed') throw error;
    const looked = challenge.resourceMetadataUrl
      ? [challenge.resourceMetadataUrl.href]
      : protectedResourceMetadataUrls(serverUrl);
    throw new AgentError(
      'authorization',
      `no usable OAuth Protected Resource Metadata for ${serverUrl} (looked at ${looked.join(' and ')}): ${(error as Error).message}`,
      'Check the MCP server URL; the server must publish RFC 9728 metadata to be used with OAuth.',
      { cause: error },
    );
  }
  const expected = resourceUrlFromServerUrl(serverUrl);
  if (!checkResourceAllowed({ requestedResource: expected, configuredResource: resourceMetadata.resource })) {
    throw new AgentError(
      'authorization',
      `the Protected Resource Metadata is for ${resourceMetadata.resource}, not ${expected.href}: refusing to use it (RFC 9728 §3.3)`,
      'Check the MCP server URL.',
    );
  }
  const issuer = resourceMetadata.authorization_servers?.[0];
  if (!issuer) {
    throw new AgentError(
      'authorization',
      `the Protected Resource Metadata of ${serverUrl} names no authorization server`,
      'The MCP server is misconfigured; tell its operator.',
    );
  }
  const metadata = await discoverAuthorizationServerMetadata(issuer, { fetchFn });
  if (!metadata) {
    throw new AgentError(
      'authorization',
      `no authorization server metadata for ${issuer} (looked at ${buildDiscoveryUrls(issuer)
        .map(({ url }) => url.href)
        .join(', ')})`,
      'Check that the authorization server is running and reachable.',
    );
  }
  requireS256(metadata);
  return { resource: resourceMetadata.resource, resourceMetadata, issuer: metadata.issuer, metadata };
}
