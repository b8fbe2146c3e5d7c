/**
 * The internal clients' HTTP Basic credentials (RFC 7617, client id and secret form-encoded as in
 * RFC 6749 §2.3.1), for the routes only they may use: the revocation stream (gateway, MCP server)
 * and the tool-call reports (MCP server). Secrets compare in constant time.
 */
import { timingSafeEqual } from 'node:crypto';
import { basicClientId } from './token-rate-limit.ts';

/** The secret of a `Basic` header, for a client id already read from it. */
function basicSecret(header: string): string | undefined {
  const encoded = /^Basic[ ]+([A-Za-z0-9+/=]+)$/i.exec(header.trim())?.[1];
  if (!encoded) return undefined;
  const decoded = Buffer.from(encoded, 'base64').toString('utf8');
  try {
    return decodeURIComponent(decoded.slice(decoded.indexOf(':') + 1).replace(/\+/g, ' '));
  } catch {
    return undefined;
  }
}

const sameSecret = (given: string, expected: string) => {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
};

export interface InternalCaller {
  /** The authenticated client, or undefined. */
  clientId: string | undefined;
  /** The client id the header named, authenticated or not (for the audit line). */
  named: string | undefined;
}

/** Who an `Authorization` header authenticates, among `clients` (client id → secret). */
export function internalCaller(
  header: string | undefined,
  clients: ReadonlyMap<string, string>,
): InternalCaller {
  const named = basicClientId(header);
  const expected = named ? clients.get(named) : undefined;
  const secret = header ? basicSecret(header) : undefined;
  const ok =
    named !== undefined && expected !== undefined && secret !== undefined && sameSecret(secret, expected);
  return { clientId: ok ? named : undefined, named };
}
