/**
 * One id per agent request, carried from the gateway through the MCP server, its token exchange and
 * its API call, so that every log line and audit record of that request can be found together.
 *
 * The gateway makes it (`newRequestId`), whatever the client sent: an agent's own value could
 * collide with another's or be crafted to confuse the trail. It goes upstream, and back to the
 * client, in `X-Request-Id`. Behind the gateway a component takes the header when it is a plausible
 * id (`requestIdOf`) and makes one otherwise (a request that did not come through the gateway).
 * Correlation only: nothing is authorized by it.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';

export const REQUEST_ID_HEADER = 'x-request-id';

/** Letters, digits and `._:-`, 8 to 128 characters: a UUID and the ids of common proxies fit. */
const PLAUSIBLE = /^[A-Za-z0-9][A-Za-z0-9._:-]{7,127}$/;

export const newRequestId = (): string => randomUUID();

/** The request's id from its `X-Request-Id` header when that is plausible, else undefined. */
export function requestIdFrom(headers: IncomingHttpHeaders): string | undefined {
  const value = headers[REQUEST_ID_HEADER];
  return typeof value === 'string' && PLAUSIBLE.test(value) ? value : undefined;
}

/** The request's id from its header, or a new one. */
export const requestIdOf = (headers: IncomingHttpHeaders): string => requestIdFrom(headers) ?? newRequestId();
