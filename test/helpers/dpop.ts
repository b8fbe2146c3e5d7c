/**
 * DPoP proofs for tests (RFC 9449 §4): a key pair, its JWK thumbprint, and signed proofs with any
 * claim or header changed, so that every check of a verifier can be exercised.
 */
import { createHash, randomUUID } from 'node:crypto';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK, SignJWT } from 'jose';

export interface DpopKey {
  privateKey: CryptoKey;
  publicJwk: JWK;
  /** RFC 7638 thumbprint of the public key: the `jkt` tokens are bound to. */
  jkt: string;
  alg: string;
}

export async function createDpopKey(alg: 'ES256' | 'EdDSA' | 'RS256' = 'ES256'): Promise<DpopKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const publicJwk = await exportJWK(publicKey);
  return { privateKey, publicJwk, jkt: await calculateJwkThumbprint(publicJwk), alg };
}

/** base64url(SHA-256(token)): the `ath` claim (RFC 9449 §4.2). */
export const accessTokenHash = (token: string) => createHash('sha256').update(token).digest('base64url');

export interface ProofOptions {
  htm: string;
  htu: string;
  /** The access token the proof goes with; sets `ath`. */
  accessToken?: string;
  nonce?: string;
  /** Seconds since the epoch. */
  iat?: number;
  jti?: string;
  /** Claims to add or override (`undefined` removes). */
  claims?: Record<string, unknown>;
  /** Header members to add or override. */
  header?: Record<string, unknown>;
}

export async function dpopProof(key: DpopKey, options: ProofOptions): Promise<string> {
  const claims: Record<string, unknown> = {
    htm: options.htm,
    htu: options.htu,
    jti: options.jti ?? randomUUID(),
    iat: options.iat ?? Math.floor(Date.now() / 1000),
    ...(options.accessToken ? { ath: accessTokenHash(options.accessToken) } : {}),
    ...(options.nonce ? { nonce: options.nonce } : {}),
    ...options.claims,
  };
  for (const [name, value] of Object.entries(claims)) if (value === undefined) delete claims[name];
  return new SignJWT(claims)
    .setProtectedHeader({ typ: 'dpop+jwt', alg: key.alg, jwk: key.publicJwk, ...options.header } as never)
    .sign(key.privateKey);
}
