/**
 * The policy every client that registers itself must meet: dynamic registrations (RFC 7591) and
 * Client ID Metadata Documents alike.
 *
 * oidc-provider runs its registration `policies` only with initial access tokens, so for anonymous
 * registration this policy runs from `extraClientMetadata.validator` (for DCR) and from the CIMD
 * adapter (for documents). It narrows what it can (drops grant types and scopes the policy does not
 * allow, as RFC 7591 §3.2.1 lets a server do) and refuses what it cannot fix, with the RFC 7591 error
 * codes `invalid_redirect_uri` and `invalid_client_metadata`.
 */
import { isLoopbackRedirectUri } from './loopback-redirect.ts';

export class ClientPolicyError extends Error {
  readonly error: 'invalid_redirect_uri' | 'invalid_client_metadata';
  constructor(error: 'invalid_redirect_uri' | 'invalid_client_metadata', description: string) {
    super(description);
    this.error = error;
  }
}

export interface ClientPolicy {
  /** Scopes a self-registered client may hold: the MCP server's. */
  allowedScopes: ReadonlySet<string>;
  /** Whether a client of this source, authenticating so, keeps the refresh_token grant (tokens/refresh-token-policy.ts). */
  refreshTokens: (source: 'dcr' | 'cimd', authMethod: string) => boolean;
  /** DEVELOPMENT ONLY (clientIdMetadataDocuments.allowLoopbackHttp): loopback http URLs in metadata. */
  allowLoopbackHttp?: boolean;
  /** Self-registered clients of these sources must prove possession (DPoP, RFC 9449 §5.2). */
  dpopRequired?: { dcr: boolean; cimd: boolean };
}

/** Schemes that can run code or read local data in a browser: never a redirect target. */
const FORBIDDEN_SCHEMES = new Set([
  'javascript:',
  'data:',
  'vbscript:',
  'file:',
  'blob:',
  'about:',
  'filesystem:',
]);
const PUBLIC_AUTH_METHODS = new Set(['none', 'private_key_jwt']);

/**
 * Metadata URLs the server fetches (`jwks_uri`, `sector_identifier_uri`) or shows the user (logo,
 * policy, terms): https only (RFC 7591 §5, RFC 8414 §6). An http `jwks_uri` would be fetched in
 * cleartext, and is the usual first step of an SSRF probe.
 */
const WEB_URI_PROPERTIES = [
  'jwks_uri',
  'sector_identifier_uri',
  'logo_uri',
  'client_uri',
  'policy_uri',
  'tos_uri',
  'initiate_login_uri',
];

export function checkWebUris(metadata: Record<string, unknown>, allowLoopbackHttp: boolean): void {
  for (const property of WEB_URI_PROPERTIES) {
    const value = metadata[property];
    if (value === undefined) continue;
    const url = typeof value === 'string' ? URL.parse(value) : null;
    const ok =
      url !== null &&
      !url.username &&
      !url.password &&
      (url.protocol === 'https:' ||
        (allowLoopbackHttp && url.protocol === 'http:' && isLoopbackRedirectUri(url.href)));
    if (!ok) throw new ClientPolicyError('invalid_client_metadata', `${property} must be an https URL`);
  }
}
const CONFIDENTIAL_AUTH_METHODS = new Set(['client_secret_basic', 'client_secret_post', 'private_key_jwt']);

/**
 * Redirect URIs must be https, or http on a loopback host; private-use schemes (`com.example.app:/cb`)
 * only for `application_type: native` (RFC 8252 §7.1). Fragments are refused (RFC 6749 §3.1.2).
 */
export function checkRedirectUris(uris: unknown, applicationType: unknown): void {
  if (!Array.isArray(uris) || uris.length === 0 || !uris.every((uri) => typeof uri === 'string')) {
    throw new ClientPolicyError('invalid_redirect_uri', 'redirect_uris must be a non-empty array of URIs');
  }
  for (const uri of uris as string[]) {
    const parsed = URL.parse(uri);
    if (!parsed)
      throw new ClientPolicyError('invalid_redirect_uri', 'redirect_uris must only contain valid URIs');
    if (parsed.hash || uri.includes('#')) {
      throw new ClientPolicyError('invalid_redirect_uri', 'redirect_uris must not contain fragments');
    }
    if (parsed.username || parsed.password) {
      throw new ClientPolicyError('invalid_redirect_uri', 'redirect_uris must not contain user information');
    }
    if (FORBIDDEN_SCHEMES.has(parsed.protocol)) {
      throw new ClientPolicyError(
        'invalid_redirect_uri',
        `redirect_uris must not use the ${parsed.protocol} scheme`,
      );
    }
    if (parsed.protocol === 'https:') continue;
    if (parsed.protocol === 'http:') {
      if (isLoopbackRedirectUri(uri)) continue;
      throw new ClientPolicyError(
        'invalid_redirect_uri',
        'http redirect_uris are only allowed on loopback hosts',
      );
    }
    // A private-use scheme: RFC 8252 §7.1 wants reverse-domain names, and only native apps use them.
    if (applicationType !== 'native') {
      throw new ClientPolicyError(
        'invalid_redirect_uri',
        'custom-scheme redirect_uris require application_type "native" (RFC 8252)',
      );
    }
    if (!parsed.protocol.slice(0, -1).includes('.')) {
      throw new ClientPolicyError(
        'invalid_redirect_uri',
        'custom-scheme redirect_uris must use a reverse domain name scheme (RFC 8252 §7.1)',
      );
    }
  }
}

