/**
 * Who has signed in, and which grant holds each user's consent for each client.
 *
 * Subjects are derived from the email address (approved-users.ts) and cannot be reversed, so the
 * address is remembered here at sign-in to answer `findAccount(sub)` later. Consent lives in an
 * oidc-provider Grant; this index finds a user's grant for a client even from a new browser
 * session, so consent is remembered per user and client, not per cookie.
 *
 * Two implementations with one contract (accounts.test.ts): SQLite in the data directory
 * (sqlite-accounts.ts) and the shared PostgreSQL database (postgres-accounts.ts), where every
 * instance sees the same accounts and consents. Nothing is cached per instance except the
 * last-use throttle below, which only delays a "last used" stamp and never decides access.
 */

export interface Accounts {
  remember(sub: string, email: string): Promise<void>;
  emailOf(sub: string): Promise<string | undefined>;
  /** The addresses of several subjects at once (an audit page, a removed domain); unknown ones are left out. */
  emailsOf(subs: readonly string[]): Promise<Map<string, string>>;
  grantFor(sub: string, clientId: string): Promise<string | undefined>;
  rememberGrant(sub: string, clientId: string, grantId: string): Promise<void>;
  forgetGrant(grantId: string): Promise<void>;
  /** Every subject that ever signed in. */
  subjects(): Promise<string[]>;
  /** When the subject last signed in (milliseconds), if ever. */
  lastLoginAt(sub: string): Promise<number | undefined>;
  /** The consent grants of a user, or of a client. */
  grants(filter: { sub?: string; clientId?: string }): Promise<ConsentGrant[]>;
  /** Stamps the grant's last use (a token issued under it); written at most once a minute per grant. */
  touchGrant(grantId: string): Promise<void>;
}

export interface ConsentGrant {
  sub: string;
  clientId: string;
  grantId: string;
  lastUsedAt: number | undefined;
}

/** A grant's last use is written at most this often: every token must not be a write of its own. */
export const GRANT_USE_WRITE_INTERVAL_MS = 60_000;

/** Bounds the throttle's memory: a flood of grants empties it rather than growing it. */
const GRANT_USE_THROTTLE_ENTRIES = 10_000;

/**
 * The per-process throttle of touchGrant: true when this grant's use should be written now. Each
 * instance throttles on its own, so N instances write a grant's last use at most N times a minute;
 * the stamp is informational ("last used" in the console), so that is enough.
 */
export function grantUseThrottle(now: () => number = Date.now) {
  const lastTouch = new Map<string, number>();
  return {
    due(grantId: string): number | undefined {
      const at = now();
      const last = lastTouch.get(grantId);
      if (last !== undefined && at - last < GRANT_USE_WRITE_INTERVAL_MS) return undefined;
      if (lastTouch.size >= GRANT_USE_THROTTLE_ENTRIES) lastTouch.clear();
      lastTouch.set(grantId, at);
      return at;
    },
    forget(grantId: string): void {
      lastTouch.delete(grantId);
    },
  };
}
