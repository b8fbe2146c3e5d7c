/**
 * One signing key: how it is made and what of it may be published.
 *
 * oidc-provider ships development keys that anyone can read; they are never used. Every key here is
 * generated on this machine and named by its RFC 7638 thumbprint, so a `kid` says which key it is
 * and two keys never share one.
 */
import { calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK } from 'jose';

/** The algorithm of JWT access tokens (phantom and exchanged): ES256 is compact and fast to verify. */
export const ACCESS_TOKEN_ALG = 'ES256';

/** The algorithm of ID tokens: RS256, the one algorithm every OpenID Connect client supports. */
export const ID_TOKEN_ALG = 'RS256';

/** A private signing key as a JWK, with `alg`, `use: sig` and its thumbprint as `kid`. */
export async function generateSigningKey(alg: typeof ACCESS_TOKEN_ALG | typeof ID_TOKEN_ALG): Promise<JWK> {
  const { privateKey } = await generateKeyPair(alg, { extractable: true });
  const jwk = await exportJWK(privateKey);
  return { ...jwk, alg, use: 'sig', kid: await calculateJwkThumbprint(jwk) };
}

/** The public half of a private JWK (RFC 7517 §4, RFC 7518 §6): what a JWKS may carry. */
export function publicJwk(jwk: JWK): JWK {
  const { d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, oth: _oth, k: _k, ...rest } = jwk;
  return rest;
}
