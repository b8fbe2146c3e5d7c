/**
 * Clients an administrator pre-registers at run time (the console or the admin API): the same
 * trust as the configuration file's clients (pre-registered, assurance level 4), kept in the
 * directory and handed to oidc-provider through the Client adapter's `find`.
 *
 * Roles `agent` (authorization code with PKCE; public, secret or key) and `workload` (client
 * credentials; secret or key) only: the internal roles and `admin` come from the file, so no
 * admin operation can mint another administrator or an introspecting gateway.
 */
import { randomBytes } from 'node:crypto';
import type { Adapter } from 'oidc-provider';
import type { PreRegisteredClientConfig } from '../../shared/config/schema.ts';
import { withFind } from '../store/sqlite-store.ts';
import { invalid } from './admin-error.ts';
import type { Directory, RegisteredClient } from './directory.ts';

const CLIENT_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{2,63}$/;
const LOOPBACK_HOSTS = new Set(['127.0.0.1', '[::1]', 'localhost']);
/** RFC 8252 §7.1: a private-use scheme is a reverse domain name, with at least one dot. */
const PRIVATE_USE_SCHEME = /^[a-z][a-z0-9+-]*(\.[a-z0-9+-]+)+:$/;

export interface NewClientInput {
  client_id?: unknown;
  name?: unknown;
  role?: unknown;
  auth_method?: unknown;
  redirect_uris?: unknown;
  scopes?: unknown;
  jwks?: unknown;
}

function redirectUrisOf(input: unknown): string[] {
  if (input === undefined) return [];
  if (!Array.isArray(input) || input.length > 10)
    throw invalid('redirect_uris', 'must be a list of at most 10 URIs');
  return input.map((value, i) => {
    const field = `redirect_uris.${i}`;
    if (typeof value !== 'string' || value.length > 2000) throw invalid(field, 'must be a URI');
    const url = URL.parse(value);
    if (!url || url.hash || url.username || url.password)
      throw invalid(field, 'must be an absolute URI without fragment or user info');
    const ok =
      url.protocol === 'https:' ||
      (url.protocol === 'http:' && LOOPBACK_HOSTS.has(url.host.replace(/:\d+$/, ''))) ||
      PRIVATE_USE_SCHEME.test(url.protocol);
    if (!ok) throw invalid(field, 'must be https, http on loopback, or a private-use scheme (RFC 8252)');
    return value;
  });
}

function jwksOf(input: unknown): { keys: Array<Record<string, unknown>> } {
  const keys = (input as { keys?: unknown } | undefined)?.keys;
  if (!Array.isArray(keys) || keys.length === 0 || keys.length > 5)
    throw invalid('jwks', 'must be a JSON Web Key Set with 1 to 5 public keys');
  keys.forEach((key, i) => {
    const jwk = key as Record<string, unknown>;
    if (typeof jwk !== 'object' || jwk === null || !['EC', 'RSA', 'OKP'].includes(String(jwk.kty)))
      throw invalid(`jwks.keys.${i}`, 'must be an EC, RSA or OKP public key');
    if ('d' in jwk || 'p' in jwk || 'k' in jwk)
      throw invalid(`jwks.keys.${i}`, 'must be a public key (no private part)');
  });
  return { keys: keys as Array<Record<string, unknown>> };
}

/**
 * Validates an administrator's new client and builds its oidc-provider metadata. A
 * `client_secret_basic` client gets a generated secret, returned here once and never shown again.
 */
