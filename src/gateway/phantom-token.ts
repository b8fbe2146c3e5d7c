/**
 * The phantom-token pattern: what `Authorization` header a request carries past the gateway.
 *
 * Agents hold opaque tokens; only the gateway turns one into the JWT the MCP server validates.
 * - no `Authorization`: nothing to translate (discovery, metadata and CORS preflight need no token);
 * - an opaque bearer token: introspected (through the cache), and replaced by the phantom JWT when
 *   active, or removed when not, so the upstream answers with its own 401 challenge;
 * - anything else (a JWT from outside, another scheme, a malformed header): removed. The gateway
 *   never lets a credential through that it did not verify itself.
 * When the authorization server cannot answer, the lookup throws and nothing is forwarded.
 */
import type { IncomingMessage } from 'node:http';
import { bearerToken } from '../shared/http.ts';
import type { IntrospectionCache, LookupSource } from './introspection-cache.ts';
import type { IntrospectionClient } from './introspection-client.ts';

export interface Translation {
  /** The `Authorization` header to send upstream, or undefined to send none. */
  authorization: string | undefined;
  /** What the gateway made of the request's credential, for the request log. */
  bearer: 'none' | 'phantom' | 'inactive' | 'refused';
  cache?: LookupSource;
}

/** Longer "opaque" tokens are not ours: oidc-provider's are 43 characters. */
const MAX_OPAQUE_TOKEN_LENGTH = 1024;

/** Opaque here means one part: a JWT (or JWE) has dots, and is never accepted from outside. */
export const isOpaqueToken = (token: string) =>
  !token.includes('.') && token.length <= MAX_OPAQUE_TOKEN_LENGTH;

export type PhantomTokenTranslator = (req: IncomingMessage) => Promise<Translation>;

export function createPhantomTokenTranslator(
  cache: IntrospectionCache,
  client: Pick<IntrospectionClient, 'introspect'>,
): PhantomTokenTranslator {
  return async (req) => {
    if (req.headers.authorization === undefined) return { authorization: undefined, bearer: 'none' };
    const token = bearerToken(req);
    if (!token || !isOpaqueToken(token)) return { authorization: undefined, bearer: 'refused' };
    const { result, source } = await cache.lookup(token, () => client.introspect(token));
    return result.active
      ? { authorization: `Bearer ${result.jwt}`, bearer: 'phantom', cache: source }
      : { authorization: undefined, bearer: 'inactive', cache: source };
  };
}
