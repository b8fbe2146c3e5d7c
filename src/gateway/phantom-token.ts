/**
 * The phantom-token pattern: what becomes of the credential a request carries past the gateway.
 *
 * Agents hold opaque tokens; only the gateway turns one into the JWT the MCP server validates.
 * - no `Authorization`: nothing to translate (discovery, metadata and CORS preflight need no token);
 * - `Bearer <opaque>`: introspected (through the cache and its limits), replaced by the phantom JWT
 *   when active, removed when not, so the upstream answers with its own 401 challenge. A token bound
 *   to a DPoP key is refused here (RFC 9449 §7.2: never accepted as a plain bearer token);
 * - `DPoP <opaque>` with a `DPoP` proof (RFC 9449 §7.1): the proof is verified first (dpop-proof.ts,
 *   before any introspection), then the token, which must be bound to the proof's key. The phantom
 *   JWT goes on as Bearer: the binding stays at the edge, and the proof is not forwarded;
 * - anything else (a JWT from outside, another scheme, a malformed header): removed. The gateway
 *   never lets a credential through that it did not verify itself.
 * When the authorization server cannot answer, the lookup throws and nothing is forwarded.
 */
import { createHmac } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { GatewayConfig } from '../shared/config/schema.ts';
import { authChallenge } from '../shared/http.ts';
import { hasValidTag, type TokenTagKey } from '../shared/token-tag.ts';
import { createDpopNonces, type DpopNonces } from './dpop-nonces.ts';
import { createDpopProofVerifier, type DpopProofVerifier, type ProofError } from './dpop-proof.ts';
import type { IntrospectionCache, LookupSource } from './introspection-cache.ts';
import type { Introspection, IntrospectionClient } from './introspection-client.ts';
import { createIntrospectionLimiter, type IntrospectionLimiter } from './introspection-limiter.ts';

/** What the gateway made of the request's credential, for the request log. */
/** `not-issued`: the token has no valid tag of the authorization server, so it was not introspected. */
export type CredentialOutcome = 'none' | 'phantom' | 'inactive' | 'not-issued' | 'refused';

export type Translation =
  | {
      action: 'forward';
      /** The `Authorization` header to send upstream, or undefined to send none. */
      authorization: string | undefined;
      bearer: CredentialOutcome;
      cache?: LookupSource;
      /** Headers for the response (a fresh DPoP-Nonce). */
      responseHeaders?: Record<string, string>;
    }
  | {
      action: 'refuse';
      status: 400 | 401 | 429 | 503;
      error: string;
      description: string;
      headers: Record<string, string>;
      bearer: CredentialOutcome;
      cache?: LookupSource;
    };

export interface TranslationContext {
  /** The client's address, for the introspection limits (asked for on a cache miss only). */
  address: () => string;
  /** This request's URL as agents see it (public URL and path), the `htu` a DPoP proof must name. */
  htu: string;
}

/** The answer for a token the authorization server never issued: never cached (introspection-cache.ts). */
const MADE_UP: Introspection = { active: false, madeUp: true };

/** Longer "opaque" tokens are not ours: oidc-provider's are 43 characters. */
const MAX_OPAQUE_TOKEN_LENGTH = 1024;

/** Opaque here means one part: a JWT (or JWE) has dots, and is never accepted from outside. */
export const isOpaqueToken = (token: string) =>
  !token.includes('.') && token.length <= MAX_OPAQUE_TOKEN_LENGTH;

/** RFC 6750 §2.1 / RFC 9449 §7.1: `Bearer` or `DPoP`, then a token68. */
const CREDENTIALS = /^(Bearer|DPoP)[ ]+([A-Za-z0-9\-._~+/]+=*)$/i;

/** How many `Authorization` header lines the request had (Node keeps only the first one). */
export function authorizationHeaderCount(req: IncomingMessage): number {
  let count = 0;
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    if (req.rawHeaders[i]!.toLowerCase() === 'authorization') count += 1;
  }
  return count;
}

export interface TranslatorDependencies {
  cache: IntrospectionCache;
  client: Pick<IntrospectionClient, 'introspect'>;
  limiter?: IntrospectionLimiter | undefined;
  /**
   * The key of the authorization server's token tags (src/shared/token-tag.ts), once known: a token
   * without a valid tag was never issued, and is refused without an introspection.
   */
  tokenTagKey?: (() => TokenTagKey | undefined) | undefined;
  dpop?:
    | {
        verifier: DpopProofVerifier;
        /** Algorithms named in DPoP challenges (RFC 9449 §7.1 `algs`). */
        algorithms: readonly string[];
        nonces?: DpopNonces | undefined;
      }
    | undefined;
}

export type PhantomTokenTranslator = (
  req: IncomingMessage,
  context?: TranslationContext,
) => Promise<Translation>;

