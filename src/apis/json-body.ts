/** Reads a JSON request body: `application/json` only, bounded in size, parse errors as 400. */
import type { IncomingMessage } from 'node:http';
import { HttpError, readBody } from '../shared/http.ts';
import { ApiError, invalidRequest } from './api-error.ts';

/** Small on purpose: an order is well under 200 bytes. */
export const MAX_BODY_BYTES = 16 * 1024;

export async function readJsonBody(req: IncomingMessage, limit = MAX_BODY_BYTES): Promise<unknown> {
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/json') {
    throw new ApiError(415, 'unsupported_media_type', 'send the request body as application/json');
  }
  let raw: Buffer;
  try {
    raw = await readBody(req, limit);
  } catch (error) {
    if (error instanceof HttpError) {
      // The rest of an oversized body is not read: the connection cannot be reused.
      throw new ApiError(error.status, 'request_too_large', error.message, { connection: 'close' });
    }
    throw error;
  }
  try {
    return JSON.parse(raw.toString('utf8'));
  } catch {
    throw invalidRequest('the request body is not valid JSON');
  }
}
