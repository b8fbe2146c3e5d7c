/**
 * A short grace period for rotated refresh tokens, used at most once.
 *
 * oidc-provider rotates refresh tokens and treats a consumed one presented again as theft: it revokes
 * the whole grant (RFC 9700 §4.14.2). Two concurrent refreshes by the same client (two tabs, two
 * processes of one agent) look exactly like that. So a rotated token may be used **once more**, within
 * `graceSeconds` of its **first** use; any later use is reuse, and revokes the family.
 *
 * Both limits matter. oidc-provider consumes the token again on the grace use; if that re-stamped the
 * consumption time, a thief replaying the token every few seconds would never leave the window. So the
 * first consumption time is kept, and the grace use is recorded on the row (`graceUsedAt`), after
 * which the token reads as consumed whatever the time.
 */
import type { Adapter, AdapterPayload } from 'oidc-provider';

/** Our own marker on a consumed refresh token's payload: when its one grace use happened (epoch s). */
const GRACE_USED = 'graceUsedAt';

export function withRefreshTokenGrace(
  adapter: Adapter,
  graceSeconds: number,
  now: () => number = () => Math.floor(Date.now() / 1000),
): Adapter {
  if (graceSeconds <= 0) return adapter;
  return {
    upsert: (id, payload, expiresIn) => adapter.upsert(id, payload, expiresIn),
    findByUid: (uid) => adapter.findByUid(uid),
    findByUserCode: (code) => adapter.findByUserCode(code),
    destroy: (id) => adapter.destroy(id),
    revokeByGrantId: (grantId) => adapter.revokeByGrantId(grantId),
    async find(id) {
      const payload = (await adapter.find(id)) as AdapterPayload | undefined;
      if (!payload || typeof payload.consumed !== 'number') return payload;
      const withinWindow = now() - payload.consumed <= graceSeconds;
      return withinWindow && payload[GRACE_USED] === undefined
        ? { ...payload, consumed: undefined }
        : payload;
    },
    async consume(id) {
      const payload = (await adapter.find(id)) as AdapterPayload | undefined;
      if (!payload || typeof payload.consumed !== 'number') return adapter.consume(id);
      // The grace use: the first consumption time stays, and the token can never be used again.
      const remaining = typeof payload.exp === 'number' ? Math.max(1, payload.exp - now()) : undefined;
      await adapter.upsert(id, { ...payload, [GRACE_USED]: now() }, remaining as number);
    },
  };
}
