/**
 * Verification of DPoP proofs at the gateway (RFC 9449 §4.3, §7.1): the gateway is where agents'
 * tokens arrive, so it is the resource server that checks possession of the key a token is bound to.
 *
 * Every check of §4.3: exactly one `DPoP` header holding one JWS; `typ: dpop+jwt`; an algorithm from
 * the allow-list (asymmetric only); a public `jwk` in the header that verifies the signature; `jti`,
 * `htm` (this method), `htu` (this URL as agents see it: the configured public URL and the request's
 * path, never the Host header; query and fragment ignored), `iat` within the window, `ath` (the hash
 * of the token presented), a server nonce when nonces are required, and a `jti` not seen before
 * within the window (dpop-replay-cache.ts). The key's thumbprint is returned for the caller to
 * compare with the token's `cnf.jkt`, with `release`, which the caller calls when it does not let
 * the request through: only proofs that were used take room in the replay cache.
 */
import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { calculateJwkThumbprint, decodeProtectedHeader, EmbeddedJWK, type JWK, jwtVerify } from 'jose';
import type { DpopNonces } from './dpop-nonces.ts';
import { createDpopReplayCache } from './dpop-replay-cache.ts';

export interface DpopProofSettings {
  algorithms: readonly string[];
  /** How far `iat` may be from now, either way, in seconds. */
  maxAgeSeconds: number;
  /** When set, proofs must carry one of its nonces (RFC 9449 §9). */
  nonces?: DpopNonces | undefined;
  replayCacheMaxEntries: number;
  /** Seconds since the epoch; tests pass a clock. */
  now?: () => number;
}

export type ProofError = 'invalid_dpop_proof' | 'use_dpop_nonce';

/** At most this share of the replay cache for one key (and at least 1,000 proofs a window). */
const PER_KEY_SHARE = 50;

export type ProofCheck =
  | { ok: true; jkt: string; release: () => void }
  | { ok: false; error: ProofError; description: string }
  | {
      ok: false;
      /** No room to remember the proof: refused rather than anything forgotten (RFC 6585 §4, RFC 9110 §15.6.4). */
      error: 'too_many_requests' | 'temporarily_unavailable';
      status: 429 | 503;
      retryAfterSeconds: number;
      description: string;
    };

export interface DpopProofVerifier {
  verify(req: IncomingMessage, expected: { htu: string; accessToken: string }): Promise<ProofCheck>;
}

/** Members only private or symmetric JWKs have (RFC 7518 §6): a proof's key must be public. */
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];
const MAX_PROOF_LENGTH = 8192;

const invalid = (description: string): ProofCheck => ({
  ok: false,
  error: 'invalid_dpop_proof',
  description,
});

/** The `DPoP` header values as sent: Node would join repeated unknown headers into one string. */
function dpopHeaders(req: IncomingMessage): string[] {
  const values: string[] = [];
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    if (req.rawHeaders[i]!.toLowerCase() === 'dpop') values.push(req.rawHeaders[i + 1]!);
  }
  return values;
}

/** `htu` compared as RFC 9449 §4.3 says: the URI without query and fragment (RFC 3986 normalized). */
function sameTarget(htu: unknown, expected: string): boolean {
  if (typeof htu !== 'string') return false;
  const actual = URL.parse(htu);
  const wanted = URL.parse(expected);
  if (!actual || !wanted) return false;
  actual.search = '';
  actual.hash = '';
  wanted.search = '';
  wanted.hash = '';
  return actual.href === wanted.href;
}

