/**
 * oidc-provider's outbound `fetch` (its `jwks_uri` and `sector_identifier_uri` lookups), routed
 * through the server's one vetted transport (vetted-fetch.ts).
 *
 * oidc-provider's own guard destroys a socket to a special-use address only after it connected: the
 * connection is made, and an open port answers in seconds where a closed one fails in milliseconds,
 * a port scanner for anyone who can register a `jwks_uri`. Here the address is refused before any
 * socket exists, plain http never leaves the machine, and the body is capped.
 */
import type { Logger } from '../../shared/logging.ts';
import { type HostLookup, OutboundRequestError, vettedGet } from './vetted-fetch.ts';

export interface ProviderFetchOptions {
  /** The development switch (clientIdMetadataDocuments.allowLoopbackHttp): loopback http peers. */
  allowLoopback: boolean;
  timeoutMs: number;
  maxBytes: number;
  logger: Logger;
  lookup?: HostLookup;
}

/** A key set or sector document is small; anything near this is not one. */
export const PROVIDER_FETCH_MAX_BYTES = 64 * 1024;

export function createProviderFetch(options: ProviderFetchOptions) {
  return async (
    input: string | URL,
    init: { method?: string; headers?: HeadersInit } = {},
  ): Promise<Response> => {
    const url = new URL(input);
    const method = (init.method ?? 'GET').toUpperCase();
    if (method !== 'GET') {
      // Nothing configured here posts to a client (back-channel logout and CIBA are off).
      throw new OutboundRequestError('invalid_url', `outbound ${method} requests are not made`);
    }
    const accept = new Headers(init.headers).get('accept') ?? 'application/json';
    try {
      const response = await vettedGet(url, {
        maxBytes: options.maxBytes,
        timeoutMs: options.timeoutMs,
        allowLoopback: options.allowLoopback,
        headers: { accept, 'accept-encoding': 'identity', 'user-agent': 'Gatehouse' },
        ...(options.lookup ? { lookup: options.lookup } : {}),
      });
      const headers = new Headers();
      for (const [name, value] of Object.entries(response.headers)) {
        if (value === undefined) continue;
        for (const item of [value].flat()) headers.append(name, item);
      }
      // A non-200 answer keeps its status and carries no body; oidc-provider refuses it.
      const status = response.status >= 200 && response.status <= 599 ? response.status : 502;
      const empty = status !== 200 || response.body.byteLength === 0;
      return new Response(empty ? null : Buffer.from(response.body), { status, headers });
    } catch (error) {
      const reason = error instanceof OutboundRequestError ? error.reason : 'network';
      // Only the host and our own reason reach the log: never a body.
      options.logger.warn('outbound fetch refused', { host: url.host, reason });
      throw error;
    }
  };
}
