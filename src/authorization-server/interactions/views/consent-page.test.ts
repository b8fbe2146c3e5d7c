import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type ConsentPageOptions, consentPage } from './consent-page.ts';

const base: ConsentPageOptions = {
  action: '/i/1/consent',
  csrfToken: 'tok',
  client: { name: 'Notes Agent', clientIdHost: 'notes.example', verified: true, kind: 'cimd' },
  redirectHost: 'callback.notes.example',
  user: { email: 'ann@example.com' },
  resource: { name: 'Notes API', uri: 'https://mcp.example/notes' },
  scopes: [
    { name: 'notes:read', description: 'Read your notes', alreadyGranted: true },
    { name: 'notes:write', description: 'Create and change your notes', alreadyGranted: false },
    { name: 'notes:delete', description: 'Delete your notes', alreadyGranted: false },
  ],
};

function section(page: string, className: string): string {
  return new RegExp(`<ul class="${className}">([\\s\\S]*?)</ul>`).exec(page)?.[1] ?? '';
}

describe('consentPage', () => {
  it('shows the client, its client_id host, the redirect host, the user and the resource', () => {
    const page = consentPage(base);
    assert.match(page, /<h1>Allow Notes Agent to access Notes API\?<\/h1>/);
    assert.match(page, /<dt>Published at<\/dt><dd><strong>notes\.example<\/strong><\/dd>/);
    assert.match(page, /<dt>Sends you back to<\/dt><dd><strong>callback\.notes\.example<\/strong><\/dd>/);
    assert.match(page, /ann@example\.com/);
    assert.match(page, /https:\/\/mcp\.example\/notes/);
  });

  it('shows Verified for a verified client', () => {
    const page = consentPage(base);
    assert.match(page, /<span class="badge verified">Verified<\/span>/);
    assert.doesNotMatch(page, /Unverified/);
    assert.doesNotMatch(page, /could not verify/);
  });

  it('shows Unverified and the warning for an unverified client', () => {
    const page = consentPage({ ...base, client: { ...base.client, verified: false } });
    assert.match(page, /<span class="badge unverified">Unverified<\/span>/);
    assert.match(
      page,
      /Gatehouse could not verify who publishes this application\. Only continue if you trust it\./,
    );
    assert.doesNotMatch(page, />Verified</);
  });

  it('offers "Not you? Sign out" beside who is signed in, for a shared browser', () => {
    const page = consentPage({ ...base, user: { email: 'alice@example.com', signOutUrl: '/session/end' } });
    assert.match(page, /alice@example\.com <a href="\/session\/end">Not you\? Sign out<\/a>/);
    assert.doesNotMatch(consentPage(base), /Not you\?/);
  });

  it('lists only the new scopes as requested, and the granted ones apart', () => {
    const page = consentPage(base);
    const requested = section(page, 'scopes requested');
    assert.match(requested, /Create and change your notes/);
    assert.match(requested, /notes:write/);
    assert.match(requested, /Delete your notes/);
    assert.doesNotMatch(requested, /notes:read|Read your notes/);
    const granted = section(page, 'scopes granted');
    assert.match(granted, /notes:read/);
    assert.doesNotMatch(granted, /notes:write|notes:delete/);
  });

  it('has no granted list when nothing was granted before, and says so when nothing new is asked', () => {
    const fresh = consentPage({ ...base, scopes: base.scopes.map((s) => ({ ...s, alreadyGranted: false })) });
    assert.doesNotMatch(fresh, /Already allowed/);
    assert.equal((section(fresh, 'scopes requested').match(/<li>/g) ?? []).length, 3);
    const nothingNew = consentPage({
      ...base,
      scopes: base.scopes.map((s) => ({ ...s, alreadyGranted: true })),
    });
    assert.doesNotMatch(nothingNew, /class="scopes requested"/);
    assert.match(nothingNew, /no new permission/);
  });

  it('shows the client_id host only for CIMD clients', () => {
    for (const kind of ['pre-registered', 'dynamic'] as const) {
      const page = consentPage({ ...base, client: { ...base.client, kind } });
      assert.doesNotMatch(page, /Published at/);
    }
  });

  it('has one form with the csrf field and the Allow and Deny buttons', () => {
    const page = consentPage(base);
    const forms = [...page.matchAll(/<form method="post" action="\/i\/1\/consent">([\s\S]*?)<\/form>/g)];
    assert.equal(forms.length, 1);
    const form = forms[0]?.[1] ?? '';
    assert.ok(form.includes('<input type="hidden" name="csrf" value="tok">'));
    assert.ok(form.includes('<button name="decision" value="allow">Allow</button>'));
    assert.ok(form.includes('<button name="decision" value="deny">Deny</button>'));
  });
});