export function createDpopProofVerifier(settings: DpopProofSettings): DpopProofVerifier {
  const now = settings.now ?? (() => Math.floor(Date.now() / 1000));
  const algorithms = [...settings.algorithms];
  // jti values seen, per key, for as long as a proof with them could still be accepted.
  const seen = createDpopReplayCache({
    maxEntries: settings.replayCacheMaxEntries,
    maxEntriesPerKey: Math.max(1000, Math.floor(settings.replayCacheMaxEntries / PER_KEY_SHARE)),
    now: () => now() * 1000,
  });

  return {
    async verify(req, expected) {
      const headers = dpopHeaders(req);
      if (headers.length === 0) return invalid('a DPoP-bound token needs a DPoP proof in the DPoP header');
      if (headers.length > 1) return invalid('send exactly one DPoP header');
      const proof = headers[0]!.trim();
      if (proof.length > MAX_PROOF_LENGTH || proof.split('.').length !== 3)
        return invalid('the DPoP proof is not a JWS');

      let header: ReturnType<typeof decodeProtectedHeader>;
      try {
        header = decodeProtectedHeader(proof);
      } catch {
        return invalid('the DPoP proof header cannot be read');
      }
      if (header.typ !== 'dpop+jwt') return invalid('the DPoP proof must have typ dpop+jwt');
      if (typeof header.alg !== 'string' || !algorithms.includes(header.alg)) {
        return invalid(`the DPoP proof must be signed with one of: ${algorithms.join(' ')}`);
      }
      const jwk = header.jwk as JWK | undefined;
      if (!jwk || typeof jwk !== 'object' || jwk.kty === 'oct' || PRIVATE_MEMBERS.some((m) => m in jwk)) {
        return invalid('the DPoP proof must carry the public key it is signed with (jwk)');
      }

      let payload: Record<string, unknown>;
      try {
        ({ payload } = await jwtVerify(proof, EmbeddedJWK, { typ: 'dpop+jwt', algorithms }));
      } catch {
        return invalid('the DPoP proof signature does not verify with its jwk');
      }
      if (typeof payload.jti !== 'string' || payload.jti.length === 0 || payload.jti.length > 256) {
        return invalid('the DPoP proof needs a jti');
      }
      if (payload.htm !== req.method) return invalid('the DPoP proof htm does not match the request method');
      if (!sameTarget(payload.htu, expected.htu))
        return invalid('the DPoP proof htu does not match this URL');
      if (typeof payload.iat !== 'number' || Math.abs(now() - payload.iat) > settings.maxAgeSeconds) {
        return settings.nonces
          ? {
              ok: false,
              error: 'use_dpop_nonce',
              description: 'the DPoP proof is not recent: use the DPoP-Nonce',
            }
          : invalid('the DPoP proof iat is not recent enough');
      }
      const ath = createHash('sha256').update(expected.accessToken).digest('base64url');
      if (payload.ath !== ath) return invalid('the DPoP proof ath does not match the access token');
      if (settings.nonces) {
        if (typeof payload.nonce !== 'string' || !settings.nonces.check(payload.nonce)) {
          return {
            ok: false,
            error: 'use_dpop_nonce',
            description: 'the DPoP proof must carry a fresh DPoP-Nonce',
          };
        }
      }
      const jkt = await calculateJwkThumbprint(jwk);
      const jti = payload.jti;
      // Kept until the proof's iat leaves the window, plus a second for the clock's granularity.
      const verdict = seen.record(jkt, jti, (payload.iat + settings.maxAgeSeconds + 1) * 1000);
      if (verdict === 'replayed') return invalid('the DPoP proof was already used');
      if (verdict === 'key-busy') {
        return {
          ok: false,
          error: 'too_many_requests',
          status: 429,
          retryAfterSeconds: Math.min(10, settings.maxAgeSeconds),
          description: 'too many DPoP proofs with this key within the proof window: slow down',
        };
      }
      if (verdict === 'full') {
        return {
          ok: false,
          error: 'temporarily_unavailable',
          status: 503,
          retryAfterSeconds: 1,
          description: 'the gateway cannot remember more DPoP proofs right now: retry shortly',
        };
      }
      return { ok: true, jkt, release: () => seen.forget(jkt, jti) };
    },
  };
}
