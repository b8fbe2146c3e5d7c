/**
 * Which upstream answers a request: the MCP server behind `/mcp` and its Protected Resource
 * Metadata, the APIs behind their configured prefixes. Paths are normalized first (dot segments
 * resolved, as RFC 3986 §5.2.4 does) so that `/api/stocks/../customers` cannot reach a route by a
 * path that does not start with its prefix.
 */
import type { GatewayConfig } from '../shared/config/schema.ts';

export interface Route {
  /** For logs: `mcp-server` or the route's prefix. */
  name: string;
  /** `mcp` routes carry the MCP server and its metadata; `api` routes the example APIs. */
  kind: 'mcp' | 'api';
  prefix: string;
  upstream: URL;
}

export interface RouteMatch {
  route: Route;
  /** The upstream URL for this request, query string included. */
  target: URL;
}

/** Paths the MCP server owns: the endpoint and its RFC 9728 metadata (root and path-inserted). */
const MCP_PREFIXES = ['/mcp', '/.well-known/oauth-protected-resource'];

export interface RequestTarget {
  pathname: string;
  search: string;
}

/**
 * The normalized path and query of an origin-form request target (RFC 9112 §3.2.1), or undefined
 * when the target is not one: absolute-form, or a path with an encoded `/` or `\` that an upstream
 * might decode into a different route after the gateway chose this one.
 */
export function parseRequestTarget(raw: string | undefined): RequestTarget | undefined {
  if (!raw?.startsWith('/') || /%2f|%5c/i.test(raw)) return undefined;
  try {
    // A fixed origin in front, so `//host/path` stays a path and does not become a host.
    const url = new URL(`http://gateway.invalid${raw}`);
    return { pathname: url.pathname, search: url.search };
  } catch {
    return undefined;
  }
}

const trimSlash = (path: string) => (path.length > 1 && path.endsWith('/') ? path.slice(0, -1) : path);

/** True when `pathname` is `prefix` or lies under it (segment-wise: `/api/stocksX` is not under `/api/stocks`). */
function isUnder(pathname: string, prefix: string): boolean {
  return prefix === '/' || pathname === prefix || pathname.startsWith(`${prefix}/`);
}

export interface Router {
  match(target: RequestTarget): RouteMatch | undefined;
  routes: readonly Route[];
}

export function createRouter(config: Pick<GatewayConfig, 'mcpServerUrl' | 'routes'>): Router {
  const mcpServer = new URL(config.mcpServerUrl);
  const mcpRoutes: Route[] = MCP_PREFIXES.map((prefix) => ({
    name: 'mcp-server',
    kind: 'mcp',
    prefix,
    upstream: mcpServer,
  }));
  // Longest prefix first, so a more specific route wins over a broader one.
  const apiRoutes: Route[] = config.routes
    .map((route): Route => {
      const prefix = trimSlash(route.prefix);
      return { name: prefix, kind: 'api', prefix, upstream: new URL(route.upstream) };
    })
    .sort((a, b) => b.prefix.length - a.prefix.length);

  return {
    routes: [...mcpRoutes, ...apiRoutes],
    match({ pathname, search }) {
      // The MCP server keeps its paths: they are part of its canonical URI and its metadata URLs.
      const mcp = mcpRoutes.find((route) => isUnder(pathname, route.prefix));
      if (mcp) return { route: mcp, target: join(mcp.upstream, pathname, search) };
      const api = apiRoutes.find((route) => isUnder(pathname, route.prefix));
      if (!api) return undefined;
      // The prefix is replaced by the upstream URL's path: /api/stocks/ACME -> /stocks/ACME.
      const rest = api.prefix === '/' ? pathname : pathname.slice(api.prefix.length);
      return { route: api, target: join(api.upstream, rest, search) };
    },
  };
}

/** The upstream's origin and base path, followed by `path` and the query string. */
function join(upstream: URL, path: string, search: string): URL {
  const base = upstream.pathname === '/' ? '' : trimSlash(upstream.pathname);
  const target = new URL(upstream.origin);
  target.pathname = `${base}${path}` || '/';
  target.search = search;
  return target;
}
