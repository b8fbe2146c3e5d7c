/**
 * How oidc-provider signs with the ID-token ring's current key, and verifies with its retired ones,
 * without being built again.
 *
 * oidc-provider takes its keys once, when it is constructed (lib/helpers/initialize_keystore.js),
 * and has no way to add or remove one later. What it does allow (`features.externalSigningSupport`)
 * is an `ExternalSigningKey` in place of a private JWK, whose properties are getters it reads on
 * every key selection, and whose `sign(data)` it calls to sign. So it gets a fixed number of
 * *slots*, each standing for the ring key at its position, read at the moment of the call:
 *
 * - slot 0 is the current key. The keystore picks the first candidate for signing
 *   (`selectForSign({ alg })[0]`, lib/models/id_token.js), and every slot has the same score, so
 *   the current key signs ID tokens (and RFC 9701 introspection answers) from the moment a
 *   rotation is on disk.
 * - the slots after it are the retired keys still published, newest first, so that an ID token a
 *   retired key signed verifies as `id_token_hint` (RP-Initiated Logout 1.0 §2, OpenID Connect Core
 *   §3.1.2.1): verification selects by `kid` (lib/helpers/jwt.js `verify`) and asks that slot's
 *   `keyObject()`. The next key signed nothing and needs no slot.
 * - a slot with no key behind it reports a `kty` that is no key type (RFC 7518 §6.1), which every
 *   selection tests first, so it never matches a `kid` and is never chosen to sign. While the
 *   provider is being constructed it reports a placeholder RSA key of its own `kid` instead, since
 *   registration wants a valid public key with a distinct `kid` in every entry; `registered()` ends
 *   that.
 *
 * Every public property is a getter here, so the base class's cache of the first `keyObject()`'s
 * public JWK (`#ensurePublicJwk`) is never filled or read. The provider's own JWKS, a copy taken at
 * construction, is never served: keys/jwks-endpoint.ts answers that route from the ring.
 *
 * `sign(data)` signs with the key the JWS header in `data` names (RFC 7515 §4.1.4), looked up in
 * the ring: the header's `kid` was read from slot 0 when the key was selected, so the signature and
 * the `kid` belong to one key even if a rotation came in between.
 */
import { type KeyObject, sign } from 'node:crypto';
import { ExternalSigningKey } from 'oidc-provider';
import { ID_TOKEN_ALG } from './signing-key.ts';

/** One ID-token key as the slots need it. */
export interface IdTokenKey {
  kid: string;
  /** The RSA public key's modulus and exponent (RFC 7518 §6.3.1), base64url. */
  n: string;
  e: string;
  publicKey: KeyObject;
  privateKey: KeyObject;
}

/** The most slots: ID tokens signed by older retired keys still published are refused as hints. */
export const MAX_ID_TOKEN_SLOTS = 16;

/**
 * How many slots cover every key that may have signed an ID token still verifiable: the current key
 * and the retired ones still published. Rotations are at least `publishBeforeUseSeconds + 1` apart
 * (the overlap rule, key-ring.ts `promotableFrom`), so at most
 * `floor(retireAfterSeconds / (publishBeforeUseSeconds + 1)) + 1` keys retired within the last
 * `retireAfterSeconds`.
 */
export function idTokenSlotCount(retireAfterSeconds: number, publishBeforeUseSeconds: number): number {
  const retired = Math.floor(retireAfterSeconds / (publishBeforeUseSeconds + 1)) + 1;
  return Math.min(MAX_ID_TOKEN_SLOTS, 1 + retired);
}

/** A kty no key has (RFC 7518 §6.1 registers EC, RSA, oct; RFC 8037 OKP): matches no selection. */
const NO_KEY_TYPE = 'none';

interface SlotState {
  registering: boolean;
  /** The current key, then the retired ones still published, newest first. */
  keys: () => readonly IdTokenKey[];
}

class IdTokenKeySlot extends ExternalSigningKey {
  readonly #index: number;
  readonly #state: SlotState;

  constructor(index: number, state: SlotState) {
    super();
    this.#index = index;
    this.#state = state;
  }

  #key(): IdTokenKey | undefined {
    return this.#state.keys()[this.#index];
  }

  #placeholder(): boolean {
    return this.#state.registering && !this.#key();
  }

  override get kid(): string {
    return this.#key()?.kid ?? `gatehouse-unused-id-token-key-slot-${this.#index}`;
  }

  override get alg(): string {
    return ID_TOKEN_ALG;
  }

  override get kty(): string {
    return this.#key() || this.#placeholder() ? 'RSA' : NO_KEY_TYPE;
  }

  override get n(): string | undefined {
    return this.#key()?.n ?? (this.#placeholder() ? 'unused' : undefined);
  }

  override get e(): string | undefined {
    return this.#key()?.e ?? (this.#placeholder() ? 'AQAB' : undefined);
  }

  // RSA keys have none of these (RFC 7518 §6.3); as getters they keep the base class's cache unused.
  override get crv(): undefined {
    return undefined;
  }
  override get x(): undefined {
    return undefined;
  }
  override get y(): undefined {
    return undefined;
  }
  override get pub(): undefined {
    return undefined;
  }

  override keyObject(): KeyObject {
    const key = this.#key();
    if (!key) throw new Error(`ID-token key slot ${this.#index} has no key`);
    return key.publicKey;
  }

  override sign(data: Uint8Array): Uint8Array {
    const text = Buffer.from(data).toString('ascii');
    const header = JSON.parse(
      Buffer.from(text.slice(0, text.indexOf('.')), 'base64url').toString('utf8'),
    ) as {
      alg?: string;
      kid?: string;
    };
    if (header.alg !== ID_TOKEN_ALG) throw new Error(`ID-token keys sign ${ID_TOKEN_ALG}, not ${header.alg}`);
    const key = this.#state.keys().find((candidate) => candidate.kid === header.kid);
    if (!key) throw new Error(`no ID-token key ${header.kid} to sign with`);
    // RS256 is RSASSA-PKCS1-v1_5 with SHA-256 (RFC 7518 §3.3), node:crypto's default RSA padding.
    return sign('sha256', data, key.privateKey);
  }
}

export interface IdTokenKeySlots {
  /** For oidc-provider's `jwks.keys`. */
  readonly keys: readonly ExternalSigningKey[];
  /** Call once the provider is constructed: slots with no key stop answering for a placeholder. */
  registered(): void;
}

/** `count` slots over `keys()`: the current ID-token key first, then retired ones still published. */
export function idTokenKeySlots(keys: () => readonly IdTokenKey[], count: number): IdTokenKeySlots {
  const state: SlotState = { registering: true, keys };
  return {
    keys: Array.from({ length: count }, (_, index) => new IdTokenKeySlot(index, state)),
    registered: () => {
      state.registering = false;
    },
  };
}
