/**
 * The example APIs: one HTTP server hosting the stocks API under `/stocks` and the customers API
 * under `/customers` (the gateway maps `/api/stocks` and `/api/customers` here).
 *
 * Each API validates access tokens itself, with its own verifier bound to its own audience, so a
 * token for one API (or for the MCP server) is refused by the other. A request goes: API by first
 * path segment (404) → bearer token (401/503) → route (404/405) → scope (403) → handler. One
 * structured log line per request: method, path, status, sub, client_id, duration; never a token.
 */

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { StartComponent } from '../shared/component.ts';
import type { LoadedConfig } from '../shared/config/load.ts';
import type { ApisConfig } from '../shared/config/schema.ts';
import { serveHealth } from '../shared/health.ts';
import { sendJson } from '../shared/http.ts';
import { createHttpServer } from '../shared/http-server.ts';
import { createAccessTokenVerifier } from '../shared/jwt.ts';
import { createLogger, type LogFields, type Logger } from '../shared/logging.ts';
import { componentMetrics } from '../shared/metrics.ts';
import { requestIdFrom } from '../shared/request-id.ts';
import { tlsFiles } from '../shared/tls-listener.ts';
import { TOOL_CLAIM } from '../shared/tool-claims.ts';
import { isPlausibleToolName } from '../shared/tool-header.ts';
import { annotateSpan, componentTracing } from '../shared/tracing.ts';
import { ApiError, invalidRequest, notFound } from './api-error.ts';
import { authenticate, requireScope } from './bearer-auth.ts';
import { createCustomersApi } from './customers.ts';
import { readJsonBody } from './json-body.ts';
import { type Api, matchRoute } from './router.ts';
import { createStocksApi } from './stocks.ts';

/** The issuer and JWKS the APIs trust: `apis.issuer` (else the authorization server's), `<issuer>/jwks`. */
function trustedIssuer(loaded: LoadedConfig): { issuer: string; jwksUri: string } {
  const config = loaded.config.apis;
  const issuer = config.issuer ?? loaded.config.authorizationServer.issuer;
  return { issuer, jwksUri: config.jwksUri ?? `${issuer.replace(/\/$/, '')}/jwks` };
}

function createApis(config: ApisConfig, trusted: { issuer: string; jwksUri: string }, logger: Logger): Api[] {
  const verifierFor = (audience: string) =>
    createAccessTokenVerifier({
      ...trusted,
      audience,
      clockToleranceSeconds: config.clockSkewSeconds,
      jwksCacheSeconds: config.jwksCacheSeconds,
    });
  return [
    createStocksApi({
      config: config.stocks,
      verifier: verifierFor(config.stocks.audience),
      logger: logger.child({ api: 'stocks' }),
    }),
    createCustomersApi({ config: config.customers, verifier: verifierFor(config.customers.audience) }),
  ];
}

/** The request path without its query string. */
const pathOf = (req: IncomingMessage) => (req.url ?? '/').split('?')[0]!;

/** Path segments, URL-decoded; a segment that does not decode is a 400. */
function pathSegments(pathname: string): string[] {
  try {
    return pathname.split('/').filter(Boolean).map(decodeURIComponent);
  } catch {
    throw invalidRequest('the request path is not validly URL-encoded');
  }
}

