/**
 * A JSON request body read within a bound, for the routes the internal clients post to (tool-call
 * reports, approval requests): undefined when it is larger than `limit` bytes or not JSON, so the
 * route answers 400 and never buffers more than it allows.
 */
import type { Context } from 'koa';

export async function readBoundedJson(ctx: Context, limit: number): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of ctx.req) {
    size += (chunk as Buffer).length;
    if (size > limit) return undefined;
    chunks.push(chunk as Buffer);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    return undefined;
  }
}
