/**
 * The revocation announcements the authorization server streams to the gateway and the MCP server
 * (Server-Sent Events at `<authorization server>/events/revocations`), so that a revoked token or
 * grant stops working in every cache of every instance within a second (design §3).
 *
 * What an event names is what a cache can find: a grant (user tokens: the phantom token's
 * `grant_id`), a token (by SHA-256 of its value, the gateway's cache key: workload tokens have no
 * grant), a subject (a user removed), a client (deleted). `at` is when it happened, so a token issued
 * afterwards (a later sign-in of the same subject) is not affected.
 */

export type RevocationEvent =
  | { type: 'grant'; grant_id: string; at: number }
  | { type: 'token'; token_hash: string; client_id?: string; at: number }
  | { type: 'subject'; sub: string; at: number }
  | { type: 'client'; client_id: string; at: number };

/** The path of the stream under the authorization server's URL. */
export const REVOCATION_EVENTS_PATH = '/events/revocations';
/**
 * Where a listener whose stream has gone quiet asks which event is the latest (`{"stream", "latest"}`):
 * the same id as its own says the stream is merely quiet, a newer one that it is being held back.
 */
export const REVOCATION_LATEST_PATH = `${REVOCATION_EVENTS_PATH}/latest`;

/**
 * Seconds between the server's keep-alive comments. A listener that has heard nothing for
 * `REVOCATION_FRESH_MS` stops trusting its caches (a stream can stall with its connection up: a
 * buffering proxy, a stalled peer), and one silent for `REVOCATION_SILENCE_MS` reconnects.
 */
export const REVOCATION_HEARTBEAT_SECONDS = 0.5;
/** Three heartbeats: a late one (a busy event loop) does not make the caches distrust themselves. */
export const REVOCATION_FRESH_MS = 1500;
/** Reconnect after this much silence: long enough that a slow server is not hammered with reconnections. */
export const REVOCATION_SILENCE_MS = 10_000;

const text = (value: unknown): value is string =>
  typeof value === 'string' && value.length > 0 && value.length <= 512;

/** A received event, validated; undefined for anything else (ignored, never trusted). */
export function parseRevocationEvent(data: string): RevocationEvent | undefined {
  let value: Record<string, unknown>;
  try {
    value = JSON.parse(data) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null || typeof value.at !== 'number') return undefined;
  const at = value.at;
  switch (value.type) {
    case 'grant':
      return text(value.grant_id) ? { type: 'grant', grant_id: value.grant_id, at } : undefined;
    case 'token':
      return text(value.token_hash)
        ? {
            type: 'token',
            token_hash: value.token_hash,
            ...(text(value.client_id) ? { client_id: value.client_id } : {}),
            at,
          }
        : undefined;
    case 'subject':
      return text(value.sub) ? { type: 'subject', sub: value.sub, at } : undefined;
    case 'client':
      return text(value.client_id) ? { type: 'client', client_id: value.client_id, at } : undefined;
    default:
      return undefined;
  }
}
