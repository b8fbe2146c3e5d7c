/**
 * Limits on `private_key_jwt` client assertions (RFC 7523 §3), beyond what oidc-provider checks.
 *
 * oidc-provider verifies the signature, `iss`, `sub`, `aud` (against the issuer and the endpoint,
 * both from the configured issuer: http/issuer-origin.ts) and `exp`, and refuses a `jti` it has seen
 * before until the assertion expires (its ReplayDetection model, kept in the store). It does not
 * bound the lifetime: an assertion valid for a year would be accepted, and being replay-protected
 * only until its `exp`, it would have to be remembered for a year. RFC 7523 §3 lets the server
 * reject assertions with an unreasonably far `exp`; RFC 9700 §2.4 recommends short-lived ones. So
 * an assertion may live at most `maxLifetimeSeconds`, counted from its `iat` when it has one and
 * from now in any case.
 */
import { errors, type KoaContextWithOIDC } from 'oidc-provider';

export interface ClientAssertionPolicy {
  maxLifetimeSeconds: number;
  /** Seconds of clock skew tolerated (the provider's `clockTolerance`). */
  clockToleranceSeconds: number;
  /** Seconds since the epoch; tests pass a clock. */
  now?: () => number;
}

type AssertionClaims = { exp?: unknown; iat?: unknown; nbf?: unknown };

/** The problem with an assertion's lifetime, or undefined when it is acceptable. */
export function assertionLifetimeProblem(
  claims: AssertionClaims,
  policy: ClientAssertionPolicy,
): string | undefined {
  const now = policy.now?.() ?? Math.floor(Date.now() / 1000);
  const { maxLifetimeSeconds: max, clockToleranceSeconds: skew } = policy;
  if (typeof claims.exp !== 'number') return 'exp must be a number';
  if (claims.iat !== undefined) {
    if (typeof claims.iat !== 'number') return 'iat must be a number';
    if (claims.iat > now + skew) return 'iat is in the future';
    if (claims.exp - claims.iat > max) return `the assertion must not be valid for more than ${max} seconds`;
  }
  if (claims.exp - now > max + skew) return `exp must be at most ${max} seconds from now`;
  return undefined;
}

/** oidc-provider's `assertJwtClientAuthClaimsAndHeader` hook, enforcing the policy above once the signature verified. */
export function clientAssertionHook(policy: ClientAssertionPolicy) {
  return async (_ctx: KoaContextWithOIDC, claims: AssertionClaims): Promise<void> => {
    const problem = assertionLifetimeProblem(claims, policy);
    if (problem) throw new errors.InvalidClientAuth(`client_assertion rejected: ${problem}`);
  };
}