export function newClientMetadata(
  input: NewClientInput,
  options: {
    mcpScopes: ReadonlySet<string>;
    dpopRequired: boolean;
    /** Whether an agent authenticating so gets refresh tokens (tokens/refresh-token-policy.ts). */
    refreshTokens?: (authMethod: string) => boolean;
  },
): { clientId: string; role: RegisteredClient['role']; metadata: Record<string, unknown>; secret?: string } {
  const clientId =
    input.client_id === undefined || input.client_id === ''
      ? `client-${randomBytes(9).toString('base64url')}`
      : input.client_id;
  if (typeof clientId !== 'string' || !CLIENT_ID.test(clientId))
    throw invalid('client_id', 'must be 3 to 64 letters, digits, ".", "_" or "-"');
  if (/^gatehouse/i.test(clientId))
    throw invalid('client_id', 'names starting with "gatehouse" are reserved');
  const name = input.name;
  if (typeof name !== 'string' || name.trim() === '' || name.length > 100 || /\p{Cc}/u.test(name))
    throw invalid('name', 'must be text of 1 to 100 characters');
  if (/gatehouse/i.test(name)) throw invalid('name', '"Gatehouse" is reserved in client names');
  const role = input.role;
  if (role !== 'agent' && role !== 'workload') throw invalid('role', 'must be "agent" or "workload"');
  const authMethod = input.auth_method ?? (role === 'agent' ? 'none' : 'client_secret_basic');
  if (authMethod !== 'none' && authMethod !== 'client_secret_basic' && authMethod !== 'private_key_jwt')
    throw invalid('auth_method', 'must be none, client_secret_basic or private_key_jwt');
  if (role === 'workload' && authMethod === 'none')
    throw invalid('auth_method', 'a workload must authenticate');
  const redirectUris = redirectUrisOf(input.redirect_uris);
  if (role === 'agent' && redirectUris.length === 0)
    throw invalid('redirect_uris', 'an agent needs at least one');
  if (role === 'workload' && redirectUris.length > 0) throw invalid('redirect_uris', 'a workload has none');
  const scopes = input.scopes ?? [];
  if (
    !Array.isArray(scopes) ||
    scopes.some((scope) => typeof scope !== 'string' || !options.mcpScopes.has(scope))
  )
    throw invalid('scopes', `must be a list of MCP scopes (${[...options.mcpScopes].join(', ')})`);
  const secret = authMethod === 'client_secret_basic' ? randomBytes(32).toString('base64url') : undefined;
  const metadata: Record<string, unknown> = {
    client_id: clientId,
    client_name: name.trim(),
    grant_types:
      role !== 'agent'
        ? ['client_credentials']
        : ['authorization_code', ...(options.refreshTokens?.(authMethod) ? ['refresh_token'] : [])],
    response_types: role === 'agent' ? ['code'] : [],
    redirect_uris: redirectUris,
    token_endpoint_auth_method: authMethod,
    ...(scopes.length > 0 ? { scope: scopes.join(' ') } : {}),
    ...(secret ? { client_secret: secret } : {}),
    ...(authMethod === 'private_key_jwt' ? { jwks: jwksOf(input.jwks) } : {}),
    // RFC 9449 §5.2, as for the file's clients (authorizationServer.dpop.preRegistered).
    ...(options.dpopRequired ? { dpop_bound_access_tokens: true } : {}),
  };
  return { clientId, role, metadata, ...(secret ? { secret } : {}) };
}

/** The configuration's view of a registered client, for the classifier and the rate limits. */
export function asPreRegistered(client: RegisteredClient): PreRegisteredClientConfig {
  const metadata = client.metadata;
  return {
    clientId: client.clientId,
    name: String(metadata.client_name),
    role: client.role,
    authMethod: metadata.token_endpoint_auth_method as PreRegisteredClientConfig['authMethod'],
    generateKeys: false,
    redirectUris: (metadata.redirect_uris as string[]) ?? [],
    scopes: String(metadata.scope ?? '')
      .split(' ')
      .filter(Boolean),
  };
}

/** The Client adapter, answering for registered clients first (their ids never collide: checked). */
export function withRegisteredClients(adapter: Adapter, directory: Directory): Adapter {
  return withFind(adapter, async (id) => {
    const registered = await directory.registeredClients.get(id);
    if (registered) return structuredClone(registered.metadata) as never;
    return adapter.find(id);
  });
}
