/**
 * Signs RFC 9068 JWT access tokens: the phantom token the gateway forwards and the tokens minted
 * by token exchange for upstream APIs. Both exist only inside the organization; agents hold opaque
 * tokens (design invariant 1).
 *
 * oidc-provider can issue JWT access tokens, but not a JWT *for an existing opaque token* nor one
 * for an exchanged grant, so these are signed here with jose and the server's own ES256 key: the
 * key ring's current key, asked for on every token, so a rotation takes effect at the next token
 * (keys/key-manager.ts).
 */
import { randomUUID } from 'node:crypto';
import { type JWTPayload, SignJWT } from 'jose';
import { ACCESS_TOKEN_ALG } from '../keys/signing-key.ts';

export interface AccessTokenClaims extends JWTPayload {
  sub: string;
  aud: string;
  exp: number;
  client_id: string;
  scope?: string;
}

export type AccessTokenSigner = (claims: AccessTokenClaims) => Promise<string>;

/** Reserved claims a caller's extra claims must never overwrite. */
// `grant_id` and `token_hash` tie a phantom token to its grant and opaque token for token exchange;
// they never travel further. `cnf`
// (RFC 7800) binds the agent's token to its DPoP key at the gateway; the inner hops are the gateway's
// and the MCP server's own business, so it never enters a phantom or exchanged token (design §3).
const RESERVED = new Set([
  'cnf',
  'iss',
  'sub',
  'aud',
  'exp',
  'iat',
  'nbf',
  'jti',
  'client_id',
  'scope',
  'act',
  'grant_id',
  'token_hash',
  'authorization_details',
]);

/** Copies extra claims (user attributes, client classification) without touching reserved ones. */
export function extraClaims(source: Record<string, unknown> | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(source ?? {})) {
    if (!RESERVED.has(key) && value !== undefined) out[key] = value;
  }
  return out;
}

/** The key that signs now: imported once per key, since an import per token would sit on the hot path. */
export type CurrentSigningKey = () => { kid: string; key: CryptoKey };

export function createAccessTokenSigner(issuer: string, current: CurrentSigningKey): AccessTokenSigner {
  return async (claims) => {
    const iat = Math.floor(Date.now() / 1000);
    const { kid, key } = current();
    // RFC 9068 §2.1: typ "at+jwt" so a JWT access token cannot be mistaken for an ID token.
    return new SignJWT({ ...claims, iat, jti: randomUUID() })
      .setProtectedHeader({ alg: ACCESS_TOKEN_ALG, typ: 'at+jwt', kid })
      .setIssuer(issuer)
      .sign(key);
  };
}
