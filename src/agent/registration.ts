/**
 * How the agent gets a client_id, in the MCP authorization spec's order:
 *
 *   1. pre-registered credentials (flags, or the configuration file, for this issuer);
 *   2. a Client ID Metadata Document: when the agent has a document URL and the authorization server
 *      advertises `client_id_metadata_document_supported`, the URL is the client_id;
 *   3. Dynamic Client Registration (RFC 7591), as a native app with a loopback redirect URI without a
 *      port (RFC 8252 §7.3: any port matches), reused from the store until the server forgets it.
 *
 * The SDK's auth() makes the same choice, but refuses a metadata document URL that is not https,
 * which a development setup needs, and sends the first request's scope along with DCR, which would
 * pin the client to it; so the choice is made here and only the registration call is the SDK's.
 */
import { type FetchLike, type OAuthClientMetadata, registerClient } from '@modelcontextprotocol/client';
import type { AgentClient, SigningKey } from './client-authentication.ts';
import type { Discovered } from './discovery.ts';
import { AgentError } from './errors.ts';
import type { StoredRegistration, TokenStore } from './token-store.ts';

/** The redirect URI registered for every loopback callback: any port matches it (RFC 8252 §7.3). */
export const LOOPBACK_REDIRECT_URI = 'http://127.0.0.1/callback';

/** What a dynamically registered agent says about itself. */
export const DYNAMIC_CLIENT_METADATA: OAuthClientMetadata = {
  // Not "Gatehouse ...": that name is the sign-in service's own, and self-registered clients may not take it.
  client_name: 'Console MCP agent',
  redirect_uris: [LOOPBACK_REDIRECT_URI],
  application_type: 'native',
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
  token_endpoint_auth_method: 'none',
  software_id: 'gatehouse-agent',
};

export interface PreRegisteredClient {
  clientId: string;
  clientSecret?: string | undefined;
  signingKey?: SigningKey | undefined;
}

export interface ClientChoice {
  discovered: Discovered;
  preRegistered?: PreRegisteredClient | undefined;
  clientMetadataUrl?: string | undefined;
  store: TokenStore;
  fetchFn: FetchLike;
  /** False to use only what is known already (e.g. for logout): never register. */
  mayRegister?: boolean;
  note?: (message: string) => void;
}

const isLoopbackHttp = (url: URL) =>
  url.protocol === 'http:' && ['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname);

/**
 * Checks a client metadata document URL (CIMD draft §3): https with a path; plain http only on a
 * loopback host, for development against a server with its development switch on.
 */
export function checkClientMetadataUrl(value: string): URL {
  const url = URL.parse(value);
  if (
    !url ||
    url.hash ||
    url.username ||
    url.password ||
    url.pathname === '/' ||
    !(url.protocol === 'https:' || isLoopbackHttp(url))
  ) {
    throw new AgentError(
      'usage',
      `--client-metadata-url ${value} is not a usable client ID metadata document URL`,
      'It must be an https URL with a path (http only on 127.0.0.1/localhost, for development).',
    );
  }
  return url;
}

const secretExpired = (registration: StoredRegistration) =>
  typeof registration.client_secret_expires_at === 'number' &&
  registration.client_secret_expires_at !== 0 &&
  registration.client_secret_expires_at * 1000 <= Date.now();

function fromRegistration(registration: StoredRegistration): AgentClient {
  return {
    kind: 'dynamic',
    clientId: registration.client_id,
    authMethod: (registration.token_endpoint_auth_method as AgentClient['authMethod']) ?? 'none',
    ...(registration.client_secret ? { clientSecret: registration.client_secret } : {}),
    registration,
  };
}

/** The client this agent is at the discovered authorization server, registering it if it must. */
export async function chooseClient(choice: ClientChoice): Promise<AgentClient | undefined> {
  const { discovered, store } = choice;
  const { issuer, metadata } = discovered;
  const pre = choice.preRegistered;
  if (pre) {
    const authMethod = pre.signingKey ? 'private_key_jwt' : pre.clientSecret ? 'client_secret_basic' : 'none';
    return {
      kind: 'pre-registered',
      clientId: pre.clientId,
      authMethod,
      ...(pre.clientSecret ? { clientSecret: pre.clientSecret } : {}),
      ...(pre.signingKey ? { signingKey: pre.signingKey } : {}),
    };
  }
  if (choice.clientMetadataUrl) {
    if (metadata.client_id_metadata_document_supported === true) {
      return { kind: 'metadata-document', clientId: choice.clientMetadataUrl, authMethod: 'none' };
    }
    choice.note?.(`${issuer} does not support client ID metadata documents; falling back to registration`);
  }
  const stored = store.registration(issuer);
  if (stored && !secretExpired(stored)) return fromRegistration(stored);
  if (choice.mayRegister === false) return undefined;
  if (!metadata.registration_endpoint) {
    throw new AgentError(
      'authorization',
      `the authorization server ${issuer} offers this agent no way to register (no client ID metadata document support${choice.clientMetadataUrl ? '' : ' used'}, no registration endpoint)`,
      'Ask its operator for a pre-registered client and pass --client-id, or publish a client metadata document and pass --client-metadata-url.',
    );
  }
  // Dynamic registration is deprecated by MCP 2026-07-28 in favour of metadata documents, and kept.
  // The SDK's response schema strips the RFC 7592 management credentials, so the raw answer is kept too.
  let management: Record<string, unknown> = {};
  const capturing: FetchLike = async (input, init) => {
    const response = await choice.fetchFn(input, init);
    if (response.ok)
      management = ((await response
        .clone()
        .json()
        .catch(() => ({}))) ?? {}) as Record<string, unknown>;
    return response;
  };
  const registered = await registerClient(issuer, {
    metadata,
    clientMetadata: DYNAMIC_CLIENT_METADATA,
    fetchFn: capturing,
  });
  const registration: StoredRegistration = {
    client_id: registered.client_id,
    ...(registered.client_secret ? { client_secret: registered.client_secret } : {}),
    ...(registered.client_secret_expires_at !== undefined
      ? { client_secret_expires_at: registered.client_secret_expires_at }
      : {}),
    token_endpoint_auth_method: registered.token_endpoint_auth_method ?? 'none',
    redirect_uris: registered.redirect_uris,
    ...(typeof management.registration_client_uri === 'string'
      ? { registration_client_uri: management.registration_client_uri }
      : {}),
    ...(typeof management.registration_access_token === 'string'
      ? { registration_access_token: management.registration_access_token }
      : {}),
    registered_at: Math.floor(Date.now() / 1000),
  };
  store.saveRegistration(issuer, registration);
  choice.note?.(`registered this agent with ${issuer} (client_id ${registration.client_id})`);
  return fromRegistration(registration);
}

/** Forgets a registration the server no longer knows (and its tokens), so the next attempt registers again. */
export function dropClient(store: TokenStore, issuer: string, client: AgentClient): void {
  if (client.kind === 'dynamic') store.forgetRegistration(issuer, client.clientId);
}
