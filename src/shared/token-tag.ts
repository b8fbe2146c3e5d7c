/**
 * Tagged opaque tokens: the authorization server appends to every access token it issues a short
 * MAC of the token's random part, so the gateway can tell a token this server issued from a string
 * someone made up, without asking the authorization server (design §3: a flood of bogus tokens must
 * not cost one introspection each).
 *
 * The tag proves only that the authorization server minted the value: whether the token is still
 * active (unexpired, unrevoked) is still introspection's answer. The key never leaves the internal
 * components: the authorization server derives it from its own key material and hands it to the
 * gateways over the authenticated revocation stream.
 */
import { createHmac, createSecretKey, type KeyObject, timingSafeEqual } from 'node:crypto';

/** 8 bytes of HMAC-SHA256, base64url: 64 bits, a forged tag passes once in 2^64 tries. */
export const TOKEN_TAG_LENGTH = 11;
const TAG_BYTES = 8;
/** The random part is at least this long (oidc-provider's default is 43 characters, 256 bits). */
const MIN_RANDOM_LENGTH = 22;

/** A tag key, imported once: importing raw bytes at every HMAC costs more than the HMAC itself. */
export type TokenTagKey = KeyObject;

export const tokenTagKey = (bytes: Uint8Array): TokenTagKey => createSecretKey(bytes);

function tagOf(random: string, key: TokenTagKey): string {
  return createHmac('sha256', key).update(random).digest().subarray(0, TAG_BYTES).toString('base64url');
}

/** `random` with its tag appended (both base64url, so the token stays one opaque string). */
export function tagToken(random: string, key: TokenTagKey): string {
  return `${random}${tagOf(random, key)}`;
}

/** True when `token` carries a tag made with `key`. */
export function hasValidTag(token: string, key: TokenTagKey): boolean {
  if (token.length < MIN_RANDOM_LENGTH + TOKEN_TAG_LENGTH || !/^[A-Za-z0-9_-]+$/.test(token)) return false;
  const random = token.slice(0, -TOKEN_TAG_LENGTH);
  const given = Buffer.from(token.slice(-TOKEN_TAG_LENGTH));
  const expected = Buffer.from(tagOf(random, key));
  return given.length === expected.length && timingSafeEqual(given, expected);
}
