/**
 * oidc-provider configured as Gatehouse's authorization server.
 *
 * Every default that is wrong for AI agents is set deliberately here (design §5): agent tokens are
 * opaque, audience-bound to the MCP server and not tied to the browser session; PKCE S256 is required
 * for every client; refresh tokens only where policy allows; no development keys or interactions.
 */

import type { DatabaseSync } from 'node:sqlite';
import Provider, {
  type Adapter,
  type ClientMetadata,
  type Configuration,
  errors,
  interactionPolicy,
  type KoaContextWithOIDC,
} from 'oidc-provider';
import type { AuthorizationServerConfig, GatewayConfig } from '../shared/config/schema.ts';
import type { Logger } from '../shared/logging.ts';
import { PERMITTED_TOOLS_CLAIM } from '../shared/tool-claims.ts';
import { FIRST_PARTY_CLIENT_ID } from './account/first-party-sign-in.ts';
import { clientAssertionHook } from './clients/client-assertion-policy.ts';
import type { ClientClassifier } from './clients/client-classification.ts';
import { isImpersonableRedirectUri, redirectUriMatches } from './clients/loopback-redirect.ts';
import { applyClientPolicy, type ClientPolicy, ClientPolicyError } from './clients/registration-policy.ts';
import type { PreparedClient } from './clients/static-clients.ts';
import { guardClientLookup, type TokenRateLimits } from './http/token-rate-limit.ts';
import type { Branding } from './interactions/views/branding.ts';
import { authorizationErrorPage } from './interactions/views/error-page.ts';
import {
  CONTENT_SECURITY_POLICY,
  CONTENT_SECURITY_POLICY_REDIRECTING_FORMS,
} from './interactions/views/html.ts';
import { logoutPage, signedOutPage } from './interactions/views/logout-pages.ts';
import type { IdTokenKeySlots } from './keys/id-token-signing.ts';
import { ID_TOKEN_TTL_SECONDS } from './keys/retire-after.ts';
import type { Accounts } from './login/accounts.ts';
import type { ApprovedUserLookup } from './login/approved-users.ts';
import { createProviderFetch, PROVIDER_FETCH_MAX_BYTES } from './outbound/provider-fetch.ts';
import type { ResourceRegistry } from './resources.ts';
import { notFoundUnlessUnavailable } from './store/postgres/connection.ts';
import { DEFAULT_CLOCK_TOLERANCE_SECONDS } from './store/sqlite-store.ts';
import { endRefreshTokensAtAbsoluteLifetime } from './tokens/refresh-absolute-lifetime.ts';
import { narrowRefreshScopes } from './tokens/refresh-scope.ts';
import {
  accessTokenTtlWithinSignIn,
  anyRefreshTokens,
  mayHoldRefreshTokens,
  refreshTokenTtl,
} from './tokens/refresh-token-policy.ts';
import { alignGrantsOnRefresh, alignGrantWithToolPolicy } from './tools/grant-alignment.ts';
import type { ToolPolicy } from './tools/tool-policy.ts';

export const ROUTES = {
  authorization: '/authorize',
  token: '/token',
  registration: '/register',
  introspection: '/introspect',
  revocation: '/revoke',
  jwks: '/jwks',
} as const;

