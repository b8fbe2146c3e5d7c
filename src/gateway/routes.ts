/**
 * Which upstream answers a request: the MCP server behind `/mcp` and its Protected Resource
 * Metadata, the APIs behind their configured prefixes. Paths are normalized first (dot segments
 * resolved, as RFC 3986 §5.2.4 does) so that `/api/stocks/../customers` cannot reach a route by a
 * path that does not start with its prefix.
 */
import { urlToHttpOptions } from 'node:url';
import type { GatewayConfig } from '../shared/config/schema.ts';

export interface Route {
  /** For logs: `mcp-server` or the route's prefix. */
  name: string;
  /** `mcp` routes carry the MCP server and its metadata; `api` routes the example APIs. */
  kind: 'mcp' | 'api';
  prefix: string;
  upstream: URL;
}

/** Where a request goes: the upstream's address (as `http.request` options) and the path. */
export interface UpstreamTarget {
  /** protocol, hostname (no IPv6 brackets), port: computed once per route, not per request. */
  address: Readonly<{ protocol: string; hostname: string; port: string | number }>;
  /** The upstream path for this request, query string included. */
  path: string;
}

export interface RouteMatch {
  route: Route;
  target: UpstreamTarget;
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
  // Most targets are already what URL parsing would make of them: no percent sign, no dot segment,
  // nothing the parser would encode. Those are taken as they are (the parser costs more than the
  // rest of routing); the others go through it.
  if (PLAIN_TARGET.test(raw) && !DOT_SEGMENT.test(raw)) {
    const query = raw.indexOf('?');
    if (query === -1) return { pathname: raw, search: '' };
    const search = raw.slice(query);
    return { pathname: raw.slice(0, query), search: search === '?' ? '' : search };
  }
  try {
    // A fixed origin in front, so `//host/path` stays a path and does not become a host.
    const url = new URL(`http://gateway.invalid${raw}`);
    return { pathname: url.pathname, search: url.search };
  } catch {
    return undefined;
  }
}

/**
 * Characters the WHATWG URL parser keeps as they are in a path (RFC 3986 `pchar` without `%`) and
 * in a query (the same, `/` and `?`, but `'`, which the parser encodes in a special URL's query); `#`
 * (a fragment) and `\` (read as `/`) are not among them.
 */
const PLAIN_TARGET = /^\/[A-Za-z0-9\-._~!$&'()*+,;=:@/]*(\?[A-Za-z0-9\-._~!$&()*+,;=:@/?]*)?$/;
/** A `.` or `..` segment in the path (before any query), which the parser removes. */
const DOT_SEGMENT = /^[^?]*\/\.\.?(\/|\?|$)/;

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
  const addresses = new Map<URL, UpstreamTarget['address']>();
  /** The upstream's origin and base path, followed by `path` and the query string. */
  const join = (upstream: URL, path: string, search: string): UpstreamTarget => {
    let address = addresses.get(upstream);
    if (address === undefined) {
      const { protocol, hostname, port } = urlToHttpOptions(upstream);
      address = { protocol: protocol ?? 'http:', hostname: hostname ?? '', port: port ?? '' };
      addresses.set(upstream, address);
    }
    // Both parts come out of URL parsing already (normalized and encoded): joined as strings.
    const base = upstream.pathname === '/' ? '' : trimSlash(upstream.pathname);
    return { address, path: `${`${base}${path}` || '/'}${search}` };
  };
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
