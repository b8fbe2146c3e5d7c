/**
 * Redirect URI matching: exact, except that loopback redirect URIs match on any port.
 *
 * RFC 8252 §7.3: native apps listen on an ephemeral loopback port, so the authorization server
 * MUST allow any port for loopback IP redirect URIs. MCP clients register such URIs with and
 * without a port (Claude Code's CIMD document has none), and some are `web` clients, so the rule
 * applies to every client, not only `application_type: native` as oidc-provider does.
 */
const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);

/** The URI without its port when it is an http loopback URI, else undefined. */
function withoutLoopbackPort(uri: string): string | undefined {
  const parsed = URL.parse(uri);
  if (parsed?.protocol !== 'http:' || !LOOPBACK_HOSTS.has(parsed.hostname)) return undefined;
  if (parsed.username || parsed.password || parsed.hash) return undefined;
  parsed.port = '';
  return parsed.href;
}

export function isLoopbackRedirectUri(uri: string): boolean {
  return withoutLoopbackPort(uri) !== undefined;
}

/** True when `requested` equals a registered URI, or is the same loopback URI on another port. */
export function redirectUriMatches(requested: string, registered: readonly string[]): boolean {
  if (registered.includes(requested)) return true;
  const requestedBase = withoutLoopbackPort(requested);
  if (requestedBase === undefined) return false;
  return registered.some((uri) => withoutLoopbackPort(uri) === requestedBase);
}

/**
 * True for a redirect URI that another program on the user's machine could also listen on: a
 * loopback URI (any port matches) or a private-use scheme (any app may claim it, RFC 8252 §8.6).
 */
export function isImpersonableRedirectUri(uri: string): boolean {
  if (isLoopbackRedirectUri(uri)) return true;
  const parsed = URL.parse(uri);
  return parsed !== null && parsed.protocol !== 'https:' && parsed.protocol !== 'http:';
}
