/**
 * The routing table of one API: a route names its method, a path template (`/{symbol}`), the
 * scope a token needs for it, and the handler. Matching answers 404 for an unknown path and 405
 * (with `Allow`) for a known path with another method.
 */
import type { AccessTokenPayload, AccessTokenVerifier } from '../shared/jwt.ts';
import { ApiError, notFound } from './api-error.ts';

/** What a handler gets: the verified claims, path parameters and, on demand, the JSON body. */
export interface ApiCall {
  claims: AccessTokenPayload;
  params: Record<string, string>;
  /** Reads and parses the request body (JSON only, size-limited); errors are 400, 413 or 415. */
  body(): Promise<unknown>;
}

export interface ApiResult {
  status: number;
  body: unknown;
}

export interface Route {
  method: 'GET' | 'POST';
  /** Path under the API's base path; `{name}` matches one segment into `params.name`. */
  path: string;
  /** The scope the access token must carry (RFC 6750 §3.1 `insufficient_scope` otherwise). */
  scope: string;
  handle(call: ApiCall): ApiResult | Promise<ApiResult>;
}

export interface RouteMatch {
  route: Route;
  params: Record<string, string>;
}

const templateSegments = (path: string) => path.split('/').filter(Boolean);

function matchPath(template: string, segments: string[]): Record<string, string> | undefined {
  const parts = templateSegments(template);
  if (parts.length !== segments.length) return undefined;
  const params: Record<string, string> = {};
  for (const [i, part] of parts.entries()) {
    const segment = segments[i]!;
    const name = /^\{(\w+)\}$/.exec(part)?.[1];
    if (name) params[name] = segment;
    else if (part !== segment) return undefined;
  }
  return params;
}

/** The first route matching the method and path segments (already URL-decoded); routes are tried in order. */
export function matchRoute(routes: Route[], method: string, segments: string[]): RouteMatch {
  const allowed = new Set<string>();
  for (const route of routes) {
    const params = matchPath(route.path, segments);
    if (!params) continue;
    if (route.method === method) return { route, params };
    allowed.add(route.method);
  }
  if (allowed.size === 0) throw notFound();
  throw new ApiError(405, 'method_not_allowed', `use ${[...allowed].join(' or ')} on this path`, {
    allow: [...allowed].join(', '),
  });
}

/** One API on the shared server: its realm name, base path segment, own token verifier and routes. */
export interface Api {
  /** Human name, also the `realm` of its `WWW-Authenticate` challenges. */
  name: string;
  /** First path segment, e.g. `stocks` for `/stocks/...`. */
  basePath: string;
  /** Accepts only tokens whose audience is this API. */
  verifier: AccessTokenVerifier;
  routes: Route[];
}
