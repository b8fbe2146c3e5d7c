/**
 * Starts the MCP server: Protected Resource Metadata, the authenticated /mcp endpoint and the tools
 * from configuration, on one HTTP listener (by default 127.0.0.1:8001, behind the gateway).
 *
 * A request to /mcp passes, in order: the `Origin` check (browsers only; 403 otherwise), the bearer
 * token (401 challenge when missing or invalid), then the SDK (JSON-RPC, the per-tool 403 scope
 * challenge, input validation) and finally the tool, which exchanges the token and calls the API.
 */

import type { IncomingMessage, ServerResponse } from 'node:http';
import { originValidation } from '@modelcontextprotocol/node';
import type { AuthInfo } from '@modelcontextprotocol/server';
import type { ComponentOptions, RunningComponent, StartComponent } from '../shared/component.ts';
import type { LoadedConfig } from '../shared/config/load.ts';
import { revocationsCheck, serveHealth } from '../shared/health.ts';
import { sendJson } from '../shared/http.ts';
import { createHttpServer } from '../shared/http-server.ts';
import { SigningKeysUnavailableError } from '../shared/jwt.ts';
import { createLogger } from '../shared/logging.ts';
import { componentMetrics } from '../shared/metrics.ts';
import { REQUEST_ID_HEADER, requestIdOf } from '../shared/request-id.ts';
import { tlsFiles } from '../shared/tls-listener.ts';
import { componentTracing } from '../shared/tracing.ts';
import { createApprovalClient } from './approval-client.ts';
import {
  dpopChallenge,
  invalidTokenResponse,
  sendMissingTokenChallenge,
  sendWebResponse,
} from './challenges.ts';
import { readJsonRpcBody } from './json-rpc-body.ts';
import { createMcpEndpoint, MAX_REQUEST_BODY_BYTES } from './mcp-endpoint.ts';
import {
  buildProtectedResourceMetadata,
  metadataPaths,
  serveProtectedResourceMetadata,
} from './protected-resource-metadata.ts';
import { followRevocations } from './revocations.ts';
import { createRevokedTokens } from './revoked-tokens.ts';
import { resolveMcpServerSettings } from './settings.ts';
import { createTokenExchangeClient } from './token-exchange-client.ts';
import { authenticate, createPhantomTokenVerifier, hasBearerCredentials } from './token-validation.ts';
import { createToolCallReporter } from './tool-call-reporter.ts';
import { buildCatalogue } from './tools/catalogue.ts';

export const MCP_PATH = '/mcp';

export interface RunningMcpServer extends RunningComponent {
  /** Where this process answers MCP (its listen address); agents use `resource`, through the gateway. */
  endpoint: string;
  /** The canonical URI (RFC 8707) tokens must be issued for. */
  resource: string;
  /** Token exchanges sent to the authorization server so far (cache misses). */
  readonly exchanges: number;
}

/** CORS for browser-based MCP clients: the challenge must be readable (`WWW-Authenticate`). */
const CORS_EXPOSED_HEADERS = 'WWW-Authenticate, Mcp-Session-Id, Mcp-Protocol-Version, DPoP-Nonce';
const CORS_ALLOWED_HEADERS =
  'Authorization, DPoP, Content-Type, Accept, Mcp-Protocol-Version, Mcp-Session-Id, Mcp-Method, Mcp-Name, Last-Event-ID';

function applyCors(req: IncomingMessage, res: ServerResponse): void {
  const origin = req.headers.origin;
  if (!origin) return;
  res.setHeader('access-control-allow-origin', origin);
  res.setHeader('access-control-expose-headers', CORS_EXPOSED_HEADERS);
  res.setHeader('vary', 'Origin');
}

function answerPreflight(res: ServerResponse): void {
  res.writeHead(204, {
    'access-control-allow-methods': 'GET, POST, DELETE, OPTIONS',
    'access-control-allow-headers': CORS_ALLOWED_HEADERS,
    'access-control-max-age': '600',
  });
  res.end();
}

const urlHost = (host: string) => (host.includes(':') ? `[${host}]` : host);

