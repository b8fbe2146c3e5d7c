/**
 * Resource-server DPoP nonces (RFC 9449 §9): values the gateway hands out in `DPoP-Nonce` and then
 * requires in proofs, so a proof cannot be made ahead of time and replayed later.
 *
 * Stateless: a nonce is a time slot and an HMAC of it, valid for its slot and the one before, so
 * every gateway instance with the same key (derived from the gateway's client secret, which they
 * share) accepts the nonces of the others, and nothing has to be stored.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

export interface DpopNonces {
  /** The nonce to hand out now. */
  current(): string;
  /** True for a nonce this gateway (or one with the same key) issued within the last two slots. */
  check(nonce: string): boolean;
}

const MAC_BYTES = 16;

export function createDpopNonces(
  key: Uint8Array,
  lifetimeSeconds: number,
  now: () => number = () => Date.now() / 1000,
): DpopNonces {
  const slotOf = () => Math.floor(now() / lifetimeSeconds);
  const mac = (slot: number) =>
    createHmac('sha256', key).update(`dpop-nonce:${slot}`).digest().subarray(0, MAC_BYTES);
  const encode = (slot: number) => {
    const bytes = Buffer.alloc(8);
    bytes.writeBigUInt64BE(BigInt(slot));
    return Buffer.concat([bytes, mac(slot)]).toString('base64url');
  };
  return {
    current: () => encode(slotOf()),
    check(nonce) {
      if (typeof nonce !== 'string' || nonce.length > 64) return false;
      const bytes = Buffer.from(nonce, 'base64url');
      if (bytes.length !== 8 + MAC_BYTES || bytes.toString('base64url') !== nonce) return false;
      const slot = Number(bytes.readBigUInt64BE(0));
      const currentSlot = slotOf();
      if (slot !== currentSlot && slot !== currentSlot - 1) return false;
      return timingSafeEqual(bytes.subarray(8), mac(slot));
    },
  };
}