export interface ProviderDependencies {
  issuer: string;
  config: AuthorizationServerConfig;
  db: DatabaseSync;
  adapter: (model: string) => Adapter;
  /**
   * The RS256 keys that sign ID tokens (and RFC 9701 introspection answers): oidc-provider builds its
   * keystore once, here, so it gets slots that stand for the ID-token ring's current and retired keys
   * as they are when it asks (keys/id-token-signing.ts). The JWKS route is answered from the rings
   * before the provider's (keys/jwks-endpoint.ts).
   */
  idTokenKeys: IdTokenKeySlots;
  cookieKeys: string[];
  /** 32 bytes that key the DPoP nonces (RFC 9449 §8); derived from the cookie keys, so stable. */
  dpopNonceSecret: Buffer;
  /** DPoP proof algorithms to bind tokens with: the gateway's (`gateway.dpop.algorithms`). */
  dpopAlgorithms: GatewayConfig['dpop']['algorithms'];
  clients: PreparedClient[];
  classifier: ClientClassifier;
  resources: ResourceRegistry;
  approvedUsers: ApprovedUserLookup;
  accounts: Accounts;
  /** The token endpoint's limits (http/token-rate-limit.ts). */
  tokenLimits: TokenRateLimits;
  /** The policy for self-registered clients (DCR here; CIMD documents in the Client adapter). */
  clientPolicy: ClientPolicy;
  /** The organization's name and support contact on the pages oidc-provider renders. */
  branding: Branding;
  /** The admin API's resource URI (`<issuer>/admin/api`): only clients of role `admin` get tokens for it. */
  adminAudience: string;
  /** A client an administrator disabled: it is not found, so nothing of it works (admin/admin-service.ts). */
  isDisabledClient: (clientId: string) => Promise<boolean>;
  /** Who may ever use which tool (tools/tool-policy.ts): in user tokens, and at consent. */
  toolPolicy: ToolPolicy;
  logger: Logger;
}

/** The claims a user's tokens carry: their email and configured attributes. */
export async function userClaims(
  deps: Pick<ProviderDependencies, 'accounts' | 'approvedUsers'>,
  sub: string,
) {
  const email = await deps.accounts.emailOf(sub);
  const user = email ? await deps.approvedUsers.find(email) : undefined;
  // A user removed from the approved list loses access at once: no claims, no account.
  if (!user || user.sub !== sub) return undefined;
  return {
    email: user.email,
    email_verified: true,
    ...(user.name ? { name: user.name } : {}),
    ...user.claims,
  };
}

/**
 * The library's prompts, with one change to when consent is asked again.
 *
 * A public client proves nothing at the token endpoint: whoever holds a code and its PKCE verifier
 * redeems it. When its redirect URI is on loopback (any port matches, RFC 8252 §7.3) or a private-use
 * scheme, any other program on the user's machine can send an authorization request with the same
 * client_id, its own port and its own PKCE pair, and receive the code. So for such a client a
 * remembered consent is never enough: the user must answer a page in this very request (RFC 8252
 * §8.6). A sign-in during the request is that interaction (the page names the client); with only an
 * existing browser session, the consent page is shown again, whatever the `application_type`.
 * oidc-provider's own rule asked only `native` clients, and web clients (which SDK v1 registers)
 * slipped through. Confidential clients authenticate at the token endpoint, so a stolen code is
 * useless to another program; their remembered consent is honoured.
 */
/** The MCP scopes a request asks for that the signed-in user may never hold (tools/tool-policy.ts). */
export type ForbiddenScopesOf = (accountId: string, scopes: string[]) => Promise<string[]>;

/**
 * Consent never grants a scope the user's tool policy forbids. This check sends the request to the
 * consent page (interactions/routes.ts decides what it shows) when it asks for such a scope and
 * either the user was not told yet (the scope is not among the grant's rejected ones) or nothing
 * else is asked for. A request whose forbidden scopes were refused before, beside scopes the user
 * holds, goes through without them (RFC 6749 §3.3: the server may issue less than requested).
 */