function createHandler(apis: Api[], logger: Logger, refused: (api: string, reason: string) => void) {
  async function dispatch(
    req: IncomingMessage,
    entry: LogFields,
  ): Promise<{ status: number; body: unknown }> {
    // The raw path, not `new URL(...)`: that would read `//host/...` as an authority.
    const segments = pathSegments(pathOf(req));
    const api = apis.find((candidate) => candidate.basePath === segments[0]);
    if (!api) throw notFound();
    entry.api = api.basePath;
    const claims = await authenticate(req, api.verifier, api.name);
    entry.sub = claims.sub;
    entry.client_id = claims.client_id;
    // What the token allows and which tool call it was minted for (the MCP server's exchange names
    // it, shared/tool-claims.ts): each request's log line says what it carried.
    if (typeof claims.scope === 'string') entry.scope = claims.scope;
    const tool = claims[TOOL_CLAIM];
    if (typeof tool === 'string' && isPlausibleToolName(tool)) entry.tool = tool;
    // The client is not personal; the subject stays out of traces (shared/tracing.ts).
    annotateSpan({
      'gatehouse.client_id': typeof claims.client_id === 'string' ? claims.client_id : undefined,
    });
    const { route, params } = matchRoute(api.routes, req.method ?? 'GET', segments.slice(1));
    requireScope(claims, route.scope, api.name);
    return route.handle({ claims, params, body: () => readJsonBody(req) });
  }

  return async (req: IncomingMessage, res: ServerResponse) => {
    const started = performance.now();
    // The path only: a query string could carry anything, and is not used.
    const entry: LogFields = {
      method: req.method,
      path: pathOf(req).slice(0, 200),
      // The agent request this call serves, named by the MCP server (src/shared/request-id.ts).
      request_id: requestIdFrom(req.headers),
    };
    try {
      const result = await dispatch(req, entry);
      sendJson(res, result.status, result.body);
    } catch (error) {
      if (error instanceof ApiError) {
        entry.error = error.code;
        if (error.status === 401 || error.status === 503) entry.reason = error.message;
        sendJson(res, error.status, error.body, error.headers);
      } else {
        // An unexpected failure: its details go to the log, never to the client.
        entry.error = 'server_error';
        logger.error('request failed', { ...entry, failure: String((error as Error)?.stack ?? error) });
        sendJson(res, 500, {
          error: 'server_error',
          error_description: 'the request could not be processed',
        });
      }
    }
    const status = res.statusCode;
    if (typeof entry.error === 'string') refused(String(entry.api ?? 'none'), entry.error);
    const fields = { ...entry, status, duration_ms: Math.round((performance.now() - started) * 10) / 10 };
    if (status >= 500) logger.warn('request', fields);
    else logger.info('request', fields);
  };
}

const urlHost = (host: string) => (host.includes(':') ? `[${host}]` : host);

/** Starts the stocks and customers APIs on `apis.listen` (default 127.0.0.1:8002). */
export const startApis: StartComponent = async (loaded, options = {}) => {
  const config = loaded.config.apis;
  const logger = options.logger ?? createLogger('apis', { level: loaded.config.logLevel });
  const trusted = trustedIssuer(loaded);
  const apis = createApis(config, trusted, logger);
  const metrics = componentMetrics('apis', loaded);
  const refusals = metrics.counter(
    'gatehouse_api_refusals_total',
    'Requests an API refused, by API and reason (invalid_token, insufficient_scope, not_found, ...).',
    ['api', 'reason'],
  );
  const handler = createHandler(apis, logger, (api, reason) => refusals.inc({ api, reason }));
  // Every API checks tokens with the authorization server's keys: ready while they are at hand.
  const readiness = async () => ({
    signing_keys: {
      ok: (await Promise.all(apis.map((api) => api.verifier.signingKeysReady()))).every(Boolean),
      jwks_uri: trusted.jwksUri,
    },
  });
  const routeOf = (req: IncomingMessage) => {
    const path = pathOf(req);
    if (path === '/healthz' || path === '/readyz') return 'health';
    const first = path.split('/')[1];
    return apis.find((api) => api.basePath === first)?.basePath ?? 'not_found';
  };
  // Called by the MCP server only: its trace context and request id are taken.
  const tracing = await componentTracing('apis', loaded);
  const http = createHttpServer(
    metrics.instrument(
      tracing.instrument(
        (req, res) => {
          if (serveHealth(req, res, pathOf(req), readiness)) return;
          void handler(req, res);
        },
        routeOf,
        { requestIdFromHeader: true },
      ),
      routeOf,
    ),
    loaded.config.http,
    logger,
    { tls: tlsFiles(loaded.config.apis.listen.tls, loaded.file, 'apis.listen.tls') },
  );
  const port = await http.listen(config.listen.host, config.listen.port ?? 8002, 'apis.listen.port');
  const url = `${config.listen.tls ? 'https' : 'http'}://${urlHost(config.listen.host)}:${port}`;
  logger.info('apis listening', {
    url,
    stocks: `${url}/stocks`,
    customers: `${url}/customers`,
    issuer: trusted.issuer,
    jwks_uri: trusted.jwksUri,
  });
  return {
    url,
    async close(options) {
      await http.close(options);
      await tracing.shutdown();
    },
  };
};
