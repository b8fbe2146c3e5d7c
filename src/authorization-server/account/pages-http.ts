/**
 * What every page of the account and the admin console does on the wire: bounded web forms, and
 * HTML answers that cannot be framed, run no script and are not cached (interactions/views/html.ts).
 */
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

/** After a change, back to the page with a notice (Post/Redirect/Get: a reload does not repeat it). */
export function redirectWithNotice(ctx: Context, path: string, notice: string): void {
  ctx.status = 303;
  const separator = path.includes('?') ? '&' : '?';
  ctx.redirect(`${path}${separator}notice=${encodeURIComponent(notice)}`);
}

/** The notice of the redirect, shown as text only (escaped), at most a line. */
export const noticeOf = (ctx: Context): string | undefined =>
  typeof ctx.query.notice === 'string' ? ctx.query.notice.slice(0, 200) : undefined;
