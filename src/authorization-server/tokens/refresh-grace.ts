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
 *
 * "Once" must hold when the uses arrive together, at one instance or at several: oidc-provider
 * reads the token, checks it, then consumes it, so uses that all read before any wrote would all
 * pass. The stores' `consumeWithGrace` (oidc-model-store.ts, GraceConsumable) decides in the write
 * itself, in one conditional statement: of any number of concurrent uses, the first use and one
 * grace use pass, and every other gets invalid_grant (RFC 6749 §5.2) and revokes the grant, as a
 * reuse does (RFC 9700 §4.14.2).
 */
import { type Adapter, type AdapterPayload, errors } from 'oidc-provider';
import { GRACE_USED, type GraceConsumable } from '../store/oidc-model-store.ts';

function graceConsumable(adapter: Adapter): (Adapter & GraceConsumable) | undefined {
  return typeof (adapter as Partial<GraceConsumable>).consumeWithGrace === 'function'
    ? (adapter as Adapter & GraceConsumable)
    : undefined;
}

export interface RefreshGraceOptions {
  /**
   * Revokes the grant of a token reused past its grace (its tokens, the grant, and the
   * announcement to the gateways); without it, only the grant's rows are deleted.
   */
  onReuse?: (grantId: string) => Promise<void>;
  now?: () => number;
}

export function withRefreshTokenGrace(
  adapter: Adapter,
  graceSeconds: number,
  options: RefreshGraceOptions = {},
): Adapter {
  const now = options.now ?? (() => Math.floor(Date.now() / 1000));
  const atomic = graceConsumable(adapter);
  if (graceSeconds <= 0 && !atomic) return adapter;
  return {
    upsert: (id, payload, expiresIn) => adapter.upsert(id, payload, expiresIn),
    findByUid: (uid) => adapter.findByUid(uid),
    findByUserCode: (code) => adapter.findByUserCode(code),
    destroy: (id) => adapter.destroy(id),
    revokeByGrantId: (grantId) => adapter.revokeByGrantId(grantId),
    async find(id) {
      const payload = (await adapter.find(id)) as AdapterPayload | undefined;
      if (!payload || typeof payload.consumed !== 'number' || graceSeconds <= 0) return payload;
      const withinWindow = now() - payload.consumed <= graceSeconds;
      return withinWindow && payload[GRACE_USED] === undefined
        ? { ...payload, consumed: undefined }
        : payload;
    },
    async consume(id) {
      if (atomic) {
        const at = now();
        // Without a grace period, no first use is recent enough for a second one.
        const firstUsedSince = graceSeconds > 0 ? at - graceSeconds : Number.MAX_SAFE_INTEGER;
        if (await atomic.consumeWithGrace(id, firstUsedSince, at)) return;
        // Other uses got there first, and this one is past what the grace allows: a reuse.
        const grantId = (await adapter.find(id))?.grantId;
        if (typeof grantId === 'string')
          await (options.onReuse ? options.onReuse(grantId) : adapter.revokeByGrantId(grantId));
        throw new errors.InvalidGrant('refresh token already used');
      }
      // A store without it (the benchmark's in-memory one): the same rule, not atomic.
      const payload = (await adapter.find(id)) as AdapterPayload | undefined;
      if (!payload || typeof payload.consumed !== 'number') return adapter.consume(id);
      // The grace use: the first consumption time stays, and the token can never be used again.
      const remaining = typeof payload.exp === 'number' ? Math.max(1, payload.exp - now()) : undefined;
      await adapter.upsert(id, { ...payload, [GRACE_USED]: now() }, remaining as number);
    },
  };
}
