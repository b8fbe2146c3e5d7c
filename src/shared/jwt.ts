/**
 * Validation of RFC 9068 JWT access tokens, shared by the MCP server and the example APIs.
 *
 * Every check a resource server owes (RFC 9068 §4, RFC 8725): signature against the authorization
 * server's JWKS (fetched once, cached, refetched on an unknown `kid` by jose), `typ: at+jwt`, an
 * algorithm allow-list (so `alg: none` and HS256-with-the-public-key are refused), issuer, audience,
 * `exp` and `nbf` with bounded clock skew. Verified tokens are cached by hash until they expire, in
 * a bounded cache, because validation sits on every request.
 */
import { hash } from 'node:crypto';
import {
  createRemoteJWKSet,
  type JWTPayload,
  type JWTVerifyGetKey,
  errors as joseErrors,
  jwtVerify,
} from 'jose';
import { LRUCache } from 'lru-cache';

export interface AccessTokenPayload extends JWTPayload {
  sub: string;
  client_id: string;
  scope?: string;
  exp: number;
  [claim: string]: unknown;
}

/** Why a token was refused; the message is safe to send back in `error_description`. */
export class InvalidTokenError extends Error {
  override name = 'InvalidTokenError';
}

/**
 * The token could not be checked because the JWKS could not be fetched (authorization server down,
 * timeout, not a JWKS). Still a refusal (fail closed), but not the token's fault: a resource server
 * may answer 503 so the client retries instead of discarding a good token and re-authorizing.
 */
export class SigningKeysUnavailableError extends InvalidTokenError {
  override name = 'SigningKeysUnavailableError';
}

export interface AccessTokenVerifierOptions {
  issuer: string;
  jwksUri: string;
  /** The audience this resource server answers to. */
  audience: string;
  algorithms?: string[];
  clockToleranceSeconds?: number;
  /** How long fetched keys are trusted before a refetch (jose's cacheMaxAge). */
  jwksCacheSeconds?: number;
  cacheMaxEntries?: number;
}

export interface AccessTokenVerifier {
  verify(token: string): Promise<AccessTokenPayload>;
  /**
   * For readiness: whether the signing keys are at hand (fetched within their cache age), else
   * whether they can be fetched now. A fetch is tried at most every JWKS_READINESS_RETRY_MS, so a
   * probe that is asked often cannot make the authorization server serve a JWKS per probe.
   */
  signingKeysReady(): Promise<boolean>;
}

/** How often a readiness probe may make a verifier fetch the JWKS when it has none fresh. */
export const JWKS_READINESS_RETRY_MS = 5000;

/** Asymmetric algorithms only: a symmetric one would let anyone holding the public key forge tokens. */
export const DEFAULT_ALGORITHMS = ['ES256', 'ES384', 'PS256', 'RS256', 'EdDSA'];

/**
 * SHA-256 of a token, base64url: the key of every cache that holds something about a token, so no
 * cache ever holds the token itself. One-shot `hash()`: it runs several times per request and is
 * about twice as fast as a `createHash()` object.
 */
export const tokenHash = (token: string) => hash('sha256', token, 'base64url');

export function createAccessTokenVerifier(options: AccessTokenVerifierOptions): AccessTokenVerifier {
  const remoteJwks = createRemoteJWKSet(new URL(options.jwksUri), {
    cacheMaxAge: (options.jwksCacheSeconds ?? 600) * 1000,
    cooldownDuration: 30_000,
    timeoutDuration: 5000,
  });
  // Key lookup failures that are about the key set, not the token, become SigningKeysUnavailableError.
  const jwks: JWTVerifyGetKey = async (protectedHeader, token) => {
    try {
      return await remoteJwks(protectedHeader, token);
    } catch (error) {
      if (isKeySetFailure(error))
        throw new SigningKeysUnavailableError('the signing keys could not be fetched');
      throw error;
    }
  };
  let lastReadinessFetch = Number.NEGATIVE_INFINITY;
  let lastReadinessOk = false;
  const clockTolerance = options.clockToleranceSeconds ?? 30;
  const verified = new LRUCache<string, AccessTokenPayload>({ max: options.cacheMaxEntries ?? 10_000 });
  const audiences = options.audience.endsWith('/')
    ? [options.audience, options.audience.slice(0, -1)]
    : [options.audience, `${options.audience}/`];

  return {
    async signingKeysReady() {
      if (remoteJwks.fresh) return true;
      if (remoteJwks.reloading || performance.now() - lastReadinessFetch < JWKS_READINESS_RETRY_MS)
        return lastReadinessOk;
      lastReadinessFetch = performance.now();
      try {
        await remoteJwks.reload();
        lastReadinessOk = remoteJwks.jwks() !== undefined;
      } catch {
        lastReadinessOk = false;
      }
      return lastReadinessOk;
    },
    async verify(token) {
      const key = tokenHash(token);
      const cached = verified.get(key);
      const now = Math.floor(Date.now() / 1000);
      if (cached && cached.exp + clockTolerance > now) return cached;
      let payload: JWTPayload;
      try {
        ({ payload } = await jwtVerify(token, jwks, {
          issuer: options.issuer,
          audience: audiences,
          typ: 'at+jwt',
          algorithms: options.algorithms ?? DEFAULT_ALGORITHMS,
          clockTolerance,
          requiredClaims: ['exp', 'sub', 'client_id'],
        }));
      } catch (error) {
        if (error instanceof SigningKeysUnavailableError) throw error;
        throw new InvalidTokenError(describe(error));
      }
      const result = payload as AccessTokenPayload;
      verified.set(key, result, { ttl: Math.max(1, (result.exp + clockTolerance - now) * 1000) });
      return result;
    },
  };
}

function describe(error: unknown): string {
  if (error instanceof joseErrors.JWTExpired) return 'the access token has expired';
  if (error instanceof joseErrors.JWTClaimValidationFailed)
    return `the access token's ${error.claim} claim is not valid here`;
  if (error instanceof joseErrors.JOSEAlgNotAllowed)
    return 'the access token is signed with an algorithm that is not allowed';
  if (error instanceof joseErrors.JWKSNoMatchingKey) return 'the access token is signed with an unknown key';
  if (error instanceof joseErrors.JWSSignatureVerificationFailed)
    return 'the access token signature is not valid';
  return 'the access token is not valid';
}

/**
 * True for errors of fetching the JWKS: a timeout, a non-200 or non-JSON answer (jose's generic
 * JOSEError), a body that is no key set, or a network failure (fetch's TypeError, not a JOSEError).
 * Errors about the token's own header (unknown kid, several matching keys) are not.
 */
function isKeySetFailure(error: unknown): boolean {
  if (error instanceof joseErrors.JWKSTimeout || error instanceof joseErrors.JWKSInvalid) return true;
  if (error instanceof joseErrors.JOSEError) return error.code === 'ERR_JOSE_GENERIC';
  return true;
}

/** The scopes a token carries, as a set. */
export const scopesOf = (payload: { scope?: unknown }) =>
  new Set(typeof payload.scope === 'string' ? payload.scope.split(' ').filter(Boolean) : []);
