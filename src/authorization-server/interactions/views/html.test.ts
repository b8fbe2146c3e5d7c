import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import {
  CONTENT_SECURITY_POLICY,
  CONTENT_SECURITY_POLICY_REDIRECTING_FORMS,
  csrfField,
  escapeHtml,
  html,
  isSafeHtml,
  layout,
  raw,
  safeUrl,
} from './html.ts';

describe('escapeHtml', () => {
  it('escapes the six characters that matter in text and attributes', () => {
    assert.equal(
      escapeHtml(`<a href="x" title='y'>\`&`),
      '&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&#96;&amp;',
    );
  });

  it('turns null and undefined into nothing and stringifies the rest', () => {
    assert.equal(escapeHtml(undefined), '');
    assert.equal(escapeHtml(null), '');
    assert.equal(escapeHtml(42), '42');
    assert.equal(escapeHtml(false), 'false');
  });

  it('escapes an already-escaped string again (no double-unescaping shortcut)', () => {
    assert.equal(escapeHtml('&lt;'), '&amp;lt;');
  });
});

describe('html', () => {
  it('escapes interpolated values', () => {
    const value = '<script>alert("x")</script>';
    assert.equal(
      html`<p>${value}</p>`.toString(),
      '<p>&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;</p>',
    );
  });

  it('does not let a value break out of an attribute', () => {
    const value = `" autofocus onfocus="alert(1)`;
    assert.equal(
      html`<input value="${value}">`.toString(),
      '<input value="&quot; autofocus onfocus=&quot;alert(1)">',
    );
    const single = `' onmouseover='x`;
    assert.equal(html`<input value='${single}'>`.toString(), `<input value='&#39; onmouseover=&#39;x'>`);
  });

  it('keeps SafeHtml from html and raw as it is', () => {
    const inner = html`<b>${'<i>'}</b>`;
    assert.equal(html`<p>${inner}${raw('<br>')}</p>`.toString(), '<p><b>&lt;i&gt;</b><br></p>');
  });

  it('joins arrays, escaping plain strings in them and keeping SafeHtml', () => {
    const items = ['<a>', 'b'].map((item) => html`<li>${item}</li>`);
    assert.equal(html`<ul>${items}</ul>`.toString(), '<ul><li>&lt;a&gt;</li><li>b</li></ul>');
    assert.equal(html`${['<x>', html`<y>`]}`.toString(), '&lt;x&gt;<y>');
  });

  it('renders null, undefined and false as nothing, and numbers as text', () => {
    assert.equal(html`[${null}${undefined}${false}${0}]`.toString(), '[0]');
  });

  it('does not treat look-alike objects as SafeHtml', () => {
    const forged = { toString: () => '<script>' };
    assert.equal(isSafeHtml(forged), false);
    assert.equal(html`${forged}`.toString(), '&lt;script&gt;');
    assert.equal(isSafeHtml(html`x`), true);
  });
});

describe('safeUrl', () => {
  it('keeps relative and http(s) URLs and neutralises other schemes', () => {
    assert.equal(safeUrl('/interaction/abc/login'), '/interaction/abc/login');
    assert.equal(safeUrl('https://as.example/x'), 'https://as.example/x');
    assert.equal(safeUrl('javascript:alert(1)'), '#');
    assert.equal(safeUrl(' JavaScript:alert(1)'), '#');
    assert.equal(safeUrl('data:text/html,<script>'), '#');
  });
});

describe('csrfField', () => {
  it('is a hidden input named csrf with the escaped token', () => {
    assert.equal(csrfField('a"b').toString(), '<input type="hidden" name="csrf" value="a&quot;b">');
  });
});

describe('layout', () => {
  const page = layout({ title: 'T <x>', body: html`<h1>Hello</h1>` });

  it('is a complete document with doctype, lang, viewport and the Gatehouse header', () => {
    assert.ok(page.startsWith('<!doctype html>'));
    assert.match(page, /<html lang="en">/);
    assert.match(page, /<meta name="viewport" content="width=device-width, initial-scale=1">/);
    assert.match(page, /<header[^>]*>[\s\S]*Gatehouse[\s\S]*<\/header>/);
    assert.match(page, /<title>T &lt;x&gt; - Gatehouse<\/title>/);
    assert.match(page, /<main>\s*<h1>Hello<\/h1>\s*<\/main>/);
  });

  it('shows the development banner only when asked', () => {
    assert.doesNotMatch(page, /Development mode/);
    assert.match(layout({ title: 't', body: html``, devBanner: true }), /Development mode/);
  });

  it('keeps the referrer to the same origin, so form POSTs carry a real Origin header', () => {
    assert.match(page, /<meta name="referrer" content="same-origin">/);
  });

  it('has no script and no external resource', () => {
    assert.doesNotMatch(page, /<script/i);
    assert.doesNotMatch(page, /(src|href)="(https?:)?\/\//i);
    assert.doesNotMatch(page, /@import|url\(/i);
  });

  it('has exactly one inline style, whose hash is the one in the CSP', () => {
    const styles = [...page.matchAll(/<style>([\s\S]*?)<\/style>/g)];
    assert.equal(styles.length, 1);
    const hash = createHash('sha256')
      .update(styles[0]?.[1] ?? '', 'utf8')
      .digest('base64');
    assert.ok(CONTENT_SECURITY_POLICY.includes(`style-src 'sha256-${hash}'`));
    assert.ok(CONTENT_SECURITY_POLICY_REDIRECTING_FORMS.includes(`style-src 'sha256-${hash}'`));
  });
});

describe('CONTENT_SECURITY_POLICY', () => {
  it('is the agreed policy', () => {
    assert.match(
      CONTENT_SECURITY_POLICY,
      /^default-src 'none'; style-src 'sha256-[A-Za-z0-9+/]{43}='; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'$/,
    );
  });

  it('has a variant without form-action for forms that end in a redirect to the client', () => {
    assert.equal(
      CONTENT_SECURITY_POLICY_REDIRECTING_FORMS,
      CONTENT_SECURITY_POLICY.replace(" form-action 'self';", ''),
    );
  });
});
