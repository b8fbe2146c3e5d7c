/**
 * Bearer token checks for the example APIs (RFC 6750 §3): who may call, and with which scope.
 *
 * - no token: 401 with a bare `Bearer realm=...` challenge, no `error` (§3.1: the client may simply
 *   not know it needs one);
 * - a token that fails validation (signature, issuer, audience, expiry, algorithm, `typ`): 401 with
 *   `error="invalid_token"`;
 * - signing keys unreachable: 503 with `Retry-After`. The token is refused (fail closed), but it is
 *   not called invalid, so a client retries instead of throwing away a good token;
 * - a missing scope: 403 with `error="insufficient_scope"` and the `scope` needed.
 */
import type { IncomingMessage } from 'node:http';
import { bearerChallenge, bearerToken } from '../shared/http.ts';
import {
  type AccessTokenPayload,
  type AccessTokenVerifier,
  InvalidTokenError,
  SigningKeysUnavailableError,
  scopesOf,
} from '../shared/jwt.ts';
import { ApiError } from './api-error.ts';

/** Seconds a client should wait before retrying when the signing keys cannot be fetched. */
export const KEYS_UNAVAILABLE_RETRY_AFTER_SECONDS = 30;

/** Verifies the request's bearer token with this API's own verifier (its own audience). */
export async function authenticate(
  req: IncomingMessage,
  verifier: AccessTokenVerifier,
  realm: string,
): Promise<AccessTokenPayload> {
  const token = bearerToken(req);
  if (!token) {
    throw new ApiError(401, 'unauthorized', 'an access token is required (Authorization: Bearer)', {
      'www-authenticate': bearerChallenge({ realm }),
    });
  }
  try {
    return await verifier.verify(token);
  } catch (error) {
    if (error instanceof SigningKeysUnavailableError) {
      throw new ApiError(
        503,
        'temporarily_unavailable',
        'the access token cannot be checked right now: the signing keys are unavailable; try again later',
        { 'retry-after': String(KEYS_UNAVAILABLE_RETRY_AFTER_SECONDS) },
      );
    }
    const description = error instanceof InvalidTokenError ? error.message : 'the access token is not valid';
    throw new ApiError(401, 'invalid_token', description, {
      'www-authenticate': bearerChallenge({ realm, error: 'invalid_token', error_description: description }),
    });
  }
}

/** Refuses with 403 `insufficient_scope` unless the token carries `scope`. */
export function requireScope(claims: AccessTokenPayload, scope: string, realm: string): void {
  if (scopesOf(claims).has(scope)) return;
  const description = `this request needs the ${scope} scope`;
  throw new ApiError(403, 'insufficient_scope', description, {
    'www-authenticate': bearerChallenge({
      realm,
      error: 'insufficient_scope',
      scope,
      error_description: description,
    }),
  });
}