function forbiddenScopeCheck(
  isMcpResource: (indicator: string) => boolean,
  forbiddenScopesOf: ForbiddenScopesOf,
) {
  /** The MCP scopes requested, and those the grant refused, over every indicator naming the MCP server. */
  const mcpSide = (ctx: KoaContextWithOIDC) => {
    const { oidc } = ctx;
    const servers = (oidc.resourceServers ?? {}) as Record<string, { scopes: Set<string> }>;
    const indicators = Object.keys(servers).filter(isMcpResource);
    const supported = new Set(indicators.flatMap((indicator) => [...servers[indicator]!.scopes]));
    const requested = [...(oidc.requestParamScopes as Set<string>)].filter((scope) => supported.has(scope));
    const rejected = new Set(
      indicators.flatMap((indicator) => oidc.grant?.getRejectedResourceScope(indicator).split(' ') ?? []),
    );
    return { indicators, requested, rejected };
  };
  return new interactionPolicy.Check(
    'scope_not_permitted',
    'a requested scope is not available to the user',
    'access_denied',
    async (ctx) => {
      const accountId = ctx.oidc.session?.accountId;
      const { indicators, requested, rejected } = mcpSide(ctx);
      if (!accountId || indicators.length === 0) return interactionPolicy.Check.NO_NEED_TO_PROMPT;
      const forbidden = await forbiddenScopesOf(accountId, requested);
      if (forbidden.length === 0) return interactionPolicy.Check.NO_NEED_TO_PROMPT;
      const told = forbidden.every((scope) => rejected.has(scope));
      const onlyForbidden = requested.every((scope) => forbidden.includes(scope));
      return !told || onlyForbidden
        ? interactionPolicy.Check.REQUEST_PROMPT
        : interactionPolicy.Check.NO_NEED_TO_PROMPT;
    },
    async (ctx) => ({
      forbiddenScopes: await forbiddenScopesOf(ctx.oidc.session!.accountId!, [
        ...(ctx.oidc.requestParamScopes as Set<string>),
      ]),
    }),
  );
}

function interactionPrompts(
  isMcpResource: (indicator: string) => boolean,
  forbiddenScopesOf: ForbiddenScopesOf,
) {
  const prompts = interactionPolicy.base();
  const consent = prompts.get('consent')!;
  consent.checks.add(forbiddenScopeCheck(isMcpResource, forbiddenScopesOf), 0);
  consent.checks.remove('native_client_prompt');
  consent.checks.add(
    new interactionPolicy.Check(
      'native_client_prompt',
      'clients that any local program can impersonate require End-User interaction',
      'interaction_required',
      (ctx) => {
        const { oidc } = ctx;
        const interacted = Boolean(oidc.result?.consent || oidc.result?.login);
        if (interacted) return interactionPolicy.Check.NO_NEED_TO_PROMPT;
        const client = oidc.client!;
        const redirectUris = (client as unknown as { redirectUris?: string[] }).redirectUris ?? [];
        const redirectUri =
          typeof oidc.params?.redirect_uri === 'string' ? oidc.params.redirect_uri : undefined;
        const impersonable =
          client.clientAuthMethod === 'none' &&
          (redirectUri ? [redirectUri] : redirectUris).some(isImpersonableRedirectUri);
        return client.applicationType === 'native' || impersonable
          ? interactionPolicy.Check.REQUEST_PROMPT
          : interactionPolicy.Check.NO_NEED_TO_PROMPT;
      },
    ),
    0,
  );
  return prompts;
}

