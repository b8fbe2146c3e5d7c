/**
 * The bench's own unsecured chain: the same chain as Gatehouse's, gateway → MCP server → API, with
 * every authorization step taken out, built here from the product's own building blocks so that the
 * two chains differ by security only. Each hop runs in a process of its own, as Gatehouse's do
 * (bench/server-process.ts, roles `unsecured-*`). Never part of the product: there is no setting
 * that turns authorization off in Gatehouse. Being made of Gatehouse's parts, it cannot show what
 * those parts cost: the independent baseline (bench/baseline/) is the comparison for that.
 *
 * | step          | kept (same code as the product)                                  | left out (security)                           |
 * |---------------|------------------------------------------------------------------|-----------------------------------------------|
 * | gateway       | routing, path normalization, body limit, header rules, `proxy()`, request log | introspection (cache), phantom token |
 * | MCP server    | Origin check, CORS, `createMcpHandler` + `McpServer` from the SDK, the tool catalogue and its input validation, `buildUpstreamRequest` + `callUpstream` | JWT validation, scope challenge, token exchange, audit line |
 * | API           | path decoding, `matchRoute`, the stocks/customers route handlers, JSON answers, request log | JWT validation, scope check (claims are fixed: a user in region `eu`) |
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { originValidation, toNodeHandler } from '@modelcontextprotocol/node';
import { createMcpHandler, McpServer, type McpServerFactory } from '@modelcontextprotocol/server';
import { ApiError, invalidRequest, notFound } from '../src/apis/api-error.ts';
import { createCustomersApi } from '../src/apis/customers.ts';
import { readJsonBody } from '../src/apis/json-body.ts';
import { type Api, matchRoute } from '../src/apis/router.ts';
import { createStocksApi } from '../src/apis/stocks.ts';
import { upstreamRequestHeaders } from '../src/gateway/headers.ts';
import { proxy } from '../src/gateway/proxy.ts';
import { createRouter, parseRequestTarget } from '../src/gateway/routes.ts';
import { createUpstreamAgents } from '../src/gateway/upstream-agents.ts';
import { MAX_REQUEST_BODY_BYTES, PROTOCOL_VERSIONS } from '../src/mcp-server/mcp-endpoint.ts';
import { MCP_PATH } from '../src/mcp-server/server.ts';
import { originHostname, resolveApiScopes, type UpstreamApi } from '../src/mcp-server/settings.ts';
import { buildCatalogue } from '../src/mcp-server/tools/catalogue.ts';
import {
  buildUpstreamRequest,
  callUpstream,
  errorResult,
  UpstreamRequestError,
} from '../src/mcp-server/tools/upstream-call.ts';
import type { RunningComponent } from '../src/shared/component.ts';
import type { LoadedConfig } from '../src/shared/config/load.ts';
import { close, listen, readBody, sendJson } from '../src/shared/http.ts';
import type { AccessTokenPayload, AccessTokenVerifier } from '../src/shared/jwt.ts';
import type { LogFields, Logger } from '../src/shared/logging.ts';

/** What the secured chain learns from alice's token; here simply given. */
const FIXED_CLAIMS: AccessTokenPayload = {
  sub: 'bench-user',
  client_id: 'bench-agent',
  exp: Number.MAX_SAFE_INTEGER,
  region: 'eu',
  email: 'alice@example.com',
  email_verified: true,
};

const NO_VERIFIER: AccessTokenVerifier = {
  verify: () => Promise.reject(new Error('the unsecured baseline verifies no token')),
  signingKeysReady: () => Promise.resolve(true),
};

const hasBody = (req: IncomingMessage) =>
  req.headers['transfer-encoding'] !== undefined || req.headers['content-length'] !== undefined;

/** src/gateway/server.ts without token translation: the Authorization header is simply dropped. */
export async function startPlainGateway(loaded: LoadedConfig, logger: Logger): Promise<RunningComponent> {
  const config = loaded.config.gateway;
  const router = createRouter(config);
  // The product's own pools, with its idle timeout (a keep-alive agent without one writes onto
  // sockets the MCP server is closing: ECONNRESET, 502).
  const agents = createUpstreamAgents();

  async function handle(req: IncomingMessage, res: ServerResponse, log: LogFields): Promise<void> {
    const target = parseRequestTarget(req.url);
    if (!target) return sendJson(res, 400, { error: 'invalid_request' });
    log.path = target.pathname;
    const match = router.match(target);
    if (!match) return sendJson(res, 404, { error: 'not_found' });
    log.upstream = match.route.name;
    const body = hasBody(req) ? await readBody(req, config.maxBodyBytes) : undefined;
    const headers = upstreamRequestHeaders(req, config.trustProxy);
    delete headers.authorization;
    const outcome = await proxy(req, res, {
      target: match.target,
      headers,
      body,
      timeoutMs: config.upstreamTimeoutMs,
      agents,
    });
    if (outcome.error) log.error = outcome.error;
  }

  const server = createServer((req, res) => {
    const started = performance.now();
    const log: LogFields = { method: req.method, path: undefined };
    const closed = new Promise<void>((resolve) => res.once('close', resolve));
    const handled = handle(req, res, log).catch((error: unknown) => {
      log.error = (error as Error).message;
      if (!res.headersSent) sendJson(res, 500, { error: 'server_error' });
      else res.destroy();
    });
    void Promise.all([closed, handled]).then(() => {
      logger.info('request', {
        ...log,
        status: res.statusCode,
        duration_ms: Math.round(performance.now() - started),
      });
    });
  });
  const port = await listen(server, config.listen.host, config.listen.port ?? 0, 'gateway.listen.port');
  return {
    url: `http://127.0.0.1:${port}`,
    async close() {
      await close(server);
      agents.http.destroy();
      agents.https.destroy();
    },
  };
}

