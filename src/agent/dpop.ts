/**
 * DPoP (RFC 9449, MCP SEP-1932) for the agent: whether to bind tokens to a key, with which
 * algorithm, the key itself (one per client at an authorization server, kept in the token store so
 * a bound token still works after a restart), and how MCP requests present a bound token.
 *
 * The proofs (typ dpop+jwt, the public jwk, jti, htm, htu without query and fragment, iat, nonce,
 * ath), the nonce kept per origin and the token endpoint's `use_dpop_nonce` retry (§8) are the
 * SDK's (DpopSession, executeTokenRequest); the resource side (§7.1 scheme, §9 nonce retry) is the
 * SDK's withDpop wrapped around the transport's fetch.
 *
 * Tokens are bound only when both sides accept DPoP: the authorization server advertises
 * `dpop_signing_alg_values_supported` (RFC 9449 §5.1), and the MCP server says it takes DPoP, in
 * its Protected Resource Metadata (RFC 9728 §2) or with a `DPoP` challenge (RFC 9449 §7.1). A bound
 * token must never be sent as Bearer (§7.2), so binding one for a server that only knows Bearer
 * would lock the agent out of it.
 */
import {
  type AuthorizationServerMetadata,
  DPOP_SUPPORTED_ALGS,
  DpopSession,
  type FetchLike,
  type OAuthProtectedResourceMetadata,
  withDpop,
} from '@modelcontextprotocol/client';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK, type JWK } from 'jose';
import type { StoredDpopKey, StoredTokens } from './token-store.ts';

export type DpopAlgorithm = (typeof DPOP_SUPPORTED_ALGS)[number];

/** ES256 first: the algorithm every DPoP server is expected to take (and the one in RFC 9449's examples). */
const PREFERENCE: readonly DpopAlgorithm[] = [
  'ES256',
  'EdDSA',
  'ES384',
  'ES512',
  'PS256',
  'PS384',
  'PS512',
  'RS256',
  'RS384',
  'RS512',
];

/** What a 401 said about DPoP: a `DPoP` challenge, with the algorithms it lists (`algs`, §7.1). */
export interface DpopChallenge {
  algs?: string[] | undefined;
}

/**
 * The `DPoP` challenge of a `WWW-Authenticate` header, if it has one. The header may carry several
 * challenges (`Bearer …, DPoP algs="ES256"`, RFC 9110 §11.6.1); a scheme starts the header or follows
 * a comma.
 */
export function dpopChallenge(header: string | null | undefined): DpopChallenge | undefined {
  if (!header) return undefined;
  const match = /(?:^|,)\s*DPoP(?=[\s,]|$)(.*)$/i.exec(header);
  if (!match) return undefined;
  const algs = /\balgs="([^"]*)"/i.exec(match[1] ?? '')?.[1];
  return algs === undefined ? {} : { algs: algs.split(/\s+/).filter(Boolean) };
}

const stringList = (value: unknown): string[] | undefined =>
  Array.isArray(value) ? value.filter((item): item is string => typeof item === 'string') : undefined;

/** `DPoP` or `dpop` (RFC 9449 §5: the token type is case-insensitive). */
export const isDpopBound = (tokens: Pick<StoredTokens, 'token_type'> | undefined) =>
  tokens?.token_type.toLowerCase() === 'dpop';

/**
 * The algorithm to bind new tokens with, or undefined to stay with Bearer tokens: one both servers
 * accept and this agent can sign with, ES256 when possible.
 */
export function proofAlgorithm(options: {
  metadata: AuthorizationServerMetadata;
  resourceMetadata: OAuthProtectedResourceMetadata;
  challenge: DpopChallenge | undefined;
}): DpopAlgorithm | undefined {
  const offered = stringList((options.metadata as Record<string, unknown>).dpop_signing_alg_values_supported);
  if (!offered?.length) return undefined;
  const resource = options.resourceMetadata as Record<string, unknown>;
  const resourceAlgs = stringList(resource.dpop_signing_alg_values_supported);
  const resourceTakesDpop =
    (resourceAlgs?.length ?? 0) > 0 ||
    resource.dpop_bound_access_tokens_required === true ||
    options.challenge !== undefined;
  if (!resourceTakesDpop) return undefined;
  const accepted = resourceAlgs?.length ? resourceAlgs : options.challenge?.algs;
  return PREFERENCE.find((alg) => offered.includes(alg) && (!accepted?.length || accepted.includes(alg)));
}

/** The public members of a JWK: what goes in each proof's `jwk` header (RFC 9449 §4.2), never `d`. */
function publicPart(jwk: JWK): JWK {
  const { kty, crv, x, y, n, e } = jwk;
  const members = { kty, crv, x, y, n, e };
  return Object.fromEntries(Object.entries(members).filter(([, value]) => value !== undefined)) as JWK;
}

/** A new key pair for `alg`, as the store keeps it. */
export async function createDpopKey(alg: DpopAlgorithm): Promise<StoredDpopKey> {
  const { privateKey } = await generateKeyPair(alg, { extractable: true });
  return {
    alg,
    private_jwk: { ...(await exportJWK(privateKey)) },
    created_at: Math.floor(Date.now() / 1000),
  };
}

/** The signing session for a stored key; in memory the private key is not extractable. */
export async function dpopSessionFor(key: StoredDpopKey): Promise<DpopSession> {
  const alg = key.alg as DpopAlgorithm;
  if (!DPOP_SUPPORTED_ALGS.includes(alg)) throw new Error(`unsupported DPoP algorithm ${key.alg}`);
  const publicJwk = publicPart(key.private_jwk as JWK);
  const [privateKey, publicKey, thumbprint] = await Promise.all([
    importJWK(key.private_jwk as JWK, alg, { extractable: false }),
    importJWK(publicJwk, alg, { extractable: true }),
    calculateJwkThumbprint(publicJwk, 'sha256'),
  ]);
  return DpopSession.create({
    keyPair: {
      privateKey: privateKey as CryptoKey,
      publicKey: publicKey as CryptoKey,
      publicJwk,
      thumbprint,
      alg,
    },
  });
}

/** What an MCP request presents: a DPoP-bound token and the session that proves possession of its key. */
export interface DpopPresentation {
  session: DpopSession;
  token: string;
}

/**
 * Wraps the transport's fetch so a DPoP-bound token goes as `Authorization: DPoP <token>` with a
 * fresh proof (htm, htu = the request URL, ath = the token's hash, §4.2) on every request, and a
 * `use_dpop_nonce` 401 is retried once with the server's nonce (§9). Without a bound token the
 * request passes untouched: a Bearer token stays Bearer.
 */
export function presentingDpop(base: FetchLike, current: () => DpopPresentation | undefined): FetchLike {
  return withDpop(
    () => current()?.session,
    () => current()?.token,
  )(base);
}
