/**
 * A short grace period for rotated refresh tokens.
 *
 * oidc-provider rotates refresh tokens and treats a consumed one presented again as theft: it revokes
 * the whole grant (RFC 9700 §4.14.2). Two concurrent refreshes by the same client (two tabs, two
 * processes of one agent) look exactly like that. Within `graceSeconds` of its rotation a consumed
 * token is therefore still accepted once more; after that, reuse revokes the grant as before.
 */
import type { Adapter, AdapterPayload } from 'oidc-provider';

export function withRefreshTokenGrace(adapter: Adapter, graceSeconds: number): Adapter {
  if (graceSeconds <= 0) return adapter;
  return {
    upsert: (id, payload, expiresIn) => adapter.upsert(id, payload, expiresIn),
    findByUid: (uid) => adapter.findByUid(uid),
    findByUserCode: (code) => adapter.findByUserCode(code),
    consume: (id) => adapter.consume(id),
    destroy: (id) => adapter.destroy(id),
    revokeByGrantId: (grantId) => adapter.revokeByGrantId(grantId),
    async find(id) {
      const payload = (await adapter.find(id)) as AdapterPayload | undefined;
      if (!payload || typeof payload.consumed !== 'number') return payload;
      const age = Math.floor(Date.now() / 1000) - payload.consumed;
      return age <= graceSeconds ? { ...payload, consumed: undefined } : payload;
    },
  };
}
