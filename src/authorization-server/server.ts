/**
 * Starts the authorization server: storage, keys, clients, oidc-provider and the HTTP listener.
 */

import { createHmac } from 'node:crypto';
import type { IncomingMessage, RequestListener } from 'node:http';
import path from 'node:path';
import type Provider from 'oidc-provider';
import type { Adapter, KoaContextWithOIDC } from 'oidc-provider';
import type { LoadedConfig } from '../shared/config/load.ts';
import { resolveSecret } from '../shared/config/secrets.ts';
import { resolveApiScopes } from '../shared/config/tool-api-scopes.ts';
import { type Readiness, serveHealth } from '../shared/health.ts';
import { sendJson } from '../shared/http.ts';
import { type CloseOptions, createHttpServer } from '../shared/http-server.ts';
import { createLogger, type Logger } from '../shared/logging.ts';
import { componentMetrics } from '../shared/metrics.ts';
import { requestIdFrom } from '../shared/request-id.ts';
import { tlsFiles } from '../shared/tls-listener.ts';
import { annotateSpan, componentTracing } from '../shared/tracing.ts';
import { accountRoutes } from './account/account-routes.ts';
import { firstPartyClient, firstPartySignIn } from './account/first-party-sign-in.ts';
import { ADMIN_API_PATH, adminApiRoutes } from './admin/admin-api.ts';
import { asPreRegistered, withRegisteredClients } from './admin/admin-clients.ts';
import { createAdminService } from './admin/admin-service.ts';
import { createAdminTokenCheck } from './admin/admin-token.ts';
import { createApprovalGate } from './admin/approval-gate.ts';
import { auditAdmin } from './admin/audit-admin.ts';
import { consoleRoutes } from './admin/console-routes.ts';
import type { Directory } from './admin/directory.ts';
import { directoryApprovedUsers } from './admin/directory-users.ts';
import { importLocalDirectory } from './admin/import-local-directory.ts';
import { keysAdmin } from './admin/keys-admin.ts';
import { seedDirectory } from './admin/seed.ts';
import { toolsAdmin } from './admin/tools-admin.ts';
import { approvalPages } from './approvals/approval-pages.ts';
import { approvalRequests } from './approvals/approval-requests.ts';
import { type AuditTrail, createAuditTrail, recordAudits } from './audit/audit-trail.ts';
import { toolCallIntake } from './audit/tool-call-intake.ts';
import { createClientClassifier } from './clients/client-classification.ts';
import {
  createClientMetadataDocumentResolver,
  isClientIdMetadataDocumentUrl,
} from './clients/client-metadata-document.ts';
import { classifyClientIdUrl } from './clients/client-trust-policy.ts';
import { withMetadataDocumentClients } from './clients/metadata-document-clients.ts';
import { prepareClients, shareGeneratedClientSecrets } from './clients/static-clients.ts';
import { pinToIssuerOrigin } from './http/issuer-origin.ts';
import {
  defaultScope,
  dpopRequiredError,
  durableWrites,
  oauthMetadataAlias,
  rateLimited,
  registrationCors,
  STORE_UNAVAILABLE,
  securityHeaders,
  storeUnavailable,
  unauthorizedClientGrant,
} from './http/middleware.ts';
import { postgresRateLimiter, purgeRateLimitWindows } from './http/postgres-rate-limit.ts';
import { memoryRateLimiters, type RateLimiterFactory } from './http/rate-limit.ts';
import { isRoute, isUnderRoute } from './http/route-match.ts';
import { tokenRateLimit, tokenRateLimitsFrom } from './http/token-rate-limit.ts';
import { interactionRoutes } from './interactions/routes.ts';
import { type Branding, loadLogo } from './interactions/views/branding.ts';
import { idTokenKeySlots, idTokenSlotCount } from './keys/id-token-signing.ts';
import { jwksEndpoint } from './keys/jwks-endpoint.ts';
import { createKeyManager, type KeyAdministration, type KeyManager } from './keys/key-manager.ts';
import { postgresKeyStore } from './keys/postgres-key-store.ts';
import { ID_TOKEN_RETIRE_AFTER_SECONDS, retireAfterSeconds } from './keys/retire-after.ts';
import type { Accounts } from './login/accounts.ts';
import { subjectFor } from './login/approved-users.ts';
import { createMailer, type DevInbox, invitationMessage } from './login/mailer.ts';
import { loadSubjectKey } from './login/subject-key.ts';
import { migrateSubjects } from './login/subject-migration.ts';
import { createProvider, ROUTES } from './provider.ts';
import { createResourceRegistry } from './resources.ts';
import {
  announceRevocations,
  internalListeners,
  REVOCATION_LOG_MAX_EVENTS,
  revocationRetentionSeconds,
} from './revocation/announce.ts';
import { createSqliteRevocationEventLog } from './revocation/event-log.ts';
import { shareAcrossInstances } from './revocation/instance-notifications.ts';
import { postgresRevocationEventLog } from './revocation/postgres-event-log.ts';
import { storageEncryptionKey } from './store/encryption-key.ts';
import { postgresGeneratedSecrets } from './store/generated-secrets.ts';
import { startHousekeeping } from './store/housekeeping.ts';
import { createMemoryAdapterFactory } from './store/memory-store.ts';
import { DEFAULT_CLOCK_TOLERANCE_SECONDS, type OidcModelStore } from './store/oidc-model-store.ts';
import { isUnavailable } from './store/postgres/connection.ts';
import { sealedBox } from './store/sealed-box.ts';
import { storageLocation } from './store/storage-location.ts';
import { openStore } from './store/store.ts';
import { createAccessTokenSigner } from './tokens/access-token-jwt.ts';
import { phantomTokenMiddleware, removedUsersInactive } from './tokens/phantom-token.ts';
import { withRefreshTokenGrace } from './tokens/refresh-grace.ts';
import { mayHoldRefreshTokens, withRefreshGrantWithinPolicy } from './tokens/refresh-token-policy.ts';
import {
  createTokenExchangeHandler,
  TOKEN_EXCHANGE_GRANT,
  TOKEN_EXCHANGE_PARAMETERS,
  verifyPhantomSubject,
} from './tokens/token-exchange.ts';
import { tagIssuedTokens } from './tokens/token-tags.ts';
import { createToolPolicy } from './tools/tool-policy.ts';