export async function startMcpServer(
  loaded: LoadedConfig,
  options: ComponentOptions = {},
): Promise<RunningMcpServer> {
  const metrics = componentMetrics('mcp-server', loaded);
  // Every audit line (one per tool call, whatever its outcome) is also counted.
  const logger = metrics.countAudits(
    options.logger ?? createLogger('mcp-server', { level: loaded.config.logLevel }),
  );
  const settings = resolveMcpServerSettings(loaded);
  const exchangeLookups = metrics.counter(
    'gatehouse_mcp_exchange_cache_total',
    'Token exchange cache lookups by result: hit, shared (joined an exchange in flight), miss (exchanged at the authorization server).',
    ['result'],
  );
  const refusals = metrics.counter(
    'gatehouse_mcp_refusals_total',
    'Requests refused before any tool ran, by reason: no_token, invalid_token, signing_keys_unavailable, origin, invalid_message.',
    ['reason'],
  );
  const catalogue = buildCatalogue(settings.tools, settings.apis);
  const metadata = buildProtectedResourceMetadata(settings);
  const metadataAt = metadataPaths(settings);
  // Longer than any access token lives: a revoked grant is refused here until its tokens are long gone.
  const revoked = createRevokedTokens({ maxEntries: 100_000, retentionSeconds: 2 * 86_400 });
  const verifier = createPhantomTokenVerifier(settings, revoked);
  const tokenExchange = createTokenExchangeClient({
    tokenEndpoint: settings.tokenEndpoint,
    clientId: settings.client.clientId,
    clientSecret: settings.client.secret,
    maxEntries: settings.exchangeCache.maxEntries,
    refreshBeforeSeconds: settings.exchangeCache.refreshBeforeSeconds,
    timeoutMs: settings.upstreamTimeoutMs,
    onLookup: (result) => exchangeLookups.inc({ result }),
  });
  // Every tool call also goes to the authorization server's audit trail (tool-call-reporter.ts).
  const toolCalls = createToolCallReporter({
    authorizationServerUrl: settings.authorizationServerUrl,
    clientId: settings.client.clientId,
    clientSecret: settings.client.secret,
    logger,
  });
  const approvals = createApprovalClient({
    endpoint: `${settings.authorizationServerUrl}/approvals`,
    clientId: settings.client.clientId,
    clientSecret: settings.client.secret,
    timeoutMs: settings.upstreamTimeoutMs,
  });
  const endpoint = createMcpEndpoint(catalogue, {
    tokenExchange,
    approvals,
    logger: toolCalls.wrap(logger),
    upstreamTimeoutMs: settings.upstreamTimeoutMs,
  });
  // Revocations announced by the authorization server (revocations.ts).
  const revocations = followRevocations(revoked, tokenExchange, {
    authorizationServerUrl: settings.authorizationServerUrl,
    clientId: settings.client.clientId,
    clientSecret: settings.client.secret,
    logger,
  });
  // The SDK's guard: a present Origin must name an allowed host (DNS rebinding, cross-site requests).
  const validateOrigin = originValidation(settings.allowedOriginHostnames);

  async function serveMcp(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const requestId = requestIdOf(req.headers);
    res.setHeader(REQUEST_ID_HEADER, requestId);
    if (!validateOrigin(req, res)) {
      refusals.inc({ reason: 'origin' });
      logger.warn('request from a browser origin that is not allowed', { origin: req.headers.origin });
      return;
    }
    applyCors(req, res);
    if (req.method === 'OPTIONS') return answerPreflight(res);
    if (!hasBearerCredentials(req)) {
      refusals.inc({ reason: 'no_token' });
      return sendMissingTokenChallenge(res, settings);
    }
    let authInfo: AuthInfo;
    try {
      authInfo = await authenticate(req, verifier, settings);
    } catch (error) {
      if (error instanceof SigningKeysUnavailableError) {
        refusals.inc({ reason: 'signing_keys_unavailable' });
        // Fail closed, but say it is temporary: the token may be fine, the keys could not be fetched.
        logger.warn('token not checked: signing keys unavailable', { jwks_uri: settings.jwksUri });
        sendJson(
          res,
          503,
          { error: 'temporarily_unavailable', error_description: 'the token cannot be checked right now' },
          { 'retry-after': '5' },
        );
        return;
      }
      refusals.inc({ reason: 'invalid_token' });
      logger.info('token refused', { request_id: requestId, reason: (error as Error).message });
      await sendWebResponse(res, invalidTokenResponse(error, settings), [dpopChallenge(settings)]);
      return;
    }
    // The tool call's audit line, its token exchange and its API call carry the request's id.
    authInfo.extra = { ...authInfo.extra, requestId };
    (req as IncomingMessage & { auth?: AuthInfo }).auth = authInfo;
    if (req.method !== 'POST') return endpoint.handle(req, res);
    const read = await readJsonRpcBody(req, res, MAX_REQUEST_BODY_BYTES);
    if (!read.ok) {
      refusals.inc({ reason: 'invalid_message' });
      logger.info('mcp request refused', { reason: 'not a single JSON-RPC message' });
      return;
    }
    await endpoint.handle(req, res, read.body);
  }

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', 'http://mcp-server').pathname;
    if (
      serveHealth(req, res, path, async () => ({
        // The revocation stream is also how the authorization server (token exchange) is known up.
        revocations: revocationsCheck(revocations.status()),
        signing_keys: { ok: await verifier.signingKeysReady(), jwks_uri: settings.jwksUri },
      }))
    )
      return;
    if (metadataAt.has(path)) return serveProtectedResourceMetadata(req, res, metadata);
    if (path === MCP_PATH || path === `${MCP_PATH}/`) return serveMcp(req, res);
    sendJson(res, 404, {
      error: 'not_found',
      error_description: `nothing here; MCP is served at ${MCP_PATH}`,
    });
  }

  metrics.revocationChannel(() => revocations.status().connected);
  metrics.gauge('gatehouse_mcp_exchange_cache_entries', 'Exchanged tokens in the cache.', {
    collect: (gauge) => gauge.set(tokenExchange.cacheSize),
  });
  const routeOf = (req: IncomingMessage): string => {
    const path = URL.parse(req.url ?? '/', 'http://mcp-server')?.pathname ?? '';
    if (path === '/healthz' || path === '/readyz') return 'health';
    if (metadataAt.has(path)) return 'protected_resource_metadata';
    if (path === MCP_PATH || path === `${MCP_PATH}/`) return 'mcp';
    return 'not_found';
  };
  // Behind the gateway: the gateway's trace context is continued (shared/tracing.ts).
  const tracing = await componentTracing('mcp-server', loaded);
  const http = createHttpServer(
    metrics.instrument(
      tracing.instrument((req, res) => {
        route(req, res).catch((error: unknown) => {
          // Never a stack trace to the client; the message only to the log.
          logger.error('request failed', { error: (error as Error).message });
          if (!res.headersSent) sendJson(res, 500, { error: 'server_error' });
          else res.destroy();
        });
      }, routeOf),
      routeOf,
    ),
    loaded.config.http,
    logger,
    { tls: tlsFiles(loaded.config.mcpServer.listen.tls, loaded.file, 'mcpServer.listen.tls') },
  );
  const port = await http.listen(settings.listen.host, settings.listen.port, 'mcpServer.listen.port');
  const url = `${loaded.config.mcpServer.listen.tls ? 'https' : 'http'}://${urlHost(settings.listen.host)}:${port}`;
  revocations.start();
  logger.info('MCP server listening', {
    url,
    endpoint: `${url}${MCP_PATH}`,
    resource: settings.resource.href,
    tools: catalogue.map((tool) => tool.name),
  });

  return {
    url,
    endpoint: `${url}${MCP_PATH}`,
    resource: settings.resource.href,
    get exchanges() {
      return tokenExchange.exchanges;
    },
    async close(options) {
      // Requests in flight finish first; only then are the SDK's transports released.
      await Promise.all([http.close(options), revocations.stop()]);
      await endpoint.close();
      await toolCalls.stop();
      await tracing.shutdown();
    },
  };
}

startMcpServer satisfies StartComponent;
