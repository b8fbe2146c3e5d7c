import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError } from '../../../shared/config/load.ts';
import { loadLogo } from './branding.ts';
import { consentPage } from './consent-page.ts';
import { html, layout } from './html.ts';

const body = html`<h1>Hello</h1>`;

describe('branding on the pages', () => {
  it("is Gatehouse's by default, with no footer", () => {
    const page = layout({ title: 'Sign in', body });
    assert.match(page, /<title>Sign in - Gatehouse<\/title>/);
    assert.match(page, /<p class="brand">Gatehouse<\/p>/);
    assert.doesNotMatch(page, /<footer|Powered by/);
  });

  it("names the organization, its support contact, and Gatehouse only as 'Powered by'", () => {
    const page = layout({
      title: 'Sign in',
      body,
      branding: { organizationName: 'Example Corp', supportContact: 'help@example.com', logo: true },
    });
    assert.match(page, /<title>Sign in - Example Corp<\/title>/);
    assert.match(page, /<img class="logo" src="\/branding\/logo" alt=""><p class="brand">Example Corp<\/p>/);
    assert.match(page, /Questions\? <a href="mailto:help@example\.com">help@example\.com<\/a>/);
    assert.match(page, /Powered by Gatehouse/);
    assert.doesNotMatch(page.replace('Powered by Gatehouse', ''), /Gatehouse/);
    const web = layout({
      title: 't',
      body,
      branding: { organizationName: 'X', supportContact: 'https://help.example/' },
    });
    assert.match(web, /<a href="https:\/\/help\.example\/">https:\/\/help\.example\/<\/a>/);
  });

  it('escapes the configured name', () => {
    const page = layout({ title: 't', body, branding: { organizationName: '<script>x</script>' } });
    assert.doesNotMatch(page, /<script>x/);
    assert.match(page, /&lt;script&gt;x/);
  });

  it('the consent page speaks in the organization’s name', () => {
    const page = consentPage({
      action: '/i/1/consent',
      csrfToken: 't',
      client: { name: 'Agent', kind: 'dynamic', verified: false },
      redirectHost: '127.0.0.1',
      user: { email: 'alice@example.com' },
      resource: { name: 'MCP', uri: 'https://mcp.example/mcp' },
      scopes: [{ name: 's', description: 'd', alreadyGranted: false }],
      branding: { organizationName: 'Example Corp' },
    });
    assert.match(page, /Example Corp could not verify who publishes this application/);
  });
});

describe('the logo file', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'gatehouse-logo-'));
  it('is read once: a PNG, JPEG or WebP of at most 256 KiB', () => {
    writeFileSync(path.join(dir, 'logo.png'), Buffer.from('89504e470d0a1a0a', 'hex'));
    assert.deepEqual(loadLogo('logo.png', dir).type, 'image/png');
  });
  it('refuses SVG (it can carry script), a missing file and an oversized one, saying which', () => {
    writeFileSync(path.join(dir, 'logo.svg'), '<svg/>');
    writeFileSync(path.join(dir, 'big.jpg'), Buffer.alloc(300 * 1024));
    const refused = (file: string, message: RegExp) =>
      assert.throws(
        () => loadLogo(file, dir),
        (error: unknown) => error instanceof ConfigError && message.test(error.message),
      );
    refused('logo.svg', /not a \.png, \.jpg, \.jpeg or \.webp file/);
    refused('none.png', /does not exist/);
    refused('big.jpg', /larger than 256 KiB/);
  });
});