export interface RunningAuthorizationServer {
  issuer: string;
  provider: Provider;
  devInbox: DevInbox | undefined;
  /** Where the generated private key of each pre-registered private_key_jwt client lives. */
  privateKeyFiles: Record<string, string>;
  /** The audit trail: every audit line, kept for `audit.retentionDays` (audit/audit-trail.ts). */
  audit: AuditTrail;
  /**
   * The signing keys (access-token and ID-token rings), for the admin API: `list()` (kid, alg,
   * state, times; nothing private) and `rotate(actor)`, which rotates both rings
   * (keys/key-manager.ts; audited as `keys.rotated`).
   */
  keys: KeyAdministration;
  close(options?: CloseOptions): Promise<void>;
}

export interface StartOptions {
  logger?: Logger;
  /**
   * Where oidc-provider keeps clients, grants, sessions and tokens: `sqlite` (the default: durable,
   * `<dataDir>/gatehouse.db`) or `memory` (oidc-provider's in-memory adapter, lost on restart; the
   * benchmark compares the two). Deliberately not a configuration setting: a deployment never wants it.
   */
  storage?: 'sqlite' | 'memory';
}

const LIVE_TOKEN_MODELS = ['AccessToken', 'ClientCredentials', 'RefreshToken'] as const;

/** Route names for metrics: the provider's routes under the issuer's path, and a few of our own. */
function routeOf(issuerPath: string) {
  const base = issuerPath.replace(/\/$/, '');
  const routes: Array<[string, string, 'exact' | 'under']> = [
    [`${base}${ROUTES.token}`, 'token', 'exact'],
    [`${base}${ROUTES.introspection}`, 'introspection', 'exact'],
    [`${base}${ROUTES.revocation}`, 'revocation', 'exact'],
    [`${base}${ROUTES.registration}`, 'registration', 'under'],
    [`${base}${ROUTES.authorization}`, 'authorization', 'under'],
    [`${base}${ROUTES.jwks}`, 'jwks', 'exact'],
    [`${base}/interaction`, 'interaction', 'under'],
    [`${base}/events/tool-calls`, 'tool_call_reports', 'exact'],
    [`${base}/events`, 'revocation_events', 'under'],
    [`${base}/session/end`, 'end_session', 'under'],
    ['/.well-known', 'metadata', 'under'],
    [`${base}/.well-known`, 'metadata', 'under'],
    ['/dev', 'development_inbox', 'under'],
    [`${base}/admin/api`, 'admin_api', 'under'],
    [`${base}/admin`, 'admin_console', 'under'],
    [`${base}/account`, 'account', 'under'],
    ['/healthz', 'health', 'exact'],
    ['/readyz', 'health', 'exact'],
  ];
  return (req: IncomingMessage): string => {
    const path = (req.url ?? '').split('?', 1)[0]!;
    for (const [route, name, match] of routes) {
      if (match === 'exact' ? isRoute(path, route) : isUnderRoute(path, route)) return name;
    }
    return 'other';
  };
}

function defaultPort(url: URL): number {
  if (url.port) return Number(url.port);
  return url.protocol === 'https:' ? 443 : 80;
}

