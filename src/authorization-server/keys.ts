/**
 * Signing keys and cookie keys, generated at first start and kept in the data directory.
 *
 * oidc-provider ships development keys that anyone can read; they are never used. The private JWKS
 * stays in `<dataDir>/keys.json` (owner-only), the JWKS endpoint publishes the public halves.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK } from 'jose';

export interface KeyMaterial {
  /** Private signing keys, the first ES256 key signs access tokens. */
  signingKeys: JWK[];
  /** Keys for oidc-provider's signed cookies (Keygrip); the first signs, all verify. */
  cookieKeys: string[];
}

/** The algorithm of JWT access tokens (phantom and exchanged): ES256 is compact and fast to verify. */
export const ACCESS_TOKEN_ALG = 'ES256';

async function generateSigningKey(alg: 'ES256' | 'RS256'): Promise<JWK> {
  const { privateKey } = await generateKeyPair(alg, { extractable: true });
  const jwk = await exportJWK(privateKey);
  return { ...jwk, alg, use: 'sig', kid: await calculateJwkThumbprint(jwk) };
}

/** Loads the key material, generating and persisting it on first start. */
export async function loadOrCreateKeys(dataDir: string): Promise<KeyMaterial> {
  const file = path.join(dataDir, 'keys.json');
  if (existsSync(file)) {
    const stored = JSON.parse(readFileSync(file, 'utf8')) as KeyMaterial;
    if (!Array.isArray(stored.signingKeys) || stored.signingKeys.length === 0 || !stored.cookieKeys?.length) {
      throw new Error(
        `${file} is damaged: move it away to generate new keys (issued tokens will stop verifying)`,
      );
    }
    return stored;
  }
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  // ES256 signs access tokens; RS256 is kept for ID tokens, the one algorithm every OIDC client supports.
  const keys: KeyMaterial = {
    signingKeys: [await generateSigningKey('ES256'), await generateSigningKey('RS256')],
    cookieKeys: [randomBytes(32).toString('base64url')],
  };
  const temporary = `${file}.${process.pid}.tmp`;
  writeFileSync(temporary, JSON.stringify(keys, null, 2), { mode: 0o600 });
  chmodSync(temporary, 0o600);
  renameSync(temporary, file);
  return keys;
}

/** The public half of a private JWK. */
export function publicJwk(jwk: JWK): JWK {
  const { d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, oth: _oth, k: _k, ...rest } = jwk;
  return rest;
}
