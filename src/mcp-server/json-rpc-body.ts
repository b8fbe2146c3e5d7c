/**
 * Reads the body of a POST to /mcp before the SDK sees it, to refuse what no supported revision
 * allows. JSON-RPC batches were removed from MCP in 2025-06-18, and Gatehouse speaks 2025-06-18 and
 * later only; the SDK would still execute an all-legacy batch (one POST, twenty `tools/call`, twenty
 * API calls). A batch is answered with one JSON-RPC error and nothing in it runs.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { HttpError, readBody } from '../shared/http.ts';

/** JSON-RPC 2.0 §5.1 error codes. */
const PARSE_ERROR = -32700;
const INVALID_REQUEST = -32600;
/** The SDK answers an oversized body with this implementation-defined server error (§5.1). */
const SERVER_ERROR = -32000;

export type BodyOutcome = { ok: true; body: unknown } | { ok: false };

function sendJsonRpcError(res: ServerResponse, status: number, code: number, message: string): void {
  const text = JSON.stringify({ jsonrpc: '2.0', id: null, error: { code, message } });
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  });
  res.end(text);
}

/** The parsed body of a POST, or undefined after answering the request with a JSON-RPC error. */
export async function readJsonRpcBody(
  req: IncomingMessage,
  res: ServerResponse,
  maxBytes: number,
): Promise<BodyOutcome> {
  let raw: Buffer;
  try {
    raw = await readBody(req, maxBytes);
  } catch (error) {
    if (error instanceof HttpError && error.status === 413) {
      res.setHeader('connection', 'close');
      sendJsonRpcError(
        res,
        413,
        SERVER_ERROR,
        `Payload Too Large: the request body is larger than ${maxBytes} bytes`,
      );
      return { ok: false };
    }
    throw error;
  }
  let body: unknown;
  try {
    body = JSON.parse(raw.toString('utf8'));
  } catch {
    sendJsonRpcError(res, 400, PARSE_ERROR, 'Parse error: the request body is not valid JSON');
    return { ok: false };
  }
  if (Array.isArray(body)) {
    sendJsonRpcError(
      res,
      400,
      INVALID_REQUEST,
      'JSON-RPC batches are not supported (MCP removed them in 2025-06-18): send one message per request',
    );
    return { ok: false };
  }
  return { ok: true, body };
}