/** Calls the API with no credentials at all: callUpstream always sets one, this takes it off again. */
const fetchWithoutCredentials: typeof fetch = (input, init) => {
  const headers = { ...(init?.headers as Record<string, string>) };
  delete headers.authorization;
  return fetch(input, { ...init, headers });
};

/** src/mcp-server/server.ts and mcp-endpoint.ts without the bearer token, scope challenge and exchange. */
export async function startPlainMcpServer(loaded: LoadedConfig, logger: Logger): Promise<RunningComponent> {
  const mcp = loaded.config.mcpServer;
  const apis = new Map<string, UpstreamApi>(
    Object.entries(mcp.apis).map(([name, api]) => [
      name,
      { name, baseUrl: api.baseUrl.replace(/\/$/, ''), audience: api.audience },
    ]),
  );
  const catalogue = buildCatalogue(resolveApiScopes(loaded.config), apis);
  const factory: McpServerFactory = () => {
    const server = new McpServer(
      { name: 'gatehouse-mcp-server', title: 'Gatehouse', version: '0.1.0' },
      { capabilities: { tools: {} }, supportedProtocolVersions: PROTOCOL_VERSIONS },
    );
    for (const tool of catalogue) {
      server.registerTool(
        tool.name,
        {
          ...(tool.title ? { title: tool.title } : {}),
          description: tool.description,
          inputSchema: tool.inputSchema,
          annotations: tool.annotations,
        },
        async (args, ctx) => {
          try {
            const outcome = await callUpstream({
              apiName: tool.api.name,
              request: buildUpstreamRequest(tool, tool.api.baseUrl, args),
              accessToken: '',
              timeoutMs: mcp.upstreamTimeoutMs,
              signal: ctx.mcpReq.signal,
              fetch: fetchWithoutCredentials,
            });
            return outcome.result;
          } catch (error) {
            if (error instanceof UpstreamRequestError) return errorResult(error.message);
            throw error;
          }
        },
      );
    }
    return server;
  };
  const onerror = (error: Error) => logger.debug('mcp request not served', { reason: error.message });
  const handler = createMcpHandler(factory, { onerror, maxRequestBodySize: MAX_REQUEST_BODY_BYTES });
  const handle = toNodeHandler(handler, { onerror, maxRequestBodySize: MAX_REQUEST_BODY_BYTES });
  const validateOrigin = originValidation(mcp.allowedOrigins.map(originHostname));

  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://mcp-server').pathname;
    if (path !== MCP_PATH && path !== `${MCP_PATH}/`) return sendJson(res, 404, { error: 'not_found' });
    if (!validateOrigin(req, res)) return;
    Promise.resolve(handle(req, res)).catch((error: unknown) => {
      logger.error('request failed', { error: (error as Error).message });
      if (!res.headersSent) sendJson(res, 500, { error: 'server_error' });
      else res.destroy();
    });
  });
  const port = await listen(server, mcp.listen.host, mcp.listen.port ?? 0, 'mcpServer.listen.port');
  return {
    url: `http://127.0.0.1:${port}`,
    async close() {
      await handler.close();
      await close(server);
    },
  };
}

/** src/apis/server.ts without `authenticate` and `requireScope`. */
export async function startPlainApis(loaded: LoadedConfig, logger: Logger): Promise<RunningComponent> {
  const config = loaded.config.apis;
  const apis: Api[] = [
    createStocksApi({
      config: config.stocks,
      verifier: NO_VERIFIER,
      logger: logger.child({ api: 'stocks' }),
    }),
    createCustomersApi({ config: config.customers, verifier: NO_VERIFIER }),
  ];
  const pathOf = (req: IncomingMessage) => (req.url ?? '/').split('?')[0]!;

  async function dispatch(req: IncomingMessage, entry: LogFields) {
    let segments: string[];
    try {
      segments = pathOf(req).split('/').filter(Boolean).map(decodeURIComponent);
    } catch {
      throw invalidRequest('the request path is not validly URL-encoded');
    }
    const api = apis.find((candidate) => candidate.basePath === segments[0]);
    if (!api) throw notFound();
    entry.api = api.basePath;
    entry.sub = FIXED_CLAIMS.sub;
    entry.client_id = FIXED_CLAIMS.client_id;
    const { route, params } = matchRoute(api.routes, req.method ?? 'GET', segments.slice(1));
    return route.handle({ claims: FIXED_CLAIMS, params, body: () => readJsonBody(req) });
  }

  const server = createServer(async (req, res) => {
    const started = performance.now();
    const entry: LogFields = { method: req.method, path: pathOf(req).slice(0, 200) };
    try {
      const result = await dispatch(req, entry);
      sendJson(res, result.status, result.body);
    } catch (error) {
      if (error instanceof ApiError) sendJson(res, error.status, error.body, error.headers);
      else sendJson(res, 500, { error: 'server_error' });
    }
    const fields = {
      ...entry,
      status: res.statusCode,
      duration_ms: Math.round((performance.now() - started) * 10) / 10,
    };
    logger.info('request', fields);
  });
  const port = await listen(server, config.listen.host, config.listen.port ?? 0, 'apis.listen.port');
  return { url: `http://127.0.0.1:${port}`, close: () => close(server) };
}
