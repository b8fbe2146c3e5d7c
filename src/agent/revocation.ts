/**
 * Token revocation (RFC 7009), for `logout`: the refresh token first (§2.1: the server may then drop
 * the access tokens of the same grant), then the access token. The server answers 200 even for a
 * token it does not know (§2.2), so only a refusal or a network failure is reported.
 */
import type { AuthorizationServerMetadata, FetchLike } from '@modelcontextprotocol/client';
import { type AgentClient, authenticateRequest } from './client-authentication.ts';
import { metadataEndpoint } from './discovery.ts';
import type { StoredTokens } from './token-store.ts';

/** Revokes what `tokens` holds; returns what could not be revoked (empty when all went well). */
export async function revokeTokens(
  tokens: StoredTokens,
  client: AgentClient,
  metadata: AuthorizationServerMetadata,
  fetchFn: FetchLike,
): Promise<string[]> {
  const endpoint = metadataEndpoint(metadata, 'revocation_endpoint');
  if (!endpoint)
    return ['the authorization server has no revocation endpoint; the tokens were only forgotten'];
  const problems: string[] = [];
  const held: Array<[string, string]> = [];
  if (tokens.refresh_token) held.push(['refresh_token', tokens.refresh_token]);
  held.push(['access_token', tokens.access_token]);
  for (const [hint, token] of held) {
    const params = new URLSearchParams({ token, token_type_hint: hint });
    const headers = new Headers({
      'content-type': 'application/x-www-form-urlencoded',
      accept: 'application/json',
    });
    await authenticateRequest(client, headers, params, endpoint, metadata);
    try {
      const response = await fetchFn(endpoint, { method: 'POST', headers, body: params });
      await response.text();
      if (!response.ok)
        problems.push(`revoking the ${hint.replace('_', ' ')} failed (HTTP ${response.status})`);
    } catch (error) {
      problems.push(`revoking the ${hint.replace('_', ' ')} failed (${(error as Error).message})`);
    }
  }
  return problems;
}