export function createProvider(deps: ProviderDependencies): Provider {
  const { config, resources, classifier } = deps;
  const dcr = config.dynamicRegistration;
  const { clientPolicy } = deps;
  const scopes = ['openid', ...resources.mcp.scopes.keys()];
  const forbiddenScopesOf: ForbiddenScopesOf = async (accountId, requested) => {
    if (requested.length === 0) return [];
    const claims = await userClaims(deps, accountId);
    // No claims: the user is no longer approved, and holds nothing.
    return claims ? deps.toolPolicy.forbiddenScopes(claims, requested) : requested;
  };

  const configuration: Configuration = {
    adapter: deps.adapter as unknown as Configuration['adapter'],
    clients: deps.clients.map((client) => client.metadata),
    jwks: { keys: [...deps.idTokenKeys.keys] },
    cookies: {
      keys: deps.cookieKeys,
      long: { httpOnly: true, sameSite: 'lax', signed: true },
      short: { httpOnly: true, sameSite: 'lax', signed: true },
      names: { session: '_gh_session', interaction: '_gh_interaction', resume: '_gh_resume' },
    },
    clockTolerance: DEFAULT_CLOCK_TOLERANCE_SECONDS,
    // Every fetch for a client (jwks_uri, sector_identifier_uri) is vetted before it connects (design §3).
    fetch: createProviderFetch({
      allowLoopback: config.clientIdMetadataDocuments.allowLoopbackHttp,
      timeoutMs: config.clientIdMetadataDocuments.timeoutMs,
      maxBytes: PROVIDER_FETCH_MAX_BYTES,
      logger: deps.logger.child({ part: 'outbound-fetch' }),
    }) as unknown as Configuration['fetch'],
    assertJwtClientAuthClaimsAndHeader: clientAssertionHook({
      maxLifetimeSeconds: config.clientAssertions.maxLifetimeSeconds,
      clockToleranceSeconds: DEFAULT_CLOCK_TOLERANCE_SECONDS,
    }) as Configuration['assertJwtClientAuthClaimsAndHeader'],
    routes: ROUTES,
    scopes,
    claims: { openid: ['sub'] },
    responseTypes: ['code'],
    clientAuthMethods: ['none', 'client_secret_basic', 'client_secret_post', 'private_key_jwt'],
    clientDefaults: {
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
      id_token_signed_response_alg: 'RS256',
    },
    // OAuth 2.1: PKCE for every authorization code, whatever the client; oidc-provider 9 knows only S256.
    pkce: { required: () => true },
    // Agent tokens outlive the browser session that granted them (design §5).
    expiresWithSession: async () => false,
    conformIdTokenClaims: true,
    allowOmittingSingleRegisteredRedirectUri: true,
    findAccount: async (_ctx, sub) => {
      const claims = await userClaims(deps, sub);
      if (!claims) return undefined;
      return { accountId: sub, claims: async () => ({ sub, ...claims }) };
    },
    // Consent is remembered per user and client, across browser sessions.
    loadExistingGrant: async (ctx) => {
      const { oidc } = ctx;
      const grantId =
        oidc.result?.consent?.grantId ??
        oidc.session?.grantIdFor(oidc.client!.clientId) ??
        (oidc.session?.accountId
          ? await deps.accounts.grantFor(oidc.session.accountId, oidc.client!.clientId)
          : undefined);
      if (!grantId) return undefined;
      const grant = await oidc.provider.Grant.find(grantId);
      // A grant for another account or client is never reused.
      if (!grant || grant.accountId !== oidc.session?.accountId || grant.clientId !== oidc.client!.clientId) {
        return undefined;
      }
      await alignGrantWithToolPolicy(grant, resources.isMcpResource, (scopes) =>
        forbiddenScopesOf(grant.accountId!, scopes),
      );
      return grant;
    },
    extraTokenClaims: async (_ctx, token) => {
      const classification = await classifier.classify(token.clientId!);
      const clientClaims = {
        client_type: token.kind === 'ClientCredentials' ? 'workload' : classification.clientType,
        client_assurance_level: classification.assuranceLevel,
      };
      // RFC 9068 §2.2: with no resource owner (client credentials), `sub` is the client itself; the
      // introspection JSON must say so, as the phantom token does.
      if (token.kind === 'ClientCredentials') return { sub: token.clientId, ...clientClaims };
      const accountId = 'accountId' in token ? (token.accountId as string | undefined) : undefined;
      if (!accountId) return clientClaims;
      const claims = await userClaims(deps, accountId);
      // The tools this user may use, decided now (tools/tool-policy.ts): the MCP server lists and runs
      // only these. A removed user has no claims and so no tools.
      const tools = claims ? await deps.toolPolicy.permittedTools(claims) : [];
      return { ...claims, [PERMITTED_TOOLS_CLAIM]: tools, ...clientClaims };
    },
    // tokens/refresh-token-policy.ts: by the client's kind and whether it authenticates. The
    // `offline_access` scope is neither needed nor advertised (MCP SEP-2207 leaves it to the
    // server; oidc-provider drops it from a request of a client without the grant).
    // Given only when some client may get one: oidc-provider then lists refresh_token in
    // grant_types_supported (RFC 8414 §2), which must not advertise a grant nobody can use.
    ...(anyRefreshTokens(config.refreshTokens)
      ? {
          issueRefreshToken: (async (_ctx, client) =>
            client.grantTypeAllowed('refresh_token') &&
            mayHoldRefreshTokens(
              config.refreshTokens,
              (await classifier.classify(client.clientId)).kind,
              client.clientAuthMethod ?? 'none',
            )) satisfies NonNullable<Configuration['issueRefreshToken']>,
        }
      : {}),
    // Rotation with reuse detection: a consumed refresh token presented again revokes the grant,
    // except within the grace window handled by the store (tokens/refresh-grace.ts).
    rotateRefreshToken: true,
    // RFC 7009 §2.1 lets revoking one token revoke its grant; here it does, always: an agent that
    // revokes its access token (logout) loses the whole grant, so no copy of it (a cached phantom
    // token, a refresh token) can be used or exchanged any more. Consent is asked again next time.
    revokeGrantPolicy: () => true,
    ttl: {
      // Issued with a refresh token (a refresh, or the code exchange that issued one): never past
      // the sign-in's absolute end (tokens/refresh-token-policy.ts).
      AccessToken: (ctx, token) =>
        accessTokenTtlWithinSignIn(
          config.refreshTokens,
          token.resourceServer?.accessTokenTTL ?? resources.mcp.accessTokenTtlSeconds,
          (ctx?.oidc?.entities as { RefreshToken?: { iiat?: number } } | undefined)?.RefreshToken?.iiat,
          Math.floor(Date.now() / 1000),
        ),
      ClientCredentials: (_ctx, token) =>
        token.resourceServer?.accessTokenTTL ?? resources.mcp.accessTokenTtlSeconds,
      AuthorizationCode: 60,
      // A pushed request's URI is what an agent prints for the user to open; give them time to.
      PushedAuthorizationRequest: 300,
      // The ID-token ring keeps a retired key published this long and more (keys/retire-after.ts).
      IdToken: ID_TOKEN_TTL_SECONDS,
      Interaction: 900,
      Grant: config.consent.rememberSeconds,
      Session: config.sessionTtlSeconds,
      RefreshToken: (_ctx, token) =>
        refreshTokenTtl(config.refreshTokens, token.iiat, Math.floor(Date.now() / 1000)),
    },
    interactions: {
      url: (_ctx, interaction) => `/interaction/${interaction.uid}`,
      policy: interactionPrompts(resources.isMcpResource, forbiddenScopesOf),
    },
    extraClientMetadata: {
      // The validator runs for every listed property; `software_id` (RFC 7591 §2) is a harmless anchor
      // that lets the registration policy see the whole metadata of each registration.
      properties: ['software_id'],
      validator: (ctx, key, _value, metadata) => {
        const route = ctx?.oidc?.route;
        if (key !== 'software_id' || (route !== 'registration' && route !== 'client_update')) return;
        try {
          applyClientPolicy(metadata as Record<string, unknown>, clientPolicy, 'dcr');
        } catch (error) {
          if (!(error instanceof ClientPolicyError)) throw error;
          // InvalidRedirectUri takes no description: its fixed one speaks of a mismatch at /authorize.
          throw error.error === 'invalid_redirect_uri'
            ? Object.assign(new errors.InvalidRedirectUri(), { error_description: error.message })
            : new errors.InvalidClientMetadata(error.message);
        }
        // oidc-provider decides whether to mint a client_secret from the raw request, before this
        // policy makes an unspecified auth method 'none': a public client must not get one.
        const Client = ctx?.oidc?.provider.Client as unknown as { needsSecret(m: object): boolean };
        if (!Client.needsSecret(metadata)) {
          delete (metadata as Record<string, unknown>).client_secret;
          delete (metadata as Record<string, unknown>).client_secret_expires_at;
        }
      },
    },
    clientBasedCORS: () => true,
    discovery: {
      client_id_metadata_document_supported: config.clientIdMetadataDocuments.enabled,
    } as Configuration['discovery'],
    renderError: async (ctx, out) => {
      ctx.type = 'html';
      ctx.set('content-security-policy', CONTENT_SECURITY_POLICY);
      ctx.set('x-frame-options', 'DENY');
      ctx.body = authorizationErrorPage(out, deps.branding);
    },
    // The gateway's DPoP algorithms (the same configuration file), so a key bound here verifies there.
    enabledJWA: { dPoPSigningAlgValues: [...deps.dpopAlgorithms] },
    features: {
      devInteractions: { enabled: false },
      // The ID-token keys are slots over the ring (keys/id-token-signing.ts), signing through
      // `sign(data)`: oidc-provider's one way to change the key it signs with without being rebuilt.
      externalSigningSupport: { enabled: true, ack: 'experimental-01' },
      // RFC 9449: a token request with a DPoP proof gets a token bound to its key (code, refresh and
      // client credentials); `dpop_bound_access_tokens` clients must send one (config `dpop`).
      dPoP: {
        enabled: true,
        nonceSecret: deps.dpopNonceSecret,
        requireNonce: () => config.dpop.requireNonce,
        allowReplay: false,
      },
      // OpenID Connect RP-Initiated Logout: `end_session_endpoint`, so agents and front ends can sign
      // the user out of the browser session; the question and the answer are pages of ours.
      rpInitiatedLogout: {
        enabled: true,
        logoutSource: async (ctx, form) => {
          const accountId = ctx.oidc.session?.accountId;
          const email = accountId ? await deps.accounts.emailOf(accountId) : undefined;
          ctx.type = 'html';
          // The answer may redirect to the client's post_logout_redirect_uri: no form-action limit.
          ctx.set('content-security-policy', CONTENT_SECURITY_POLICY_REDIRECTING_FORMS);
          ctx.set('x-frame-options', 'DENY');
          ctx.set('cache-control', 'no-store');
          ctx.body = logoutPage({
            form,
            email,
            clientName: ctx.oidc.client?.clientName ?? ctx.oidc.client?.clientId,
            branding: deps.branding,
          });
        },
        postLogoutSuccessSource: async (ctx) => {
          ctx.type = 'html';
          ctx.set('content-security-policy', CONTENT_SECURITY_POLICY);
          ctx.set('x-frame-options', 'DENY');
          ctx.body = signedOutPage({ branding: deps.branding });
        },
      },
      userinfo: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: {
        enabled: true,
        // RFC 7662 §4: introspection is for the gateway only; anyone else learns nothing.
        allowedPolicy: async (ctx, client, token) => {
          const allowed = classifier.configured(client.clientId)?.role === 'gateway';
          if (!allowed) {
            deps.logger.audit('introspection', { outcome: 'denied', client_id: client.clientId, ip: ctx.ip });
            return false;
          }
          // A token whose client is gone (deleted through RFC 7592, or removed from the configuration) is
          // not active. Answering so here also spares oidc-provider, which would look the missing client
          // up and fail with a 500 (and the gateway would answer 503 instead of 401 invalid_token).
          // A CIMD client whose document cannot be fetched any more is treated the same way (fail closed).
          const owner = token.clientId
            ? await ctx.oidc.provider.Client.find(token.clientId).catch(notFoundUnlessUnavailable)
            : undefined;
          if (token.clientId && !owner) return false;
          return true;
        },
      },
      jwtIntrospection: { enabled: true },
      // RFC 7009 §2.1: a client revokes only tokens issued to it.
      revocation: {
        enabled: true,
        // RFC 7009 §2.1: a client revokes only tokens issued to it. A public client asking for another's
        // token gets the same 200 as for an unknown token (§2.2), an authenticated one is told no.
        allowedPolicy: async (_ctx, client, token) => {
          if (token.clientId === client.clientId) return true;
          if (client.clientAuthMethod === 'none') return false;
          throw new errors.InvalidRequest('client is not authorized to revoke the presented token');
        },
      },
      registration: {
        enabled: dcr.enabled,
        initialAccessToken: false,
        issueRegistrationAccessToken: true,
      },
      registrationManagement: { enabled: dcr.enabled, rotateRegistrationAccessToken: true },
      resourceIndicators: {
        enabled: true,
        // Clients that omit `resource` get the MCP server (interoperability, design §4); admin
        // scripts get the admin API, the one resource they may have.
        defaultResource: async (_ctx, client) =>
          client && classifier.configured(client.clientId)?.role === 'admin'
            ? deps.adminAudience
            : resources.mcp.uri,
        useGrantedResource: async () => true,
        getResourceServerInfo: async (_ctx, indicator, client) => {
          const admin = classifier.configured(client.clientId);
          // The admin API's tokens go to admin clients only, and admin clients get nothing else.
          if (admin?.role === 'admin' || indicator === deps.adminAudience) {
            if (admin?.role !== 'admin' || indicator !== deps.adminAudience) throw new errors.InvalidTarget();
            return {
              scope: admin.scopes.join(' '),
              audience: deps.adminAudience,
              accessTokenTTL: Math.min(resources.mcp.accessTokenTtlSeconds, 900),
              accessTokenFormat: 'opaque',
            };
          }
          if (!resources.isMcpResource(indicator)) throw new errors.InvalidTarget();
          const dynamic = (await classifier.classify(client.clientId)).kind === 'dynamic';
          const ttl = dynamic
            ? Math.min(resources.mcp.accessTokenTtlSeconds, dcr.maxAccessTokenTtlSeconds)
            : resources.mcp.accessTokenTtlSeconds;
          return {
            scope: [...resources.mcp.scopes.keys()].join(' '),
            audience: resources.mcp.uri,
            accessTokenTTL: ttl,
            accessTokenFormat: 'opaque',
          };
        },
      },
    },
  };

  const provider = new Provider(deps.issuer, configuration);
  deps.idTokenKeys.registered();

  // The token endpoint's limits decide on the client a request names once its body is parsed and
  // before it authenticates or any grant runs: the route's lookup of that client is the one place
  // oidc-provider offers (http/token-rate-limit.ts).
  const findClient = provider.Client.find.bind(provider.Client);
  provider.Client.find = async (id: string) => {
    await guardClientLookup(Provider.ctx, id, deps.tokenLimits);
    // Disabled: unknown everywhere (authorization, token, introspection of its tokens: inactive).
    if (await deps.isDisabledClient(id)) return undefined;
    return findClient(id);
  };

  // A refresh request's scope wider than the grant is narrowed to it (tokens/refresh-scope.ts).
  narrowRefreshScopes(provider);
  alignGrantsOnRefresh(provider, resources.isMcpResource, forbiddenScopesOf);
  // No refresh token of a sign-in past its absolute lifetime is found (tokens/refresh-absolute-lifetime.ts).
  endRefreshTokensAtAbsoluteLifetime(provider, config.refreshTokens.absoluteLifetimeSeconds);

  // RFC 8252 §7.3 for every client, not only native ones (clients/loopback-redirect.ts).
  provider.Client.prototype.redirectUriAllowed = function redirectUriAllowed(
    this: ClientMetadata,
    value: string,
  ) {
    const registered = (this as unknown as { redirectUris: string[] }).redirectUris ?? [];
    // The pages' own client: exactly its two callbacks on the issuer, never another port of a
    // loopback issuer, so no local program can receive its codes (its consent is implied).
    if ((this as unknown as { clientId: string }).clientId === FIRST_PARTY_CLIENT_ID)
      return registered.includes(value);
    return redirectUriMatches(value, registered);
  };
  return provider;
}
