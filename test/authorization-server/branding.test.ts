/**
 * Branding (issue 9): the organization's name, support contact and logo on the pages and in the
 * sign-in mail, Gatehouse's name only as "Powered by".
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  startTestAuthorizationServer,
  type TestAuthorizationServer,
} from '../helpers/authorization-server.ts';
import { Browser, csrfOf, inbox, pageText, pkce, registerNativeClient } from '../helpers/oauth.ts';

describe('branding', () => {
  let as: TestAuthorizationServer;
  let dir: string;
  const png = Buffer.from('89504e470d0a1a0a0000000d49484452', 'hex');
  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'gatehouse-branding-'));
    writeFileSync(path.join(dir, 'logo.png'), png);
    as = await startTestAuthorizationServer({
      branding: {
        organizationName: 'Example Corp',
        supportContact: 'help@example.com',
        logoFile: path.join(dir, 'logo.png'),
      },
    });
  });
  after(async () => {
    await as.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('the sign-in page and the code mail are the organization’s; Gatehouse is only "Powered by"', async () => {
    const clientId = await registerNativeClient(as.issuer);
    const url = new URL(`${as.issuer}/authorize`);
    for (const [key, value] of Object.entries({
      response_type: 'code',
      client_id: clientId,
      redirect_uri: 'http://127.0.0.1:5555/callback',
      scope: 'stocks:read',
      code_challenge: pkce().challenge,
      code_challenge_method: 'S256',
    }))
      url.searchParams.set(key, value);
    const browser = new Browser();
    const start = await browser.request(url.href);
    const page = await browser.request(start.location!);
    assert.match(page.text, /<title>Sign in - Example Corp<\/title>/);
    const text = pageText(page.text);
    assert.match(text, /Example Corp Sign in/);
    assert.match(text, /Questions\? help@example\.com Powered by Gatehouse/);
    assert.match(page.text, /<img class="logo" src="\/branding\/logo" alt="">/);
    await browser.request(`${as.issuer}${new URL(start.location!).pathname}/email`, {
      form: { csrf: csrfOf(page.text), email: 'alice@example.com' },
    });
    const mail = (await inbox(as.issuer)).find((message) => message.to === 'alice@example.com');
    assert.equal(mail?.subject, 'Your Example Corp sign-in code');
  });

  test('the logo is served from the sign-in service itself, as an image that cannot run anything', async () => {
    const logo = await fetch(`${as.issuer}/branding/logo`);
    assert.equal(logo.status, 200);
    assert.equal(logo.headers.get('content-type'), 'image/png');
    assert.equal(logo.headers.get('x-content-type-options'), 'nosniff');
    assert.equal(logo.headers.get('content-security-policy'), "default-src 'none'");
    assert.deepEqual(Buffer.from(await logo.arrayBuffer()), png);
  });

  test('a name with a line break is refused at start, saying which key', async () => {
    await assert.rejects(
      startTestAuthorizationServer({ branding: { organizationName: 'Evil\r\nBcc: x@example.com' } }),
      /branding\.organizationName.*control characters/s,
    );
  });
});
