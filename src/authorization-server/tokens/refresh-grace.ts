/**
 * A short grace period for rotated refresh tokens.
 *
 * oidc-provider rotates refresh tokens and treats a consumed one presented again as theft: it revokes
 * the whole grant (RFC 9700 §4.14.2). Two concurrent refreshes by the same client (two tabs, two
 * processes of one agent) look exactly like that. Within `graceSeconds` of its rotation a consumed
 * token is therefore still accepted once more; after that, reuse revokes the grant as before.
 */
import type { Adapter, AdapterPayload } from 'oidc-provider';
import { withFind } from '../store/sqlite-store.ts';

export function withRefreshTokenGrace(adapter: Adapter, graceSeconds: number): Adapter {
  if (graceSeconds <= 0) return adapter;
  return withFind(adapter, async (id) => {
    const payload = (await adapter.find(id)) as AdapterPayload | undefined;
    if (!payload || typeof payload.consumed !== 'number') return payload;
    const age = Math.floor(Date.now() / 1000) - payload.consumed;
    return age <= graceSeconds ? { ...payload, consumed: undefined } : payload;
  });
}