/**
 * Where a sign-out may send the browser back to (RP-Initiated Logout §3.1): the same rules as
 * redirect URIs, since the sign-out redirects the browser there just as an authorization does.
 */
function checkPostLogoutRedirectUris(uris: unknown, applicationType: unknown): void {
  if (uris === undefined) return;
  if (Array.isArray(uris) && uris.length === 0) return;
  try {
    checkRedirectUris(uris, applicationType);
  } catch (error) {
    if (!(error instanceof ClientPolicyError)) throw error;
    throw new ClientPolicyError(
      'invalid_client_metadata',
      `post_logout_redirect_uris: ${error.message.replace(/^redirect_uris /, '')}`,
    );
  }
}

/** Names no self-registered client may take: they are the sign-in service's own (pages say "Gatehouse has verified ..."). */
const RESERVED_NAMES = ['gatehouse'];

/**
 * A client that names itself like the service that vouches for clients would borrow its authority
 * on the consent page. Compared on letters only, after NFKC folding and lower case, so "Gate House",
 * "GATEHOUSE™" or full-width letters do not slip through. Every `client_name`, localized ones
 * (`client_name#de`, RFC 7591 §2.2) included.
 */
function checkClientNames(metadata: Record<string, unknown>): void {
  for (const [key, value] of Object.entries(metadata)) {
    if (key !== 'client_name' && !key.startsWith('client_name#')) continue;
    if (typeof value !== 'string') continue;
    const letters = value
      .normalize('NFKC')
      .toLowerCase()
      .replace(/[^\p{L}]/gu, '');
    const reserved = RESERVED_NAMES.find((name) => letters.includes(name));
    if (reserved) {
      throw new ClientPolicyError(
        'invalid_client_metadata',
        `${key} may not contain "Gatehouse": the name is reserved for the sign-in service itself`,
      );
    }
  }
}

/**
 * Applies the policy to self-registered client metadata, in place. `source` says where it came from;
 * a CIMD document can only be a public client or use private_key_jwt (CIMD draft §4.1).
 */
export function applyClientPolicy(
  metadata: Record<string, unknown>,
  policy: ClientPolicy,
  source: 'dcr' | 'cimd',
): void {
  const method = metadata.token_endpoint_auth_method ?? 'none';
  const allowedMethods =
    source === 'cimd' ? PUBLIC_AUTH_METHODS : new Set([...PUBLIC_AUTH_METHODS, ...CONFIDENTIAL_AUTH_METHODS]);
  if (typeof method !== 'string' || !allowedMethods.has(method)) {
    throw new ClientPolicyError(
      'invalid_client_metadata',
      `token_endpoint_auth_method "${String(method)}" is not allowed`,
    );
  }
  // Public unless the client asks for a confidential method.
  metadata.token_endpoint_auth_method = method;

  checkRedirectUris(metadata.redirect_uris, metadata.application_type);
  checkPostLogoutRedirectUris(metadata.post_logout_redirect_uris, metadata.application_type);
  checkWebUris(metadata, policy.allowLoopbackHttp === true);
  checkClientNames(metadata);

  // Authorization code only (OAuth 2.1); refresh tokens only where the policy allows them, so the
  // registration says exactly which grants the client was given (RFC 7591 §3.2.1).
  const requestedGrants = Array.isArray(metadata.grant_types)
    ? (metadata.grant_types as unknown[])
    : ['authorization_code'];
  const refreshTokens = policy.refreshTokens(source, method);
  const grants = requestedGrants.filter(
    (grant) => grant === 'authorization_code' || (grant === 'refresh_token' && refreshTokens),
  );
  if (!grants.includes('authorization_code')) {
    throw new ClientPolicyError('invalid_client_metadata', 'grant_types must include authorization_code');
  }
  metadata.grant_types = [...new Set(grants)];

  const responseTypes = metadata.response_types ?? ['code'];
  if (!Array.isArray(responseTypes) || responseTypes.some((type) => type !== 'code')) {
    throw new ClientPolicyError('invalid_client_metadata', 'response_types must be ["code"]');
  }
  metadata.response_types = ['code'];

  // RFC 9449 §5.2: where the policy requires DPoP, the client is registered as DPoP-bound whatever it
  // asked; elsewhere a client may still ask for it itself.
  if (policy.dpopRequired?.[source]) metadata.dpop_bound_access_tokens = true;
  else if (
    metadata.dpop_bound_access_tokens !== undefined &&
    typeof metadata.dpop_bound_access_tokens !== 'boolean'
  ) {
    throw new ClientPolicyError('invalid_client_metadata', 'dpop_bound_access_tokens must be a boolean');
  }

  // RFC 7591 §2 makes a registered `scope` a ceiling, and MCP clients register with the scope of
  // their first request; step-up (SEP-2350) would then be refused. The ceiling is set to the MCP
  // server's scopes instead (RFC 7591 §3.2.1 lets the server replace values): that is what a
  // self-registered client may ever ask for, and the user's consent decides what it gets.
  if (metadata.scope === undefined || typeof metadata.scope === 'string') {
    metadata.scope = [...policy.allowedScopes].join(' ');
  } else if (metadata.scope !== undefined) {
    throw new ClientPolicyError('invalid_client_metadata', 'scope must be a space-separated string');
  }
}