export async function startAuthorizationServer(
  loaded: LoadedConfig,
  options: StartOptions = {},
): Promise<RunningAuthorizationServer> {
  const config = loaded.config.authorizationServer;
  const metrics = componentMetrics('authorization-server', loaded);
  // Every audit line (tokens issued, sign-ins, consents, registrations, ...) is also counted, and,
  // once the database is open, kept in the audit trail.
  let logger = metrics.countAudits(
    options.logger ?? createLogger('authorization-server', { level: loaded.config.logLevel }),
  );
  const configuredIssuer = new URL(config.issuer);
  // Listen first, so that port 0 can put the real port into the issuer before the provider exists;
  // until the provider is ready, requests get 503 (RFC 9110 §15.6.4).
  let app: RequestListener | undefined;
  let readiness: () => Promise<Readiness> = async () => ({ starting: { ok: false } });
  const routes = routeOf(new URL(config.issuer).pathname);
  // A trace context that comes in is continued: the MCP server's token exchange is part of a tool
  // call's trace. Agents calling directly may name one too (docs/security.md, Traces).
  const tracing = await componentTracing('authorization-server', loaded);
  const http = createHttpServer(
    metrics.instrument(
      tracing.instrument(
        (req, res) => {
          if (serveHealth(req, res, (req.url ?? '').split('?', 1)[0]!, () => readiness())) return;
          if (app) return app(req, res);
          sendJson(res, 503, { error: 'temporarily_unavailable' }, { 'retry-after': '1' });
        },
        routes,
        { untraced: ['health', 'revocation_events'] },
      ),
      routes,
    ),
    loaded.config.http,
    logger,
    { tls: tlsFiles(config.listen.tls, loaded.file, 'authorizationServer.listen.tls') },
  );
  const wantedPort = config.listen.port ?? defaultPort(configuredIssuer);
  const port = await http.listen(
    config.listen.host,
    wantedPort,
    'authorizationServer.listen.port (and authorizationServer.issuer)',
  );
  if (config.listen.port === 0) configuredIssuer.port = String(port);
  const issuer = configuredIssuer.href.replace(/\/$/, '');

  const { store, sealed } = await (async () => {
    const location = storageLocation(loaded);
    // With PostgreSQL, keys and generated secrets are sealed in the database with this key; without
    // it the start stops here, saying how to make one (store/encryption-key.ts).
    const sealed = location.kind === 'postgres' ? sealedBox(storageEncryptionKey(loaded)) : undefined;
    const store = await openStore(location, { dataDir: loaded.dataDir, backgroundCheckpoints: true, logger });
    return { store, sealed };
  })().catch(async (error: unknown) => {
    await http.close({ deadline: Date.now() });
    await tracing.shutdown();
    throw error;
  });
  const db = store.sqlite;
  // Failures to write the trail go to the plain logger: they are errors, not audit events.
  const audit = createAuditTrail(store.audit, { retentionDays: config.audit.retentionDays, logger });
  logger = recordAudits(logger, audit);
  // Keys and generated secrets: in the shared database with PostgreSQL, in the data directory otherwise.
  const sharedSecrets =
    store.postgres && sealed ? postgresGeneratedSecrets(store.postgres, sealed) : undefined;
  let keyManager: KeyManager | undefined;
  try {
    // Never changes: every subject is derived with it (login/approved-users.ts, subjectFor). First:
    // its lost-key check (accounts but no key) also stops an instance with a new data directory
    // started first on a database that still lacks this deployment's keys, before it puts new keys
    // and secrets there in place of those of the data directory it should have imported.
    const subjectKey = await loadSubjectKey(loaded.dataDir, {
      sqlite: db,
      accounts: store.accounts,
      shared: sharedSecrets,
    });
    const keys = await createKeyManager({
      dataDir: loaded.dataDir,
      ...(store.postgres && sealed ? { store: postgresKeyStore(store.postgres, sealed) } : {}),
      retireAfterSeconds: retireAfterSeconds(config),
      idTokenRetireAfterSeconds: ID_TOKEN_RETIRE_AFTER_SECONDS,
      publishBeforeUseSeconds: config.keys.publishBeforeUseSeconds,
      rotateEverySeconds:
        config.keys.rotateEveryDays === false ? undefined : config.keys.rotateEveryDays * 86400,
      logger: logger.child({ part: 'keys' }),
    });
    keyManager = keys;
    const resources = createResourceRegistry(config);
    // The configured clients, and the server's own pages (/account, /admin) as a first-party client.
    const allClients = [...config.clients, firstPartyClient(issuer)];
    if (sharedSecrets) await shareGeneratedClientSecrets(allClients, loaded.dataDir, sharedSecrets);
    const clients = await prepareClients(allClients, loaded.dataDir, {
      dpopRequired: config.dpop.preRegistered === 'required',
      refreshTokens: (authMethod) => mayHoldRefreshTokens(config.refreshTokens, 'pre-registered', authMethod),
    });
    const cimd = config.clientIdMetadataDocuments;
    // What administrators change at run time; the configuration file seeds it (admin/seed.ts).
    // In the store: with PostgreSQL, one directory for every instance.
    const directory = store.directory;
    // An upgrade from a version that kept it in this data directory's SQLite file: copied first,
    // so that the file's seeding does not bring back what an administrator removed.
    if (store.postgres) await importLocalDirectory(store.sqlite, store.postgres, logger);
    const seeded = await seedDirectory(directory, config);
    if (seeded.users + seeded.domains + seeded.trustedDomains + seeded.removed > 0)
      logger.info('the directory follows the configuration file', { ...seeded });
    const isDocumentUrl = (clientId: string) =>
      cimd.enabled && isClientIdMetadataDocumentUrl(clientId, { allowLoopbackHttp: cimd.allowLoopbackHttp });
    // Trusted domains are the directory's (an administrator edits them); denied ones the file's.
    // Asked of the store at each use: a domain trusted at another instance holds here at once.
    const trustOf = async (clientId: string) =>
      classifyClientIdUrl(clientId, {
        ...cimd,
        trustedDomains: (await directory.trustedDomains.list()).map((entry) => entry.domain),
      });
    const classifier = createClientClassifier(
      allClients,
      isDocumentUrl,
      async (id) => (await trustOf(id)) === 'trusted',
      async (id) => {
        const registered = await directory.registeredClients.get(id);
        return registered ? asPreRegistered(registered) : undefined;
      },
    );
    const resolver = createClientMetadataDocumentResolver({
      allowLoopbackHttp: cimd.allowLoopbackHttp,
      maxBytes: cimd.maxBytes,
      timeoutMs: cimd.timeoutMs,
      cacheMaxEntries: cimd.cacheMaxEntries,
      failureBackoffSeconds: cimd.failureBackoffSeconds,
      logger: logger.child({ part: 'client-metadata-document' }),
    });
    const clientPolicy = {
      allowedScopes: new Set(['openid', ...resources.mcp.scopes.keys()]),
      refreshTokens: (source: 'dcr' | 'cimd', authMethod: string) =>
        mayHoldRefreshTokens(config.refreshTokens, source === 'dcr' ? 'dynamic' : 'cimd', authMethod),
      allowLoopbackHttp: cimd.allowLoopbackHttp,
      dpopRequired: {
        dcr: config.dpop.dynamic === 'required',
        cimd: config.dpop.metadataDocument === 'required',
      },
    };
    const storeAdapter =
      options.storage === 'memory'
        ? await createMemoryAdapterFactory(DEFAULT_CLOCK_TOLERANCE_SECONDS)
        : store.oidc.adapter;
    if (options.storage === 'memory') {
      logger.warn('in-memory token store: clients, grants and tokens are lost on restart (benchmarks only)');
    }
    const adapter = (model: string): Adapter => {
      const base = storeAdapter(model);
      if (model === 'Client') {
        return withRefreshGrantWithinPolicy(
          withMetadataDocumentClients(withRegisteredClients(base, directory), {
            resolver,
            isDocumentUrl,
            trustOf,
            policy: clientPolicy,
            logger,
          }),
          config.refreshTokens,
        );
      }
      if (model === 'RefreshToken')
        return withRefreshTokenGrace(base, config.refreshTokens.reuseGraceSeconds, {
          onReuse: (grantId) => revokeReusedGrant(grantId),
        });
      return base;
    };

    // The organization's name, contact and logo on the pages (interactions/views/branding.ts).
    const logo = config.branding.logoFile
      ? loadLogo(config.branding.logoFile, loaded.file ? path.dirname(loaded.file) : process.cwd())
      : undefined;
    const branding: Branding = {
      organizationName: config.branding.organizationName,
      supportContact: config.branding.supportContact,
      logo: logo !== undefined,
    };
    const accounts = store.accounts;
    const approvedUsers = directoryApprovedUsers(directory, {
      subjectKey,
      administrators: config.administrators,
    });
    // Only SQLite installations can hold subjects from before the subject key (unkeyed hashes): the
    // PostgreSQL store came later, so every subject it ever stored was keyed. The migration
    // rewrites the SQLite tables in one transaction and stays there (login/subject-migration.ts).
    const migrated =
      store.location.kind === 'sqlite'
        ? migrateSubjects(db, (email) => subjectFor(email, subjectKey))
        : { moved: 0, consentsMerged: 0 };
    if (migrated.moved > 0)
      logger.warn('subjects moved to keyed identifiers (HMAC with secrets/subject.key)', {
        accounts: migrated.moved,
        consent_records_merged: migrated.consentsMerged,
        consequence: 'clients that stored a user subject will see a new one for these users, once',
      });
    const derivedKey = (purpose: string) =>
      createHmac('sha256', keys.cookieKeys[0]!).update(purpose).digest();
    const codes = store.oneTimeCodes({
      ttlSeconds: config.login.codeTtlSeconds,
      maxAttempts: config.login.maxAttempts,
      perEmail: config.login.perEmail,
      perAddress: config.login.perAddress,
      secret: derivedKey('gatehouse one-time codes'),
    });
    const smtp = config.mail.smtp;
    const mailer = createMailer(
      smtp
        ? {
            smtp: {
              host: smtp.host,
              port: smtp.port,
              secure: smtp.secure,
              from: config.mail.from,
              ...(smtp.user ? { user: smtp.user } : {}),
              ...(smtp.password ? { password: resolveSecret(smtp.password, loaded.dataDir) } : {}),
            },
          }
        : { devInbox: store.devInbox },
      logger.child({ part: 'mail' }),
    );

    // With PostgreSQL the windows are shared: N per window in total, whichever instance is asked.
    const sharedDb = store.postgres;
    const limiter: RateLimiterFactory = sharedDb
      ? (scope, limit) => postgresRateLimiter(sharedDb, scope, limit)
      : memoryRateLimiters;
    const tokenLimits = tokenRateLimitsFrom(config.tokenEndpointRateLimit, classifier, limiter);
    const adminAudience = `${issuer}${ADMIN_API_PATH}`;
    const isDisabledClient = async (clientId: string) =>
      (await directory.clients.disabledSince(clientId)) !== undefined;
    /**
     * A refresh token used past its grace by a use that raced others (tokens/refresh-grace.ts): the
     * same revocation as oidc-provider's own on reuse (lib/helpers/revoke.js), event included, so
     * the gateways and the consent index hear of it.
     */
    const revokeReusedGrant = async (grantId: string): Promise<void> => {
      await Promise.all([
        provider.AccessToken.revokeByGrantId(grantId),
        provider.RefreshToken.revokeByGrantId(grantId),
        provider.AuthorizationCode.revokeByGrantId(grantId),
        provider.Grant.adapter.destroy(grantId),
      ]);
      provider.emit('grant.revoked', undefined, grantId);
    };
    const toolPolicy = createToolPolicy(loaded.config.mcpServer.tools, directory.toolRules);
    const approvalTools = new Set(
      loaded.config.mcpServer.tools.filter((tool) => tool.approval === 'required').map((tool) => tool.name),
    );
    const provider = createProvider({
      toolPolicy,
      adminAudience,
      isDisabledClient,
      tokenLimits,
      clientPolicy,
      branding,
      issuer,
      config,
      db,
      adapter,
      idTokenKeys: idTokenKeySlots(
        keys.idTokenKeys,
        idTokenSlotCount(ID_TOKEN_RETIRE_AFTER_SECONDS, config.keys.publishBeforeUseSeconds),
      ),
      cookieKeys: keys.cookieKeys,
      dpopNonceSecret: derivedKey('gatehouse dpop nonces'),
      dpopAlgorithms: loaded.config.gateway.dpop.algorithms,
      clients,
      classifier,
      resources,
      approvedUsers,
      accounts,
      logger,
    });
    // Koa reads the scheme from X-Forwarded-Proto and the address from X-Forwarded-For; both are set
    // or cleaned by pinToIssuerOrigin before a request reaches it (http/issuer-origin.ts).
    provider.proxy = true;
    provider.maxIpsCount = 1;
    const pinOrigin = pinToIssuerOrigin({ issuer, trustProxy: config.trustProxy });

    // A subject that signed in as a user (it has an account) but is no longer approved: the rule of
    // userClaims (provider.ts) for an account whose address is known.
    const removedUser = async (sub: string, email: string) => (await approvedUsers.find(email))?.sub !== sub;
    // Asked at each introspection and token exchange, and awaited there: the account is read from the
    // store (shared by every instance with PostgreSQL), never from a cache that could let a user
    // removed at another instance through. A store that cannot answer fails the request (503).
    const isRemovedUser = async (sub: string) => {
      const email = await accounts.emailOf(sub);
      return email !== undefined && (await removedUser(sub, email));
    };
    const sign = createAccessTokenSigner(issuer, keys.signingKey);
    const tokenTagKey = derivedKey('gatehouse opaque token tags');
    // With PostgreSQL, an instance's revocations also reach the listeners of the others (NOTIFY).
    const shared = store.postgres
      ? await shareAcrossInstances(await postgresRevocationEventLog(store.postgres), store.postgres, logger)
      : undefined;
    const revocationLog = shared?.log ?? createSqliteRevocationEventLog(db);
    tagIssuedTokens(provider, tokenTagKey);
    provider.registerGrantType(
      TOKEN_EXCHANGE_GRANT,
      createTokenExchangeHandler(provider, {
        issuer,
        resources,
        policies: config.tokenExchange,
        verificationKey: keys.verificationKey,
        sign,
        logger,
        isRemovedUser,
        isRevokedToken: (hash) => revocationLog.hasToken(hash),
        isClientRemovedSince: (clientId, at) => revocationLog.hasClientSince(clientId, at),
        tools: new Map(
          resolveApiScopes(loaded.config).map((tool) => [
            tool.name,
            {
              audience: loaded.config.mcpServer.apis[tool.api]!.audience,
              apiScopes: tool.apiScopes,
              amountArgument: tool.amountArgument,
            },
          ]),
        ),
        approvalTools,
        approvals: store.operationApprovals,
      }) as never,
      TOKEN_EXCHANGE_PARAMETERS,
    );

    // Outermost: a store that cannot answer makes a 503, whatever route was asked.
    provider.use(storeUnavailable(logger));
    // Every answer, success or error, waits for the writes it depends on.
    provider.use(durableWrites(logger, store.requestWrites));
    provider.use(securityHeaders());
    provider.use(jwksEndpoint(ROUTES.jwks, keys.jwks, config.keys.publishBeforeUseSeconds));
    provider.use(oauthMetadataAlias(new URL(issuer).pathname));
    provider.use(registrationCors(ROUTES.registration));
    provider.use(
      rateLimited(
        ROUTES.registration,
        limiter('registration', config.dynamicRegistration.rateLimit),
        logger,
        'client.registration',
      ),
    );
    provider.use(tokenRateLimit(ROUTES.token, tokenLimits, logger));
    provider.use(defaultScope(ROUTES.authorization, resources.mcp.baseScopes));
    provider.use(unauthorizedClientGrant(ROUTES.token));
    provider.use(dpopRequiredError(ROUTES.token));
    provider.use(phantomTokenMiddleware(ROUTES.introspection, resources, sign));
    provider.use(removedUsersInactive(ROUTES.introspection, isRemovedUser));
    let revocations: ReturnType<typeof announceRevocations>;
    const adminService = createAdminService({
      oidc: store.oidc,
      provider,
      directory,
      accounts,
      subjectKey,
      isAdministrator: approvedUsers.isAdministrator,
      classifier,
      staticClients: clients,
      isDocumentUrl,
      mcpResource: resources.mcp.uri,
      announce: (event) => revocations.announce(event),
      mailer,
      invitation: (email) => invitationMessage(email, branding.organizationName, issuer),
      mcpScopes: new Set(resources.mcp.scopes.keys()),
      dpopRequired: config.dpop.preRegistered === 'required',
      refreshTokens: (authMethod) => mayHoldRefreshTokens(config.refreshTokens, 'pre-registered', authMethod),
      logger,
    });
    const mcpServerClients = new Map(
      [...internalListeners(clients)].filter(([id]) => classifier.configured(id)?.role === 'mcp-server'),
    );
    // The MCP server's requests for a user's approval of one tool call (approvals/).
    provider.use(
      approvalRequests({
        issuer,
        mcpServers: mcpServerClients,
        approvalTools,
        approvals: store.operationApprovals,
        ttlSeconds: config.operationApprovals.ttlSeconds,
        verifySubject: (token) =>
          verifyPhantomSubject(token, { issuer, mcpUri: resources.mcp.uri, key: keys.verificationKey }),
        // As token exchange checks a subject: grant there, token and client not revoked, user approved.
        stillAllowed: async (subject) => {
          const grant = subject.grantId ? await provider.Grant.find(subject.grantId) : undefined;
          if (!grant || grant.accountId !== subject.sub || grant.clientId !== subject.clientId) return false;
          if (subject.tokenHash && (await revocationLog.hasToken(subject.tokenHash))) return false;
          if (await revocationLog.hasClientSince(subject.clientId, subject.issuedAt ?? 0)) return false;
          return !(await isRemovedUser(subject.sub));
        },
        logger,
      }),
    );
    // The MCP server's reports of every tool call it served: records of the audit trail.
    provider.use(
      toolCallIntake({
        mcpServers: mcpServerClients,
        record: (event, fields) => audit.record(event, fields),
        logger,
      }),
    );
    const keysForAdmins = keysAdmin({ list: keys.list, rotate: keys.rotate });
    const toolsForAdmins = toolsAdmin({ policy: toolPolicy, rules: directory.toolRules, logger });
    const auditForAdmins = auditAdmin({
      trail: audit,
      accounts,
      subjectKey,
      apis: config.resources.apis.map((api) => ({ name: api.name, audience: api.audience })),
    });
    provider.use(
      adminApiRoutes({
        extensions: [...auditForAdmins.api, ...keysForAdmins.api, ...toolsForAdmins.api],
        service: adminService,
        authenticate: createAdminTokenCheck({
          provider,
          classifier,
          audience: adminAudience,
          isDisabledClient,
        }),
        issuer,
        logger,
      }),
    );
    const signIn = firstPartySignIn({ provider, issuer, csrfKey: derivedKey('gatehouse pages csrf') });
    const devBanner = mailer.devInbox !== undefined || cimd.allowLoopbackHttp;
    provider.use(
      consoleRoutes({
        extensions: [toolsForAdmins.console, keysForAdmins.console, auditForAdmins.console],
        signIn,
        service: adminService,
        accounts,
        isAdministrator: approvedUsers.isAdministrator,
        branding,
        devBanner,
        logger,
      }),
    );
    provider.use(
      approvalPages({
        signIn,
        approvals: store.operationApprovals,
        accounts,
        classifier,
        clientName: async (clientId) => (await provider.Client.find(clientId))?.clientName,
        grantStands: async (grantId, sub) => (await provider.Grant.find(grantId))?.accountId === sub,
        ttlSeconds: config.operationApprovals.ttlSeconds,
        tools: new Map(loaded.config.mcpServer.tools.map((tool) => [tool.name, tool])),
        branding,
        devBanner,
        logger,
      }),
    );
    provider.use(
      accountRoutes({
        signIn,
        service: adminService,
        accounts,
        classifier,
        describeScope: (name) => resources.mcp.scopes.get(name) ?? name,
        isAdministrator: approvedUsers.isAdministrator,
        branding,
        devBanner,
        logger,
      }),
    );
    provider.use(
      interactionRoutes({
        approvalGate: createApprovalGate({
          policy: config.clientApproval,
          directory,
          classifier,
          provider,
          logger,
        }),
        provider,
        issuer,
        csrfKey: derivedKey('gatehouse csrf'),
        approvedUsers,
        accounts,
        codes,
        mailer,
        classifier,
        resources,
        codeTtlSeconds: config.login.codeTtlSeconds,
        devBanner,
        branding,
        logo,
        logger,
      }),
    );
    subscribeAuditEvents(
      provider,
      logger,
      store.oidc,
      accounts,
      directory,
      (id) => id !== undefined && classifier.configured(id)?.role === 'mcp-server',
    );
    // RFC 7592 deletion removes the client's record only: its grants and tokens go with it here
    // (the revocation announcement tells the caches; announce.ts).
    provider.on('registration_delete.success', (_ctx: unknown, client: { clientId: string }) => {
      store.oidc.removeClientRows(client.clientId).catch((error: unknown) =>
        logger.error('the rows of a deleted client were not removed', {
          client_id: client.clientId,
          error: (error as Error).message,
        }),
      );
    });
    // Declared before the admin service's first use (a request), assigned here once the provider has
    // its middleware in order: the revocation stream's route comes after the pages'.
    revocations = announceRevocations(
      provider,
      revocationLog,
      internalListeners(clients),
      logger,
      // The gateways check the tags of the tokens they are sent with this key (tokens/token-tags.ts).
      { token_tag_key: tokenTagKey.toString('base64url') },
    );
    shared?.onGap(() => revocations.stream.closeAll());
    // A user removed from the configuration since the last start: their tokens die everywhere now.
    for (const [sub, email] of await accounts.emailsOf(await accounts.subjects())) {
      if (await removedUser(sub, email))
        await revocations.announce({ type: 'subject', sub, at: Math.floor(Date.now() / 1000) });
    }

    await store.oidc.purgeExpired();
    await codes.purgeExpired();
    // At start and then every minute: drop retired keys past their time, rotate when due.
    await keys.maintain();
    const stopKeySchedule = keys.startSchedule();
    // Approvals that ended (used, or expired) an hour ago go: the trail keeps what happened.
    const approvalPurge = setInterval(() => {
      store.operationApprovals
        .purge(Date.now() - 3_600_000)
        .catch((error: unknown) =>
          logger.warn('ended approvals were not purged', { error: (error as Error).message }),
        );
    }, 60_000);
    approvalPurge.unref();
    const stopHousekeeping = startHousekeeping(store.oidc, {
      purgeIntervalMs: 60_000,
      unusedClientSeconds: config.dynamicRegistration.removeUnusedAfterSeconds,
      onRemoved: ({ clientIds }) => {
        codes
          .purgeExpired()
          .catch((error: unknown) =>
            logger.warn('expired sign-in codes were not purged', { error: (error as Error).message }),
          );
        const at = Math.floor(Date.now() / 1000);
        for (const clientId of clientIds)
          void revocations.announce({ type: 'client', client_id: clientId, at });
        for (const clientId of clientIds) {
          logger.audit('client.removed', { outcome: 'success', client_id: clientId, reason: 'unused' });
        }
      },
      onError: (error) => logger.error('housekeeping failed', { error: (error as Error).message }),
    });
    // Revocations are kept while a token they concern may still be alive: a listener that starts
    // over (a restarted MCP server) learns them again after its `reset`, and token exchange checks
    // `token` events. The cap bounds what a storm of revocations can make every listener replay.
    const retainSeconds = revocationRetentionSeconds(resources.mcp.accessTokenTtlSeconds);
    // Rate-limit windows that are over, in the shared store (memory windows are an LRU).
    const pruneRateLimits = setInterval(() => {
      if (sharedDb)
        purgeRateLimitWindows(sharedDb).catch((error: unknown) =>
          logger.warn('expired rate-limit windows were not purged', { error: (error as Error).message }),
        );
    }, 60_000);
    pruneRateLimits.unref();
    const pruneRevocations = setInterval(async () => {
      try {
        const early = await revocations.log.prune(retainSeconds, REVOCATION_LOG_MAX_EVENTS);
        if (early > 0)
          logger.warn('revocation log full: events still relevant were forgotten', {
            forgotten: early,
            kept: REVOCATION_LOG_MAX_EVENTS,
            consequence:
              'an MCP server restarted now may accept phantom tokens of those revocations until they expire',
          });
      } catch (error) {
        logger.warn('the revocation log was not pruned', { error: (error as Error).message });
      }
    }, 60_000);
    pruneRevocations.unref();
    const pruneAudit = async () => {
      try {
        const pruned = await audit.prune();
        if (pruned > 0) logger.info('audit records past their retention deleted', { records: pruned });
      } catch (error) {
        logger.error('audit retention prune failed', { error: (error as Error).message });
      }
    };
    void pruneAudit();
    const pruneAuditHourly = setInterval(() => void pruneAudit(), 3_600_000);
    pruneAuditHourly.unref();

    readiness = async () => ({
      store: await store.check(),
      mail: await mailer.ready(),
      keys: keys.check(),
    });
    metrics.gauge(
      'gatehouse_revocation_listeners',
      'Gateways and MCP servers listening to the revocation announcements now.',
      { collect: (gauge) => gauge.set(revocations.stream.open) },
    );
    if (options.storage !== 'memory') {
      metrics.gauge(
        'gatehouse_live_tokens',
        'Unexpired access tokens (user and client credentials) and refresh tokens in the store.',
        {
          labelNames: ['kind'],
          collect: async (gauge) => {
            const rows = await store.oidc.countLiveRows(LIVE_TOKEN_MODELS);
            for (const model of LIVE_TOKEN_MODELS) gauge.set({ kind: model }, rows[model] ?? 0);
          },
        },
      );
      metrics.gauge(
        'gatehouse_registered_clients',
        'Clients registered dynamically (DCR) and kept in the store.',
        {
          collect: async (gauge) => gauge.set((await store.oidc.countLiveRows(['Client'])).Client ?? 0),
        },
      );
    }

    const callback = provider.callback();
    app = (req, res) => {
      pinOrigin(req);
      return callback(req, res);
    };
    logger.info('authorization server listening', {
      issuer,
      address: `${config.listen.host}:${port}`,
      store: store.description,
    });
    if (mailer.devInbox)
      logger.warn('development inbox enabled (no SMTP configured)', { url: `${issuer}/dev/inbox` });

    let closing: Promise<void> | undefined;
    const privateKeyFiles = Object.fromEntries(
      clients.flatMap((client) =>
        client.privateKeyFile ? [[client.config.clientId, client.privateKeyFile]] : [],
      ),
    );
    return {
      issuer,
      provider,
      devInbox: mailer.devInbox,
      privateKeyFiles,
      audit,
      keys: { list: keys.list, rotate: keys.rotate },
      close(options) {
        // Once: a launcher or a test may close a server that is already closed.
        closing ??= (async () => {
          stopHousekeeping();
          clearInterval(approvalPurge);
          stopKeySchedule();
          await keys.close();
          clearInterval(pruneRevocations);
          clearInterval(pruneRateLimits);
          clearInterval(pruneAuditHourly);
          // The revocation streams never end by themselves: end them, so the drain is not held up.
          revocations.stream.closeAll();
          await shared?.stop();
          await http.close(options);
          await audit.flush();
          await store.close();
          await tracing.shutdown();
        })();
        return closing;
      },
    };
  } catch (error) {
    await keyManager?.close();
    await http.close({ deadline: Date.now() });
    await audit.flush();
    await store.close();
    await tracing.shutdown();
    throw error;
  }
}

