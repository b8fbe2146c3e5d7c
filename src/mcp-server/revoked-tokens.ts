/**
 * What the MCP server has heard revoked (revocation events from the authorization server), so that
 * a phantom token of a revoked grant, subject or client is refused here too, even when it reaches
 * this server without the gateway's check (design §3: revocation takes effect everywhere).
 *
 * A grant or a token revoked is revoked for good (a token by the SHA-256 of the opaque token, the
 * phantom token's `token_hash`: a workload's token has no grant). A subject or a client is revoked as of the event's time:
 * tokens minted (`iat`) after it, from a later sign-in, are not affected. Entries are bounded in
 * number and kept for `retentionSeconds`, longer than any access token lives.
 */
import { LRUCache } from 'lru-cache';
import type { RevocationEvent } from '../shared/revocation-events.ts';

export interface RevokedTokens {
  record(event: RevocationEvent): void;
  /** True when a token with these claims has been revoked. */
  isRevoked(claims: {
    grant_id?: unknown;
    token_hash?: unknown;
    sub?: unknown;
    client_id?: unknown;
    iat?: unknown;
  }): boolean;
  readonly size: number;
}

export function createRevokedTokens(options: {
  maxEntries: number;
  retentionSeconds: number;
}): RevokedTokens {
  const ttl = options.retentionSeconds * 1000;
  const grants = new LRUCache<string, number>({ max: options.maxEntries, ttl });
  const tokens = new LRUCache<string, number>({ max: options.maxEntries, ttl });
  const subjects = new LRUCache<string, number>({ max: options.maxEntries, ttl });
  const clients = new LRUCache<string, number>({ max: options.maxEntries, ttl });
  const before = (revokedAt: number | undefined, iat: unknown) =>
    revokedAt !== undefined && (typeof iat !== 'number' || iat <= revokedAt);
  return {
    record(event) {
      if (event.type === 'grant') grants.set(event.grant_id, event.at);
      else if (event.type === 'subject')
        subjects.set(event.sub, Math.max(event.at, subjects.get(event.sub) ?? 0));
      else if (event.type === 'client')
        clients.set(event.client_id, Math.max(event.at, clients.get(event.client_id) ?? 0));
      else if (event.type === 'token') tokens.set(event.token_hash, event.at);
    },
    isRevoked(claims) {
      if (typeof claims.grant_id === 'string' && grants.has(claims.grant_id)) return true;
      if (typeof claims.token_hash === 'string' && tokens.has(claims.token_hash)) return true;
      if (typeof claims.sub === 'string' && before(subjects.get(claims.sub), claims.iat)) return true;
      if (typeof claims.client_id === 'string' && before(clients.get(claims.client_id), claims.iat))
        return true;
      return false;
    },
    get size() {
      return grants.size + tokens.size + subjects.size + clients.size;
    },
  };
}
