/**
 * Properties every page must have: user-supplied values escaped everywhere, no script, the inline
 * style allowed by the CSP hash, and every form a POST carrying the csrf field.
 */

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { consentPage } from './consent-page.ts';
import { devInboxPage } from './dev-inbox-page.ts';
import { CONTENT_SECURITY_POLICY, escapeHtml } from './html.ts';
import { codePage, emailPage } from './login-pages.ts';
import { messagePage } from './message-page.ts';

/** Breaks out of text, of double- and single-quoted attributes, and of template literals. */
const EVIL = `"'><script>alert(1)</script><img src=x onerror=alert(2)>\`\${x}`;
const CSRF = 'csrf-token-123';

function evil(field: string): string {
  return `${field}${EVIL}`;
}

const pages: Record<string, string> = {
  email: emailPage({
    action: '/interaction/u1/email',
    csrfToken: CSRF,
    clientName: evil('client'),
    error: evil('error'),
    email: evil('email'),
  }),
  code: codePage({
    action: '/interaction/u1/code',
    csrfToken: CSRF,
    email: evil('email'),
    resendAction: '/interaction/u1/resend',
    error: evil('error'),
    attemptsLeft: 2,
    useAnotherEmailHref: '/interaction/u1',
  }),
  consent: consentPage({
    action: '/interaction/u1/consent',
    csrfToken: CSRF,
    client: { name: evil('client'), clientIdHost: evil('cidhost'), verified: false, kind: 'cimd' },
    redirectHost: evil('redirhost'),
    user: { email: evil('email') },
    resource: { name: evil('resname'), uri: evil('resuri') },
    scopes: [
      { name: evil('newscope'), description: evil('newdesc'), alreadyGranted: false },
      { name: evil('oldscope'), description: evil('olddesc'), alreadyGranted: true },
    ],
  }),
  message: messagePage({ title: evil('title'), message: evil('message'), details: evil('details') }),
  inbox: devInboxPage([
    { to: evil('to'), subject: evil('subject'), text: evil('text'), time: new Date(0) },
    { to: 'b@example.com', subject: 'Code', text: 'Your code is 123456', time: '2026-01-01T00:00:00Z' },
  ]),
  inboxEmpty: devInboxPage([]),
};

const fieldsByPage: Record<string, string[]> = {
  email: ['client', 'error', 'email'],
  code: ['email', 'error'],
  consent: [
    'client',
    'cidhost',
    'redirhost',
    'email',
    'resname',
    'resuri',
    'newscope',
    'newdesc',
    'oldscope',
    'olddesc',
  ],
  message: ['title', 'message', 'details'],
  inbox: ['to', 'subject', 'text'],
  inboxEmpty: [],
};

describe('all pages', () => {
  for (const [name, page] of Object.entries(pages)) {
    describe(name, () => {
      it('escapes every user-supplied field', () => {
        assert.ok(!page.includes(EVIL), 'the raw payload must not appear');
        for (const field of fieldsByPage[name] ?? []) {
          assert.ok(page.includes(escapeHtml(evil(field))), `${field} should appear escaped`);
        }
      });

      it('contains no script and no event handler attribute', () => {
        assert.doesNotMatch(page, /<script/i);
        assert.doesNotMatch(page, /<img/i);
        for (const [tag] of page.matchAll(/<[a-z][^>]*>/gi)) {
          const outsideValues = tag.replace(/"[^"]*"/g, '""');
          assert.doesNotMatch(outsideValues, /\son[a-z]+=/i, tag);
          assert.doesNotMatch(outsideValues, /'/, `attributes are double-quoted: ${tag}`);
        }
        assert.doesNotMatch(page, /javascript:/i);
      });

      it('uses only the inline style that the CSP hash allows, and no style attribute', () => {
        const styles = [...page.matchAll(/<style>([\s\S]*?)<\/style>/g)];
        assert.equal(styles.length, 1);
        const hash = createHash('sha256')
          .update(styles[0]?.[1] ?? '', 'utf8')
          .digest('base64');
        assert.ok(CONTENT_SECURITY_POLICY.includes(`'sha256-${hash}'`));
        assert.doesNotMatch(page, /\sstyle=/i);
      });

      it('posts every form, with the csrf hidden field', () => {
        const forms = [...page.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form>/g)];
        assert.equal(forms.length, (page.match(/<form\b/g) ?? []).length, 'every form is closed');
        for (const [, attributes, content] of forms) {
          assert.match(attributes ?? '', /\smethod="post"/);
          assert.match(attributes ?? '', /\saction="\/interaction\/u1\/[a-z]+"/);
          assert.ok(content?.includes(`<input type="hidden" name="csrf" value="${CSRF}">`));
        }
      });

      it('is a full document with the Gatehouse header', () => {
        assert.ok(page.startsWith('<!doctype html>\n<html lang="en">'));
        assert.match(page, /<p class="brand">Gatehouse<\/p>/);
        assert.ok(page.trimEnd().endsWith('</html>'));
      });
    });
  }

  it('has the expected number of forms per page', () => {
    const count = (page: string) => (page.match(/<form\b/g) ?? []).length;
    assert.equal(count(pages.email ?? ''), 1);
    assert.equal(count(pages.code ?? ''), 2);
    assert.equal(count(pages.consent ?? ''), 1);
    assert.equal(count(pages.message ?? ''), 0);
    assert.equal(count(pages.inbox ?? ''), 0);
  });
});
