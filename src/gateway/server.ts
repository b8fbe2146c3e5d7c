/**
 * Starts the gateway: the public entry point in front of the MCP server and the APIs, translating
 * agents' opaque tokens into phantom JWTs (see phantom-token.ts) and proxying everything else as is.
 *
 * Per request: route (404 when none) → body read within the limit (413) → token translation
 * (503 when the authorization server cannot answer: fail closed) → proxy (502/504 when the upstream
 * cannot answer). One log line per request; no token value is ever logged.
 */
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import {
  authorizationServerUrl,
  type ComponentOptions,
  type RunningComponent,
  type StartComponent,
} from '../shared/component.ts';
import type { LoadedConfig } from '../shared/config/load.ts';
import { resolveSecret } from '../shared/config/secrets.ts';
import { revocationsCheck, serveHealth } from '../shared/health.ts';
import { bearerChallenge, HttpError, readBody, sendJson } from '../shared/http.ts';
import { createHttpServer } from '../shared/http-server.ts';
import { createLogger, type LogFields } from '../shared/logging.ts';
import { componentMetrics } from '../shared/metrics.ts';
import { newRequestId, REQUEST_ID_HEADER } from '../shared/request-id.ts';
import { tlsFiles } from '../shared/tls-listener.ts';
import type { TokenTagKey } from '../shared/token-tag.ts';
import { componentTracing, injectTraceContext } from '../shared/tracing.ts';
import { clientAddress, markInvalidToken, upstreamRequestHeaders, withExposedHeaders } from './headers.ts';
import { createIntrospectionCache } from './introspection-cache.ts';
import { AuthorizationServerUnavailableError, createIntrospectionClient } from './introspection-client.ts';
import { AddressLimitError, GatewayBusyError } from './introspection-limiter.ts';
import { createConfiguredTranslator } from './phantom-token.ts';
import { proxy } from './proxy.ts';
import { followRevocations } from './revocations.ts';
import { createRouter, parseRequestTarget } from './routes.ts';
import { createUpstreamAgents } from './upstream-agents.ts';

export interface GatewayStats {
  /** Introspection requests sent to the authorization server (cache misses and failures). */
  introspections: number;
  /** Requests answered from the introspection cache. */
  cacheHits: number;
  cacheEntries: number;
}

export interface RunningGateway extends RunningComponent {
  stats(): GatewayStats;
}

const API_ROUTE_TOKEN_REFUSED =
  'tokens issued to agents are for the MCP server only; the APIs are reached through its tools';

/** RFC 6749 §4.1.2.1's `temporarily_unavailable`; clients retry after `Retry-After` seconds (RFC 9110 §10.2.3). */
const RETRY_AFTER_SECONDS = '5';

function defaultPort(url: URL): number {
  if (url.port) return Number(url.port);
  return url.protocol === 'https:' ? 443 : 80;
}

/** A request carries a body when it says so (RFC 9112 §6.3): a length or a transfer coding. */
const hasBody = (req: IncomingMessage) =>
  req.headers['transfer-encoding'] !== undefined || req.headers['content-length'] !== undefined;

