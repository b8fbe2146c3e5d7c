/**
 * HTML building blocks for the authorization server's pages: an escaping helper, an `html` tagged
 * template that escapes everything it is given unless it is already `SafeHtml`, and the page layout.
 *
 * Security invariants:
 * - every interpolated value is escaped unless it is a `SafeHtml`, which only `html` and `raw` produce;
 * - pages carry no script at all and no external resource; the one inline `<style>` is allowed by
 *   its hash in `CONTENT_SECURITY_POLICY`, computed here from the exact text the layout writes.
 */

import { createHash } from 'node:crypto';
import { type Branding, DEFAULT_BRANDING, LOGO_PATH } from './branding.ts';

const ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
  '`': '&#96;',
};

/** Escapes a value for HTML text and for double- or single-quoted attribute values. `null`/`undefined` give ''. */
export function escapeHtml(value: unknown): string {
  if (value === null || value === undefined) return '';
  return String(value).replace(/[&<>"'`]/g, (char) => ESCAPES[char] ?? char);
}

/** Markup that is safe to insert as it is. Only `html` and `raw` make one: the private field makes the type nominal. */
class SafeHtmlValue {
  readonly #html: string;

  constructor(markup: string) {
    this.#html = markup;
  }

  toString(): string {
    return this.#html;
  }

  static is(value: unknown): value is SafeHtmlValue {
    return typeof value === 'object' && value !== null && #html in value;
  }
}

export type SafeHtml = SafeHtmlValue;

export function isSafeHtml(value: unknown): value is SafeHtml {
  return SafeHtmlValue.is(value);
}

/** Marks trusted markup as safe. Never pass anything derived from a request, a client or a user. */
export function raw(markup: string): SafeHtml {
  return new SafeHtmlValue(markup);
}

function render(value: unknown): string {
  if (value === null || value === undefined || value === false) return '';
  if (SafeHtmlValue.is(value)) return value.toString();
  if (Array.isArray(value)) return value.map(render).join('');
  return escapeHtml(value);
}

/**
 * Tagged template: `html\`<p>${name}</p>\``. Interpolations are escaped unless they are `SafeHtml`;
 * arrays are rendered item by item and joined; `null`, `undefined` and `false` render as nothing,
 * so `${condition && html\`...\`}` works.
 */
export function html(strings: TemplateStringsArray, ...values: unknown[]): SafeHtml {
  let out = strings[0] ?? '';
  for (let i = 0; i < values.length; i++) {
    out += render(values[i]) + (strings[i + 1] ?? '');
  }
  return new SafeHtmlValue(out);
}

/**
 * A URL for an `action` or `href` written by the server. Anything with a scheme other than http(s)
 * (`javascript:`, `data:`, ...) is replaced by '#', so a mistake upstream cannot become script.
 */
export function safeUrl(url: string): string {
  const trimmed = url.trim();
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(trimmed);
  if (scheme && !/^https?$/i.test(scheme[1] ?? '')) return '#';
  return trimmed;
}

/** The hidden anti-CSRF field every form carries. */
export function csrfField(csrfToken: string): SafeHtml {
  return html`<input type="hidden" name="csrf" value="${csrfToken}">`;
}

/** A `role="alert"` error paragraph, or nothing. */
export function errorMessage(error: string | undefined, id = 'form-error'): SafeHtml {
  return error ? html`<p class="error" role="alert" id="${id}">${error}</p>` : html``;
}

// The exact text of the inline style: its hash goes into the Content-Security-Policy, so any change
// here changes the policy with it. ASCII only, so the hash does not depend on an encoding.
const STYLE = `
:root{color-scheme:light dark;--bg:#f5f6f8;--fg:#1b1f24;--muted:#555d66;--card:#fff;--line:#d5d9de;
--accent:#1f5fbf;--accent-fg:#fff;--ok:#1c6b3a;--ok-bg:#e3f4e8;--warn:#8a4b00;--warn-bg:#fff3dc;
--err:#a4161a;--err-bg:#fde8e8;--dev:#5b2a86;--dev-bg:#efe4fa}
@media (prefers-color-scheme:dark){:root{--bg:#14171a;--fg:#e8eaed;--muted:#a9b0b8;--card:#1e2226;
--line:#3a4047;--accent:#7aa7f0;--accent-fg:#0c1524;--ok:#8fd6a6;--ok-bg:#183223;--warn:#f5c26b;
--warn-bg:#3a2a10;--err:#ff9a9a;--err-bg:#3d1717;--dev:#d6b8f5;--dev-bg:#2d1e3d}}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%;text-size-adjust:100%}
body{margin:0;background:var(--bg);color:var(--fg);line-height:1.5;
font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
.dev-banner{background:var(--dev-bg);color:var(--dev);border-bottom:2px solid var(--dev);
padding:.5rem 1rem;text-align:center}
.site-header{max-width:34rem;margin:0 auto;padding:1rem 1rem 0;display:flex;align-items:center;gap:.5rem}
.logo{max-height:2rem;max-width:8rem}
.site-footer{max-width:34rem;margin:0 auto;padding:0 1rem 1.5rem;color:var(--muted);font-size:.9rem}
.brand{margin:0;font-weight:700;font-size:1.1rem;letter-spacing:.02em}
main{max-width:34rem;margin:1rem auto 2rem;padding:1.5rem;background:var(--card);
border:1px solid var(--line);border-radius:.75rem}
@media (max-width:36rem){main{margin:.75rem .5rem 1.5rem;padding:1.1rem}}
h1{font-size:1.45rem;line-height:1.25;margin:0 0 .75rem;overflow-wrap:anywhere}
h2{font-size:1.05rem;margin:1.5rem 0 .5rem;overflow-wrap:anywhere}
p,dd,li{overflow-wrap:anywhere}
.muted,.hint{color:var(--muted)}
.hint{font-size:.925rem}
a{color:var(--accent)}
code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.9em;overflow-wrap:anywhere}
form{margin:1rem 0 0}
label{display:block;font-weight:600;margin:0 0 .35rem}
input[type=email],input[type=text]{display:block;width:100%;font:inherit;font-size:1.1rem;padding:.65rem .75rem;
color:var(--fg);background:var(--card);border:1px solid var(--muted);border-radius:.5rem}
input[name=code]{letter-spacing:.35em;font-variant-numeric:tabular-nums}
button{font:inherit;font-weight:600;min-height:2.75rem;padding:.6rem 1.2rem;border-radius:.5rem;cursor:pointer;
border:1px solid var(--accent);background:var(--accent);color:var(--accent-fg)}
button.secondary,button[value=deny]{background:transparent;color:var(--accent)}
:focus-visible{outline:3px solid var(--accent);outline-offset:2px}
.field{margin:0 0 1rem}
.actions{display:flex;flex-wrap:wrap;gap:.75rem;margin-top:1.25rem}
.actions button{flex:1 1 10rem}
.error{background:var(--err-bg);color:var(--err);border-left:4px solid var(--err);padding:.6rem .8rem;
border-radius:.25rem}
.notice{padding:.6rem .8rem;border-radius:.25rem;border-left:4px solid var(--line)}
.notice.verified{background:var(--ok-bg);color:var(--ok);border-color:var(--ok)}
.notice.unverified,.notice.dev{background:var(--warn-bg);color:var(--warn);border-color:var(--warn)}
.badge{display:inline-block;font-size:.8rem;font-weight:700;padding:.1rem .5rem;border-radius:1rem;
border:1px solid currentColor;vertical-align:middle;white-space:nowrap}
.badge.verified{color:var(--ok);background:var(--ok-bg)}
.badge.unverified{color:var(--warn);background:var(--warn-bg)}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.35rem 1rem;margin:1rem 0}
dt{color:var(--muted)}
dd{margin:0}
@media (max-width:24rem){dl{grid-template-columns:1fr}dd{margin-bottom:.4rem}}
ul.scopes{padding-left:1.25rem;margin:.5rem 0}
ul.scopes li{margin:.35rem 0}
.message{border-top:1px solid var(--line);padding-top:1rem;margin-top:1rem}
main.wide,.site-header.wide,.site-footer.wide{max-width:72rem}
nav.tabs{display:flex;flex-wrap:wrap;gap:.25rem 1rem;margin:0 0 1rem;padding-bottom:.5rem;border-bottom:1px solid var(--line)}
nav.tabs a[aria-current=page]{font-weight:700;text-decoration:none;color:var(--fg)}
.table-wrap{overflow-x:auto}
ul.agents{list-style:none;padding:0}
ul.agents>li{border-top:1px solid var(--line);padding-top:.5rem}
table{width:100%;border-collapse:collapse;margin:.5rem 0 1rem;font-size:.95rem}
th,td{text-align:left;vertical-align:top;padding:.45rem .5rem;border-bottom:1px solid var(--line)}
th{color:var(--muted);font-weight:600}
form.inline{display:inline;margin:0}
form.inline button,button.small{min-height:2rem;padding:.25rem .7rem;font-size:.9rem}
button.danger{background:transparent;color:var(--err);border-color:var(--err)}
.row{display:flex;flex-wrap:wrap;gap:.75rem;align-items:flex-end}
.row .field{flex:1 1 12rem}
select{display:block;width:100%;font:inherit;padding:.6rem .5rem;color:var(--fg);background:var(--card);
border:1px solid var(--muted);border-radius:.5rem}
textarea{display:block;width:100%;font:inherit;font-family:ui-monospace,Menlo,Consolas,monospace;padding:.5rem;
color:var(--fg);background:var(--card);border:1px solid var(--muted);border-radius:.5rem}
.ok{background:var(--ok-bg);color:var(--ok);border-left:4px solid var(--ok);padding:.6rem .8rem;border-radius:.25rem}
pre{white-space:pre-wrap;overflow-wrap:anywhere;background:var(--bg);border:1px solid var(--line);
padding:.75rem;border-radius:.5rem;font-size:.9rem}
`;

const STYLE_HASH = createHash('sha256').update(STYLE, 'utf8').digest('base64');

/**
 * The Content-Security-Policy to send with every page rendered through `layout`: nothing may load
 * but the inline style (by hash) and same-origin or data: images; forms post to the same origin.
 *
 * Caution: Chrome and Safari also check `form-action` against the redirects that follow a form
 * submission. A form whose POST ends in a redirect to the client's redirect_uri (the consent form,
 * and the code form when no consent is needed) must be served with
 * `CONTENT_SECURITY_POLICY_REDIRECTING_FORMS` instead, or the browser refuses the final redirect.
 */
export const CONTENT_SECURITY_POLICY = `default-src 'none'; style-src 'sha256-${STYLE_HASH}'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'`;

/**
 * The same policy without `form-action`, for pages whose form submission ends in a redirect to
 * another origin (the client's redirect_uri, which may itself redirect to a custom scheme).
 * Everything else stays locked down: no script can run, so no script can retarget a form.
 */
export const CONTENT_SECURITY_POLICY_REDIRECTING_FORMS = `default-src 'none'; style-src 'sha256-${STYLE_HASH}'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'`;

export interface LayoutOptions {
  /** The page's <title> (" - <organization>" is appended). The body carries its own <h1>. */
  title: string;
  body: SafeHtml;
  /** Shows a "Development mode" banner at the top of the page. */
  devBanner?: boolean;
  /** The organization's name, support contact and logo (branding.ts); Gatehouse's by default. */
  branding?: Branding | undefined;
  /** A wide page (the admin console's tables). */
  wide?: boolean;
}

/** A support contact as a link: `mailto:` for an address, the URL itself for an https URL. */
function supportLink(contact: string): SafeHtml {
  // The configuration accepts an https URL or an email address, nothing else (schema.ts).
  if (contact.startsWith('https://')) return html`<a href="${safeUrl(contact)}">${contact}</a>`;
  return html`<a href="mailto:${encodeURIComponent(contact).replace('%40', '@')}">${contact}</a>`;
}

/**
 * A complete HTML document around `body`.
 *
 * The referrer policy is `same-origin`, not `no-referrer`: under `no-referrer` browsers send
 * `Origin: null` with every form POST (Fetch, "append a request Origin header"), and the forms'
 * Origin check would refuse every real user. `same-origin` still sends nothing to other sites.
 * It overrides the server-wide `Referrer-Policy: no-referrer` header for these pages.
 */
export function layout({
  title,
  body,
  devBanner = false,
  branding = DEFAULT_BRANDING,
  wide = false,
}: LayoutOptions): string {
  const width = wide ? ' wide' : '';
  const name = branding.organizationName;
  const logo = branding.logo && html`<img class="logo" src="${LOGO_PATH}" alt="">`;
  const support = branding.supportContact && html`<p>Questions? ${supportLink(branding.supportContact)}</p>`;
  const poweredBy = name !== DEFAULT_BRANDING.organizationName && html`<p>Powered by Gatehouse</p>`;
  const footer =
    (support || poweredBy) && html`<footer class="site-footer${width}">${support}${poweredBy}</footer>`;
  const banner =
    devBanner &&
    html`<div class="dev-banner" role="note"><strong>Development mode</strong> &mdash; not for production use</div>`;
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<meta name="referrer" content="same-origin">
<meta name="robots" content="noindex, nofollow">
<title>${title} - ${name}</title>
<link rel="icon" href="data:,">
<style>${raw(STYLE)}</style>
</head>
<body>
${banner}
<header class="site-header${width}">${logo}<p class="brand">${name}</p></header>
${wide ? raw('<main class="wide">') : raw('<main>')}
${body}
</main>
${footer}
</body>
</html>
`.toString();
}