export function createPhantomTokenTranslator(
  cache: IntrospectionCache,
  client: Pick<IntrospectionClient, 'introspect'>,
  options: Omit<TranslatorDependencies, 'cache' | 'client'> = {},
): PhantomTokenTranslator {
  const { limiter, tokenTagKey, dpop } = options;
  const algs = dpop?.algorithms.join(' ');

  const dpopRefusal = (
    error: ProofError | 'invalid_token',
    description: string,
    extra: Partial<Translation> = {},
  ): Translation => ({
    action: 'refuse',
    status: 401,
    error,
    description,
    headers: {
      'www-authenticate': authChallenge('DPoP', { error, error_description: description, algs }),
      ...(error === 'use_dpop_nonce' && dpop?.nonces ? { 'dpop-nonce': dpop.nonces.current() } : {}),
    },
    bearer: 'refused',
    ...(extra as object),
  });

  return async (req, context = { address: () => req.socket?.remoteAddress ?? '', htu: '' }) => {
    if (req.headers.authorization === undefined)
      return { action: 'forward', authorization: undefined, bearer: 'none' };
    if (authorizationHeaderCount(req) > 1) {
      return {
        action: 'refuse',
        status: 400,
        error: 'invalid_request',
        description: 'send one Authorization header, not several',
        headers: {},
        bearer: 'refused',
      };
    }
    const match = CREDENTIALS.exec(req.headers.authorization.trim());
    const token = match?.[2];
    if (!match || !token || !isOpaqueToken(token)) {
      return { action: 'forward', authorization: undefined, bearer: 'refused' };
    }
    const scheme = match[1]!.toLowerCase() === 'dpop' ? 'dpop' : 'bearer';

    if (scheme === 'bearer') return resolve(token, scheme, undefined, context);
    if (!dpop) return dpopRefusal('invalid_token', 'DPoP is not accepted here');
    const proof = await dpop.verifier.verify(req, { htu: context.htu, accessToken: token });
    if (!proof.ok && 'status' in proof) {
      return {
        action: 'refuse',
        status: proof.status,
        error: proof.error,
        description: proof.description,
        headers: { 'retry-after': String(proof.retryAfterSeconds) },
        bearer: 'refused',
      };
    }
    if (!proof.ok) return dpopRefusal(proof.error, proof.description);
    // The proof's jti stays remembered only when the request goes through: the proofs of a key no
    // token is bound to (an expired or revoked token, another key) take no room (RFC 9449 §11.1).
    let translation: Translation | undefined;
    try {
      translation = await resolve(token, scheme, proof.jkt, context);
      return translation;
    } finally {
      if (translation?.bearer !== 'phantom') proof.release();
    }
  };

  /** The token introspected (through the cache), and checked against the proof's key, if any. */
  async function resolve(
    token: string,
    scheme: 'bearer' | 'dpop',
    proofKey: string | undefined,
    context: TranslationContext,
  ): Promise<Translation> {
    const introspect = () => client.introspect(token);
    // Checked on a cache miss only (a cached token was issued): a token without the authorization
    // server's tag was made up, and is treated like an inactive one (the MCP server's challenge
    // follows) at no cost to the authorization server, however many distinct ones a flood brings.
    const { result, source } = await cache.lookup(token, () => {
      const tagKey = tokenTagKey?.();
      if (tagKey && !hasValidTag(token, tagKey)) return Promise.resolve(MADE_UP);
      return limiter ? limiter.run(context.address(), introspect) : introspect();
    });
    if (!result.active && result.madeUp)
      return { action: 'forward', authorization: undefined, bearer: 'not-issued' };
    if (!result.active)
      return { action: 'forward', authorization: undefined, bearer: 'inactive', cache: source };

    if (scheme === 'bearer' && result.jkt) {
      return dpopRefusal(
        'invalid_token',
        'this token is bound to a DPoP key: send it with the DPoP scheme and a DPoP proof',
        { cache: source },
      );
    }
    if (scheme === 'dpop' && !result.jkt) {
      return {
        action: 'refuse',
        status: 401,
        error: 'invalid_token',
        description: 'this token is not bound to a DPoP key: send it as a Bearer token',
        headers: {
          'www-authenticate': authChallenge('Bearer', {
            error: 'invalid_token',
            error_description: 'this token is not bound to a DPoP key: send it as a Bearer token',
          }),
        },
        bearer: 'refused',
        cache: source,
      };
    }
    if (scheme === 'dpop' && proofKey !== result.jkt) {
      return dpopRefusal(
        'invalid_dpop_proof',
        'the DPoP proof is not signed by the key this token is bound to',
        {
          cache: source,
        },
      );
    }
    return {
      action: 'forward',
      authorization: `Bearer ${result.jwt}`,
      bearer: 'phantom',
      cache: source,
      ...(scheme === 'dpop' && dpop?.nonces
        ? { responseHeaders: { 'dpop-nonce': dpop.nonces.current() } }
        : {}),
    };
  }
}

/** The translator as the configuration describes it: limits, DPoP verification, nonces. */
export function createConfiguredTranslator(
  config: Pick<GatewayConfig, 'dpop' | 'introspectionLimits'>,
  clientSecret: string,
  cache: IntrospectionCache,
  client: Pick<IntrospectionClient, 'introspect'>,
  tokenTagKey: () => TokenTagKey | undefined = () => undefined,
): PhantomTokenTranslator {
  // Every gateway with the same client secret accepts the others' nonces (dpop-nonces.ts).
  const nonces = config.dpop.requireNonce
    ? createDpopNonces(
        createHmac('sha256', clientSecret).update('gatehouse gateway dpop nonces').digest(),
        config.dpop.nonceLifetimeSeconds,
      )
    : undefined;
  return createPhantomTokenTranslator(cache, client, {
    limiter: createIntrospectionLimiter(config.introspectionLimits),
    tokenTagKey,
    dpop: {
      verifier: createDpopProofVerifier({
        algorithms: config.dpop.algorithms,
        maxAgeSeconds: config.dpop.proofMaxAgeSeconds,
        nonces,
        replayCacheMaxEntries: config.dpop.replayCacheMaxEntries,
      }),
      algorithms: config.dpop.algorithms,
      nonces,
    },
  });
}
