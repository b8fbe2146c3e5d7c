/**
 * Requests no component should serve, refused before any handler sees them (RFC 9112):
 * - more than one `Host` field (§3.2: "MUST respond with a 400");
 * - more than one `Authorization` field: Node keeps the first and drops the rest, so a proxy in
 *   front and this server could each believe a different credential;
 * - an HTTP/1.0 request with `Transfer-Encoding` (§6.1: the framing "MUST be treated as faulty"):
 *   served, a request hidden in its body would run on the kept-open connection;
 * - a target that is not a path (origin-form, §3.2.1), such as an absolute URI: every route here is
 *   a path, and an absolute target confuses URL building downstream (`OPTIONS *` aside).
 * The answer is a 400 with a JSON error, and the connection is closed.
 *
 * `OPTIONS *` asks about the server in general (RFC 9110 §9.3.7); every component answers it the
 * same way, 204 with the methods any of its routes may take, before any handler sees it.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

/** How many times each of `names` appears in the raw header list. */
function fieldCounts(req: IncomingMessage, names: readonly string[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    const name = req.rawHeaders[i]!.toLowerCase();
    if (names.includes(name)) counts.set(name, (counts.get(name) ?? 0) + 1);
  }
  return counts;
}

/** Why this request must not be served, or undefined. */
export function framingProblem(req: IncomingMessage): string | undefined {
  const counts = fieldCounts(req, ['host', 'authorization']);
  if ((counts.get('host') ?? 0) > 1) return 'send one Host header';
  if ((counts.get('authorization') ?? 0) > 1) return 'send one Authorization header, not several';
  if (req.httpVersion === '1.0' && req.headers['transfer-encoding'] !== undefined) {
    return 'HTTP/1.0 requests cannot use Transfer-Encoding';
  }
  const target = req.url ?? '';
  if (!target.startsWith('/') && !(req.method === 'OPTIONS' && target === '*')) {
    return 'the request target must be a path';
  }
  return undefined;
}

/** Answers a faulty request: 400 `invalid_request`, and the connection closes after it. */
export function refuseFraming(res: ServerResponse, problem: string): void {
  const body = JSON.stringify({ error: 'invalid_request', error_description: problem });
  res.shouldKeepAlive = false;
  res.writeHead(400, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    connection: 'close',
  });
  res.end(body);
}

/** `OPTIONS *`: the one request whose target is not a path. */
export const isServerWideOptions = (req: IncomingMessage): boolean =>
  req.method === 'OPTIONS' && req.url === '*';

export function answerServerWideOptions(res: ServerResponse): void {
  res.writeHead(204, { allow: 'GET, HEAD, POST, DELETE, PUT, OPTIONS', 'cache-control': 'no-store' });
  res.end();
}