/**
 * The agent request's id, when the MCP server named it (src/shared/request-id.ts). Agents call the
 * authorization server directly, so a header from anyone else is not taken: it would let any caller
 * write ids into the audit trail.
 */
function requestIdField(
  ctx: KoaContextWithOIDC,
  isMcpServer: (clientId: string | undefined) => boolean,
): { request_id?: string } {
  if (!isMcpServer(ctx.oidc?.client?.clientId)) return {};
  const id = requestIdFrom(ctx.req.headers);
  return id ? { request_id: id } : {};
}

/** The token request's span (shared/tracing.ts): grant type, client and request id, never a token. */
function grantSpanAttributes(
  ctx: KoaContextWithOIDC,
  isMcpServer: (clientId: string | undefined) => boolean,
): void {
  annotateSpan({
    'gatehouse.grant_type': ctx.oidc?.params?.grant_type as string | undefined,
    'gatehouse.client_id': ctx.oidc?.client?.clientId,
    'gatehouse.request_id': requestIdField(ctx, isMcpServer).request_id,
  });
}

/** One audit line per security event (issue: subject, client, outcome; never a token). */
function subscribeAuditEvents(
  provider: Provider,
  logger: Logger,
  oidc: OidcModelStore,
  accounts: Accounts,
  directory: Directory,
  isMcpServer: (clientId: string | undefined) => boolean,
) {
  provider.on('grant.success', (ctx: KoaContextWithOIDC) => {
    const token = ctx.oidc.entities.AccessToken ?? ctx.oidc.entities.ClientCredentials;
    const clientId = ctx.oidc.client?.clientId;
    if (clientId) {
      oidc
        .recordClientUse(clientId)
        .catch((error: unknown) =>
          logger.warn('the last use of a client was not recorded', { error: (error as Error).message }),
        );
      // For the console's client list (CIMD clients have no row of their own) and "last used".
      directory.clients
        .recordSeen(clientId, ctx.oidc.client?.clientName)
        .catch((error: unknown) =>
          logger.warn('a client was not recorded as seen', { error: (error as Error).message }),
        );
    }
    const grantId = token && 'grantId' in token ? (token.grantId as string | undefined) : undefined;
    if (grantId)
      accounts
        .touchGrant(grantId)
        .catch((error: unknown) =>
          logger.warn('the last use of a grant was not recorded', { error: (error as Error).message }),
        );
    grantSpanAttributes(ctx, isMcpServer);
    logger.audit('token.issued', {
      outcome: 'success',
      ...requestIdField(ctx, isMcpServer),
      grant_type: ctx.oidc.params?.grant_type,
      client_id: clientId,
      sub: token && 'accountId' in token ? token.accountId : undefined,
      scope: token?.scope,
      // The consent it rests on (a user's token; a client's own token has no grant).
      grant_id: token && 'grantId' in token ? token.grantId : undefined,
    });
  });
  provider.on('grant.error', (ctx: KoaContextWithOIDC, error: { error?: string }) => {
    grantSpanAttributes(ctx, isMcpServer);
    if (error.error) annotateSpan({ 'gatehouse.oauth_error': error.error });
    logger.audit('token.issued', {
      outcome: 'failure',
      ...requestIdField(ctx, isMcpServer),
      grant_type: ctx.oidc?.params?.grant_type,
      client_id: ctx.oidc?.client?.clientId,
      error: error.error,
    });
  });
  provider.on('authorization.error', (ctx: KoaContextWithOIDC, error: { error?: string }) => {
    logger.audit('authorization', {
      outcome: 'failure',
      client_id: ctx.oidc?.client?.clientId,
      error: error.error,
    });
  });
  provider.on('registration_create.success', (ctx: KoaContextWithOIDC, client: { clientId: string }) => {
    logger.audit('client.registered', { outcome: 'success', client_id: client.clientId, ip: ctx.ip });
  });
  provider.on('registration_create.error', (ctx: KoaContextWithOIDC, error: { error?: string }) => {
    logger.audit('client.registered', { outcome: 'failure', ip: ctx.ip, error: error.error });
  });
  provider.on('introspection.error', (ctx: KoaContextWithOIDC, error: { error?: string }) => {
    logger.audit('introspection', {
      outcome: 'failure',
      client_id: ctx.oidc?.client?.clientId,
      error: error.error,
    });
  });
  provider.on('revocation.error', (ctx: KoaContextWithOIDC, error: { error?: string }) => {
    logger.audit('token.revoked', {
      outcome: 'failure',
      client_id: ctx.oidc?.client?.clientId,
      error: error.error,
    });
  });
  for (const model of ['access_token', 'refresh_token', 'client_credentials'] as const) {
    // Model events are not in the library's typed event map.
    const on = provider.on.bind(provider) as (
      event: string,
      listener: (token: { clientId?: string; accountId?: string }) => void,
    ) => void;
    on(`${model}.destroyed`, (token) => {
      logger.audit('token.revoked', {
        outcome: 'success',
        kind: model,
        client_id: token.clientId,
        sub: token.accountId,
      });
    });
  }
  provider.on('grant.revoked', (_ctx: KoaContextWithOIDC, grantId: string) => {
    // An event listener cannot be awaited. Should the write fail, the index keeps a grant that is
    // gone: harmless, as loadExistingGrant (provider.ts) uses only a grant that still exists.
    accounts
      .forgetGrant(grantId)
      .catch((error: unknown) =>
        logger.warn('a revoked grant stays in the consent index', { error: (error as Error).message }),
      );
    logger.audit('grant.revoked', { outcome: 'success', grant_id: grantId });
  });
  provider.on('server_error', (ctx: KoaContextWithOIDC, error: Error) => {
    // The answer becomes a 503 (http/middleware.ts, storeUnavailable), logged there.
    if (isUnavailable(error)) {
      ctx.state[STORE_UNAVAILABLE] = error;
      return;
    }
    logger.error('server error', { error: error.message, stack: error.stack });
  });
}
