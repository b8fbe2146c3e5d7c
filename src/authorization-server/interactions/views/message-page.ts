/**
 * A page that tells the user something went wrong (or simply what happened), e.g. "This sign-in
 * link has expired". It never shows a stack trace: lines that look like stack frames are dropped
 * from `details`, which is also cut to a reasonable length.
 */

import type { Branding } from './branding.ts';
import { html, layout } from './html.ts';

export interface MessagePageOptions {
  title: string;
  message: string;
  /** A short extra explanation for the user (never an internal error or stack). */
  details?: string;
  devBanner?: boolean;
  branding?: Branding | undefined;
}

const MAX_DETAILS_LENGTH = 500;
const STACK_FRAME = /^\s*at\s+\S/;

/** Removes stack-frame lines ("    at foo (file.js:1:2)") and bounds the length. */
export function sanitizeDetails(details: string): string {
  const kept = details
    .split(/\r?\n/)
    .filter((line) => !STACK_FRAME.test(line))
    .join('\n')
    .trim();
  return kept.length > MAX_DETAILS_LENGTH ? `${kept.slice(0, MAX_DETAILS_LENGTH - 1)}\u2026` : kept;
}

export function messagePage({ title, message, details, devBanner, branding }: MessagePageOptions): string {
  const shownDetails = details === undefined ? '' : sanitizeDetails(details);
  const body = html`<h1>${title}</h1>
<p>${message}</p>
${shownDetails && html`<p class="hint">${shownDetails}</p>`}`;
  return layout({ title, body, devBanner, branding });
}
