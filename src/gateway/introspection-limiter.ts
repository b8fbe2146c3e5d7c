/**
 * Bounds the introspections the gateway sends to the authorization server, so that a flood of
 * distinct bogus tokens (each one a cache miss) cannot turn into the same flood of introspections.
 *
 * Two concurrency limits with bounded queues: per source address (one client cannot take every slot)
 * and overall (the authorization server never sees more than `maxConcurrent` at once from one
 * gateway). A request over a full queue is refused at once: 429 for the address (`AddressLimitError`),
 * 503 overall (`GatewayBusyError`), both with Retry-After. Nothing is refused while there is room, so
 * legitimate cache misses are only ever delayed, and only behind the same address's own backlog.
 * Cache hits never come here: a known token is never slowed by a flood.
 */

export interface IntrospectionLimits {
  maxConcurrent: number;
  maxQueued: number;
  perAddressConcurrent: number;
  perAddressQueued: number;
}

export class AddressLimitError extends Error {
  override name = 'AddressLimitError';
  /** When the client may try again (RFC 9110 §10.2.3). */
  readonly retryAfterSeconds: number;
  constructor(message: string, retryAfterSeconds = 1) {
    super(message);
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

export class GatewayBusyError extends Error {
  override name = 'GatewayBusyError';
}

interface Gate {
  active: number;
  waiting: Array<() => void>;
}

export interface IntrospectionLimiter {
  run<T>(address: string, task: () => Promise<T>): Promise<T>;
  /** Addresses with work in flight or queued (for tests and diagnostics). */
  readonly addresses: number;
}

export function createIntrospectionLimiter(limits: IntrospectionLimits): IntrospectionLimiter {
  const global: Gate = { active: 0, waiting: [] };
  const perAddress = new Map<string, Gate>();

  /** Takes a slot of `gate`, waiting in its queue when all are busy; false when the queue is full. */
  const acquire = (gate: Gate, max: number, maxQueued: number): Promise<void> | false => {
    if (gate.active < max) {
      gate.active += 1;
      return Promise.resolve();
    }
    if (gate.waiting.length >= maxQueued) return false;
    // The slot is handed over by release(): `active` stays counted for the waiter.
    return new Promise<void>((resolve) => gate.waiting.push(resolve));
  };
  const release = (gate: Gate) => {
    const next = gate.waiting.shift();
    if (next) next();
    else gate.active -= 1;
  };

  return {
    get addresses() {
      return perAddress.size;
    },
    async run(address, task) {
      let gate = perAddress.get(address);
      if (!gate) {
        gate = { active: 0, waiting: [] };
        perAddress.set(address, gate);
      }
      const local = acquire(gate, limits.perAddressConcurrent, limits.perAddressQueued);
      if (local === false) {
        throw new AddressLimitError('too many token checks from this address at once; retry shortly');
      }
      await local;
      try {
        const shared = acquire(global, limits.maxConcurrent, limits.maxQueued);
        if (shared === false)
          throw new GatewayBusyError('the gateway is checking too many tokens; retry shortly');
        await shared;
        try {
          return await task();
        } finally {
          release(global);
        }
      } finally {
        release(gate);
        if (gate.active === 0 && gate.waiting.length === 0) perAddress.delete(address);
      }
    },
  };
}
