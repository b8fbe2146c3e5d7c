/**
 * Whether a request path is one of oidc-provider's routes, matched the way its router matches them:
 * case-insensitively (ASCII letters and non-ASCII letters whose upper case is not ASCII) and with one
 * trailing slash ignored. The middleware in front of the provider (rate limits, the phantom token,
 * removed users, ...) must see every request the route will serve: compared exactly, `POST /TOKEN`
 * or `/register/` would reach the route and skip the middleware.
 */

/** oidc-provider's path folding (lib/helpers/router.js): upper case, never folding into ASCII. */
export function foldPath(path: string): string {
  // Every path of a well-behaved client is ASCII, where the folding is plain upper case: this runs
  // for each middleware on every request.
  // (UTF-8 takes one byte per character exactly when every character is ASCII.)
  if (Buffer.byteLength(path) === path.length) return path.toUpperCase();
  let out = '';
  for (const char of path) {
    const upper = char.toUpperCase();
    const intoAscii = (char.codePointAt(0) ?? 0) > 127 && (upper.codePointAt(0) ?? 0) < 128;
    out += upper.length === 1 && !intoAscii ? upper : char;
  }
  return out;
}

const withoutTrailingSlash = (path: string) =>
  path.length > 1 && path.endsWith('/') ? path.slice(0, -1) : path;

/** True when `path` is served by the route at `route` (a static route path). */
export function isRoute(path: string, route: string): boolean {
  const folded = foldPath(path);
  const target = foldPath(route);
  return folded === target || withoutTrailingSlash(folded) === target;
}

/** True when `path` is `route` or below it (`/register` and `/register/<id>`). */
export function isUnderRoute(path: string, route: string): boolean {
  const folded = foldPath(path);
  const target = foldPath(route);
  return isRoute(path, route) || folded.startsWith(`${target}/`);
}