export const startGateway = (async (
  loaded: LoadedConfig,
  options: ComponentOptions = {},
): Promise<RunningGateway> => {
  const config = loaded.config.gateway;
  const logger = options.logger ?? createLogger('gateway', { level: loaded.config.logLevel });
  const router = createRouter(config);
  // The authorization server generates this file on its first start; the gateway only reads it.
  const clientSecret = resolveSecret(config.client.secret, loaded.dataDir);
  const client = createIntrospectionClient({
    authorizationServerUrl: authorizationServerUrl(loaded, config.authorizationServerUrl),
    clientId: config.client.clientId,
    clientSecret,
    timeoutMs: config.introspectionTimeoutMs,
    logger,
  });
  const cache = createIntrospectionCache(config.introspectionCache);
  // Learned from the revocation stream; until then every token is introspected.
  let tokenTagKey: TokenTagKey | undefined;
  const translate = createConfiguredTranslator(config, clientSecret, cache, client, () => tokenTagKey);
  const publicOrigin = new URL(config.publicUrl).origin;
  const metrics = componentMetrics('gateway', loaded);
  const credentials = metrics.counter(
    'gatehouse_gateway_credentials_total',
    'What the gateway made of the credential of a request: none, phantom (forwarded as a phantom token), inactive, not-issued (no valid tag: never introspected), refused.',
    ['outcome'],
  );
  const cacheLookups = metrics.counter(
    'gatehouse_gateway_introspection_cache_total',
    'Introspection cache lookups by result: hit, miss (introspected), shared (joined an introspection in flight).',
    ['result'],
  );
  const refusals = metrics.counter(
    'gatehouse_gateway_refusals_total',
    'Requests the gateway refused itself, by reason (an OAuth error code, or rate_limited, busy, authorization_server_unavailable, ...).',
    ['reason'],
  );
  const upstreamErrors = metrics.counter(
    'gatehouse_gateway_upstream_errors_total',
    'Proxied requests that did not complete: upstream_timeout, upstream_unreachable, upstream_aborted, client_closed.',
    ['error'],
  );
  metrics.revocationChannel(() => revocations.status().connected);
  metrics.gauge('gatehouse_gateway_introspection_cache_entries', 'Entries in the introspection cache.', {
    collect: (gauge) => gauge.set(cache.size),
  });
  const agents = createUpstreamAgents();
  // Revocations announced by the authorization server drop cache entries at once (revocations.ts).
  const revocations = followRevocations(
    cache,
    {
      authorizationServerUrl: authorizationServerUrl(loaded, config.authorizationServerUrl),
      clientId: config.client.clientId,
      clientSecret,
      logger,
    },
    (key) => {
      tokenTagKey = key;
    },
  );

  async function handle(req: IncomingMessage, res: ServerResponse, log: LogFields): Promise<void> {
    const target = parseRequestTarget(req.url);
    if (!target) {
      refusals.inc({ reason: 'invalid_target' });
      return fail(req, res, 400, 'invalid_request', 'the request target is not a plain path');
    }
    log.path = target.pathname;
    if (
      serveHealth(req, res, target.pathname, () => ({ revocations: revocationsCheck(revocations.status()) }))
    )
      return;
    // RFC 6750 §2.3: a token in the query string ends up in logs and browser history; refused, not forwarded.
    if (new URLSearchParams(target.search).has('access_token')) {
      refusals.inc({ reason: 'token_in_query' });
      return fail(
        req,
        res,
        400,
        'invalid_request',
        'send the access token in the Authorization header, not the URL',
      );
    }
    const match = router.match(target);
    if (!match) return fail(req, res, 404, 'not_found', 'nothing is served at this path');
    log.upstream = match.route.name;
    // Agents' tokens are for the MCP server only (their phantom token's audience): neither the token
    // nor anything derived from it ever goes to another upstream (defect 3). Refused here, unasked.
    if (match.route.kind === 'api' && req.headers.authorization !== undefined) {
      log.bearer = 'refused';
      refusals.inc({ reason: 'token_for_api_route' });
      return fail(req, res, 401, 'invalid_token', API_ROUTE_TOKEN_REFUSED, {
        'www-authenticate': bearerChallenge({
          error: 'invalid_token',
          error_description: API_ROUTE_TOKEN_REFUSED,
        }),
      });
    }

    // The body is read (within the limit) before anything else, so an upstream never receives a
    // body the gateway would refuse, and a slow client never holds an upstream connection.
    const body = hasBody(req) ? await readBody(req, config.maxBodyBytes) : undefined;
    const translation = await translate(req, {
      address: () => clientAddress(req, config.trustProxy),
      htu: `${publicOrigin}${target.pathname}`,
    });
    log.bearer = translation.bearer;
    if (translation.cache) log.cache = translation.cache;
    if (translation.action === 'refuse') {
      log.error = translation.error;
      refusals.inc({ reason: translation.error });
      return fail(
        req,
        res,
        translation.status,
        translation.error,
        translation.description,
        translation.headers,
      );
    }

    const headers = upstreamRequestHeaders(req, config.trustProxy);
    // The proof is for the gateway; the upstream gets the phantom token as a plain bearer token.
    delete headers.dpop;
    // Ours, not the client's (request-id.ts).
    headers[REQUEST_ID_HEADER] = String(log.request_id);
    // So is the trace context: the request's span, when tracing is on (tracing.ts); else none.
    injectTraceContext(headers);
    if (translation.authorization) headers.authorization = translation.authorization;
    else delete headers.authorization;
    const extra = translation.responseHeaders;
    const outcome = await proxy(req, res, {
      target: match.target,
      headers,
      body,
      timeoutMs: config.upstreamTimeoutMs,
      agents,
      adjustResponse: (status, responseHeaders) => {
        if (translation.bearer === 'inactive' || translation.bearer === 'not-issued')
          markInvalidToken(status, responseHeaders);
        if (extra) Object.assign(responseHeaders, extra);
      },
    });
    if (outcome.error) {
      log.error = outcome.error;
      upstreamErrors.inc({ error: outcome.error });
    }
  }

  const onRequest: RequestListener = (req, res) => {
    const started = performance.now();
    const requestId = newRequestId();
    // Every answer names the request, so an agent's report can be found in the logs.
    res.setHeader(REQUEST_ID_HEADER, requestId);
    const log: LogFields = { method: req.method, path: undefined, request_id: requestId };
    const closed = new Promise<void>((resolve) => res.once('close', resolve));
    const handled = handle(req, res, log).catch((error: unknown) => {
      if (res.destroyed) {
        // The client left (e.g. while sending its body): nobody to answer, nothing went wrong here.
        log.error = 'client_closed';
        return;
      }
      if (error instanceof AddressLimitError || error instanceof GatewayBusyError) {
        log.error = error.name;
        const limited = error instanceof AddressLimitError;
        refusals.inc({ reason: limited ? 'rate_limited' : 'busy' });
        return fail(
          req,
          res,
          limited ? 429 : 503,
          limited ? 'too_many_requests' : 'temporarily_unavailable',
          error.message,
          { 'retry-after': String(limited ? error.retryAfterSeconds : 1) },
        );
      }
      if (error instanceof AuthorizationServerUnavailableError) {
        log.error = error.message;
        refusals.inc({ reason: 'authorization_server_unavailable' });
        return fail(req, res, 503, 'temporarily_unavailable', error.message, {
          'retry-after': RETRY_AFTER_SECONDS,
        });
      }
      if (error instanceof HttpError) {
        log.error = error.message;
        // The rest of an oversized body is never read: close the connection rather than drain it.
        const code = error.status === 413 ? 'request_too_large' : 'invalid_request';
        refusals.inc({ reason: code });
        return fail(req, res, error.status, code, error.message, { ...error.headers, connection: 'close' });
      }
      log.error = 'internal error';
      refusals.inc({ reason: 'server_error' });
      logger.error('gateway error', { error: (error as Error).message, stack: (error as Error).stack });
      return fail(req, res, 500, 'server_error', 'the gateway failed to handle the request');
    });
    // One line per request, once the response is over and the proxy knows how it ended.
    void Promise.all([closed, handled]).then(() => {
      if (typeof log.bearer === 'string') credentials.inc({ outcome: log.bearer });
      if (typeof log.cache === 'string') cacheLookups.inc({ result: log.cache });
      logger.info('request', {
        ...log,
        status: res.statusCode,
        duration_ms: Math.round(performance.now() - started),
      });
    });
  };
  // Receiving a request (headers and a body within maxBodyBytes) must not take longer than
  // http.requestTimeoutSeconds.
  const routeOf = (req: IncomingMessage): string => {
    const target = parseRequestTarget(req.url);
    if (!target) return 'invalid';
    if (target.pathname === '/healthz' || target.pathname === '/readyz') return 'health';
    return router.match(target)?.route.name ?? 'not_found';
  };
  // The edge: an agent's trace context is linked, never continued (docs/security.md, Traces).
  const tracing = await componentTracing('gateway', loaded);
  const listener = createHttpServer(
    metrics.instrument(tracing.instrument(onRequest, routeOf, { edge: true }), routeOf),
    loaded.config.http,
    logger,
    { tls: tlsFiles(config.listen.tls, loaded.file, 'gateway.listen.tls') },
  );

  const publicUrl = new URL(config.publicUrl);
  const port = await listener.listen(
    config.listen.host,
    config.listen.port ?? defaultPort(publicUrl),
    'gateway.listen.port (and gateway.publicUrl)',
  );
  if (config.listen.port === 0) publicUrl.port = String(port);
  const url = publicUrl.href.replace(/\/$/, '');
  const introspectionEndpoint = await client.endpoint();
  revocations.start();
  logger.info('gateway listening', {
    url,
    address: `${config.listen.host}:${port}`,
    introspection_endpoint: introspectionEndpoint,
    mcp_server: config.mcpServerUrl,
    routes: router.routes.map((route) => `${route.prefix} -> ${route.upstream.href}`),
    cache_max_seconds: config.introspectionCache.maxSeconds,
  });

  return {
    url,
    stats: () => ({ introspections: client.requests, cacheHits: cache.hits, cacheEntries: cache.size }),
    async close(options) {
      // Requests in flight still reach their upstreams: the agents go only after the drain.
      await Promise.all([listener.close(options), revocations.stop()]);
      agents.http.destroy();
      agents.https.destroy();
      await tracing.shutdown();
    },
  };
}) satisfies StartComponent;

/** A JSON error answered by the gateway itself (OAuth-style `error` and `error_description`). */
function fail(
  req: IncomingMessage,
  res: ServerResponse,
  status: number,
  error: string,
  description: string,
  headers: Record<string, string> = {},
): void {
  if (res.headersSent || res.destroyed) {
    res.destroy();
    return;
  }
  withExposedHeaders(req, headers);
  sendJson(res, status, { error, error_description: description }, headers);
}
