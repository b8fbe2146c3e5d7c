/**
 * Workload mode: an agent acting for itself, not for a user. A pre-registered client gets tokens
 * with the client credentials grant (RFC 6749 §4.4), authenticating with a private_key_jwt assertion
 * (RFC 7523 §2.2) or its secret; no browser, no refresh token.
 *
 * The SDK's providers make the request (fetchToken: grant parameters, `resource`, the assertion
 * signed with jose for `aud` = the issuer, bound to that issuer), with a DPoP proof (RFC 9449 §5)
 * when the provider is given the agent's key.
 */
import {
  ClientCredentialsProvider,
  type DpopSession,
  type FetchLike,
  fetchToken,
  OAuthError,
  type OAuthTokens,
  PrivateKeyJwtProvider,
} from '@modelcontextprotocol/client';
import type { AgentClient } from './client-authentication.ts';
import type { Discovered } from './discovery.ts';
import { AgentError } from './errors.ts';

function providerFor(client: AgentClient, issuer: string, scope: string | undefined) {
  const common = {
    clientId: client.clientId,
    clientName: 'Console MCP agent (workload)',
    expectedIssuer: issuer,
  };
  const withScope = scope ? { scope } : {};
  if (client.signingKey) {
    return new PrivateKeyJwtProvider({
      ...common,
      ...withScope,
      privateKey: client.signingKey.jwk,
      algorithm: client.signingKey.alg,
      jwtLifetimeSeconds: 60,
    });
  }
  if (client.clientSecret)
    return new ClientCredentialsProvider({ ...common, ...withScope, clientSecret: client.clientSecret });
  throw new AgentError(
    'usage',
    'workload mode needs a pre-registered client with --private-key or --client-secret',
    'Pass --client-id with --private-key FILE (or --client-secret).',
  );
}

/**
 * Client credentials for `scope`. On the first authorization a server that refuses part of the scope
 * (`invalid_scope`: the challenge names scopes a workload may not hold) is asked again without one,
 * for whatever it grants this client by default; a later 403 then steps up to exactly what the tool
 * needs, and a refusal then is final.
 */
export async function workloadTokens(options: {
  discovered: Discovered;
  client: AgentClient;
  scope: string | undefined;
  fetchFn: FetchLike;
  /** On `invalid_scope`, ask again without a scope (the first authorization; a step-up needs its scope). */
  fallbackToDefaultScope: boolean;
  note?: (message: string) => void;
  /** The key to bind the tokens to, when both servers take DPoP. */
  dpop?: DpopSession | undefined;
}): Promise<OAuthTokens> {
  const { discovered, client, dpop } = options;
  // fetchToken signs a proof into the request when the provider offers a session (and retries on use_dpop_nonce).
  const provider = (scope: string | undefined) =>
    Object.assign(providerFor(client, discovered.issuer, scope), { dpop: () => dpop });
  const request = (scope: string | undefined) =>
    fetchToken(provider(scope), discovered.issuer, {
      metadata: discovered.metadata,
      resource: discovered.resource,
      ...(scope ? { scope } : {}),
      fetchFn: options.fetchFn,
    });
  try {
    return await request(options.scope);
  } catch (error) {
    const refusedScope = error instanceof OAuthError && error.code === 'invalid_scope';
    if (!refusedScope || !options.scope || !options.fallbackToDefaultScope) throw error;
    options.note?.(`${client.clientId} may not have "${options.scope}"; asking for its default scope`);
    // Nothing was asked for, so a response without `scope` says nothing about what was granted.
    const tokens = await request(undefined);
    return { ...tokens, scope: tokens.scope ?? '' };
  }
}
