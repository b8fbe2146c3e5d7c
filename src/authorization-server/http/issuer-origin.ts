/**
 * Every URL the authorization server publishes or accepts derives from the configured issuer, never
 * from the request (design §3).
 *
 * oidc-provider builds endpoint URLs (discovery, `registration_client_uri`), the audiences it accepts
 * in client assertions (RFC 7523 §3) and the DPoP `htu` it expects (RFC 9449 §4.3) from Koa's
 * `ctx.href`, that is from the request's `Host` (or `X-Forwarded-Host`/`-Proto` behind a trusted
 * proxy). A request with `Host: evil.example` would then read metadata pointing at evil.example, and
 * an assertion minted for evil.example would be accepted here. So before Koa sees a request, its
 * host and scheme are replaced by the issuer's, whatever it said, with or without `trustProxy`.
 *
 * `trustProxy` keeps one meaning only: the client address (for rate limits and audit lines) is the
 * one the proxy in front appended to `X-Forwarded-For`, its last entry, which a client cannot forge.
 */
import type { IncomingMessage } from 'node:http';

export interface IssuerOriginOptions {
  issuer: string;
  trustProxy: boolean;
}

/** Headers that would let a request choose the host, scheme or address the server sees. */
const REQUEST_CHOSEN = ['x-forwarded-host', 'x-forwarded-proto', 'x-forwarded-port', 'forwarded'];

/**
 * Rewrites a request's `Host` and `X-Forwarded-Proto` to the issuer's, and drops what a client could
 * use to choose them. Pair it with Koa's `proxy = true` (so `X-Forwarded-Proto` is read) and
 * `maxIpsCount = 1` (so only the last `X-Forwarded-For` entry counts).
 */
export function pinToIssuerOrigin(options: IssuerOriginOptions): (req: IncomingMessage) => void {
  const issuer = new URL(options.issuer);
  const host = issuer.host;
  const proto = issuer.protocol.slice(0, -1);
  return (req) => {
    for (const name of REQUEST_CHOSEN) delete req.headers[name];
    // Without a trusted proxy the socket's own address is the client's: a sent X-Forwarded-For is a lie.
    if (!options.trustProxy) delete req.headers['x-forwarded-for'];
    req.headers.host = host;
    req.headers['x-forwarded-proto'] = proto;
  };
}
