/**
 * What every page of the account and the admin console does on the wire: bounded web forms, and
 * HTML answers that cannot be framed, run no script and are not cached (interactions/views/html.ts).
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { Context } from 'koa';
import { CONTENT_SECURITY_POLICY } from '../interactions/views/html.ts';

const FORM_LIMIT_BYTES = 16 * 1024;

/** An urlencoded form, or undefined when it is not one or is too large. */
export async function readForm(ctx: Context): Promise<URLSearchParams | undefined> {
  if (!ctx.is('application/x-www-form-urlencoded')) return undefined;
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of ctx.req) {
    size += (chunk as Buffer).length;
    if (size > FORM_LIMIT_BYTES) return undefined;
    chunks.push(chunk as Buffer);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

export function renderPage(ctx: Context, body: string, status = 200): void {
  ctx.status = status;
  ctx.type = 'html';
  ctx.set('content-security-policy', CONTENT_SECURITY_POLICY);
  ctx.set('x-frame-options', 'DENY');
  ctx.set('cache-control', 'no-store');
  ctx.body = body;
}

/**
 * After a change, back to the page with a notice (Post/Redirect/Get: a reload does not repeat it).
 * The notice travels in the URL with its HMAC, so a link made elsewhere cannot put words of its
 * own in a page of ours styled as the system's (content spoofing).
 */
export function createNotices(key: Uint8Array) {
  const mac = (text: string) => createHmac('sha256', key).update(`notice:${text}`).digest('base64url');
  return {
    redirect(ctx: Context, path: string, notice: string): void {
      const text = notice.slice(0, 300);
      ctx.status = 303;
      const separator = path.includes('?') ? '&' : '?';
      ctx.redirect(`${path}${separator}notice=${encodeURIComponent(text)}&n=${mac(text)}`);
    },
    /** The notice of the redirect when its HMAC holds; shown as text only (escaped). */
    read(ctx: Context): string | undefined {
      const text = ctx.query.notice;
      const given = ctx.query.n;
      if (typeof text !== 'string' || typeof given !== 'string') return undefined;
      const expected = Buffer.from(mac(text));
      const actual = Buffer.from(given);
      return expected.length === actual.length && timingSafeEqual(expected, actual) ? text : undefined;
    },
  };
}

export type Notices = ReturnType<typeof createNotices>;
