/**
 * Findings of a security review of the admin side, each kept as a test that failed before its fix:
 * - an administrator's removal survives a restart, whatever the entry's source (seed.ts);
 * - the pages' own client (gatehouse-account) sends codes only to its exact callbacks, and its
 *   implied consent covers `openid` and nothing more (RFC 8252 §8.6);
 * - deleting a disabled CIMD client keeps it disabled;
 * - removing an approved domain cuts its users off at once (a revocation is announced);
 * - a notice in a link made elsewhere is not shown as the system's.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { describe, test } from 'node:test';
import {
  startTestAuthorizationServer,
  type TestAuthorizationServer,
} from '../helpers/authorization-server.ts';
import { basic, openSignedIn, pageText, pkce, postForm, userToken } from '../helpers/oauth.ts';

const REDIRECT = 'http://127.0.0.1/callback';
const ADMIN_CLIENT = {
  clientId: 'ops-admin',
  name: 'Admin scripts',
  role: 'admin',
  authMethod: 'client_secret_basic',
  secret: 'file:secrets/ops-admin.secret',
  scopes: ['admin'],
};

const secretOf = (as: TestAuthorizationServer, file: string) =>
  readFileSync(path.join(as.dataDir, 'secrets', file), 'utf8').trim();

async function api(as: TestAuthorizationServer, method: string, route: string, body?: unknown) {
  const token = await postForm(
    `${as.issuer}/token`,
    { grant_type: 'client_credentials', scope: 'admin' },
    { authorization: basic('ops-admin', secretOf(as, 'ops-admin.secret')) },
  );
  const response = await fetch(`${as.issuer}/admin/api${route}`, {
    method,
    headers: {
      authorization: `Bearer ${String(token.json.access_token)}`,
      ...(body ? { 'content-type': 'application/json' } : {}),
    },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  const text = await response.text();
  return { status: response.status, json: (text ? JSON.parse(text) : {}) as Record<string, unknown> };
}

const introspect = async (as: TestAuthorizationServer, token: string) =>
  (
    await postForm(
      `${as.issuer}/introspect`,
      { token },
      { authorization: basic('gatehouse-gateway', secretOf(as, 'gatehouse-gateway.secret')) },
    )
  ).json;

async function register(as: TestAuthorizationServer) {
  const response = await fetch(`${as.issuer}/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ client_name: 'Agent', redirect_uris: [REDIRECT], application_type: 'native' }),
  });
  return String(((await response.json()) as { client_id: string }).client_id);
}

describe('security review of the admin side', () => {
  test('a user an administrator changed and then removed stays removed after a restart', async () => {
    const as = await startTestAuthorizationServer({ clients: [ADMIN_CLIENT] });
    try {
      await api(as, 'PATCH', '/users/bob%40example.com', { status: 'suspended' });
      assert.equal((await api(as, 'DELETE', '/users/bob%40example.com')).status, 204);
      await api(as, 'POST', '/domains', { domain: 'partner.example' });
      await api(as, 'DELETE', '/domains/partner.example');
      await as.restart({ clients: [ADMIN_CLIENT], users: { domains: [{ domain: 'partner.example' }] } });
      assert.equal((await api(as, 'GET', '/users/bob%40example.com')).status, 404, 'bob is not back');
      assert.deepEqual((await api(as, 'GET', '/domains')).json.domains, [], 'nor the domain');
    } finally {
      await as.close();
    }
  });

  test("the pages' own client sends codes to its exact callbacks only, and its consent covers openid only", async () => {
    // A loopback issuer, where any port matches for other clients (RFC 8252 §7.3).
    const as = await startTestAuthorizationServer();
    try {
      // Sign alice in (through the account page), so a later request needs no login.
      const { browser, ...page } = await openSignedIn(as.issuer, '/account', 'alice@example.com');
      assert.equal(page.status, 200);
      assert.match(pageText(page.text), /Signed in as alice@example\.com/);
      const { challenge } = pkce();
      const port = new URL(as.issuer).port;
      const attempt = async (redirectUri: string, scope: string) => {
        const url = new URL(`${as.issuer}/authorize`);
        url.search = new URLSearchParams({
          client_id: 'gatehouse-account',
          response_type: 'code',
          redirect_uri: redirectUri,
          scope,
          state: 'x',
          code_challenge: challenge,
          code_challenge_method: 'S256',
        }).toString();
        let response = await browser.request(url.href);
        const visited: string[] = [];
        for (let hop = 0; hop < 10 && (response.status === 302 || response.status === 303); hop++) {
          visited.push(response.location!);
          if (!response.location!.startsWith(as.issuer)) break;
          response = await browser.request(response.location!);
        }
        return { response, visited };
      };
      const elsewhere = `http://127.0.0.1:${Number(port) + 1}/account/callback`;
      const stolen = await attempt(elsewhere, 'openid');
      assert.ok(
        !stolen.visited.some((location) => location.startsWith(elsewhere)),
        'no code for another port',
      );
      assert.equal(stolen.response.status, 400);
      const more = await attempt(`${as.issuer}/account/callback`, 'openid stocks:read');
      assert.ok(more.visited.length < 10, 'no redirect loop');
      assert.ok(!more.visited.some((location) => /[?&]code=/.test(location)), 'no code for more than openid');
    } finally {
      await as.close();
    }
  });

  test('deleting a disabled metadata-document client keeps it disabled', async () => {
    let documentUrl = '';
    const documents = createServer((_req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(
        JSON.stringify({
          client_id: documentUrl,
          client_name: 'Document agent',
          redirect_uris: [REDIRECT],
          token_endpoint_auth_method: 'none',
        }),
      );
    });
    await new Promise<void>((resolve) => documents.listen(0, '127.0.0.1', resolve));
    documentUrl = `http://127.0.0.1:${(documents.address() as AddressInfo).port}/agent.json`;
    const as = await startTestAuthorizationServer({
      clientIdMetadataDocuments: { allowLoopbackHttp: true },
      clients: [ADMIN_CLIENT],
    });
    try {
      const first = await userToken({
        issuer: as.issuer,
        clientId: documentUrl,
        redirectUri: REDIRECT,
        scope: 'stocks:read',
      });
      assert.equal(first.token.status, 200);
      const id = encodeURIComponent(documentUrl);
      assert.equal((await api(as, 'POST', `/clients/${id}/disable`)).status, 200);
      assert.equal((await api(as, 'DELETE', `/clients/${id}`)).status, 204);
      const again = await userToken({
        issuer: as.issuer,
        clientId: documentUrl,
        redirectUri: REDIRECT,
        scope: 'stocks:read',
      }).then(
        (result) => result.token.status,
        () => 'refused',
      );
      assert.equal(again, 'refused');
    } finally {
      await as.close();
      documents.close();
    }
  });

  test("removing an approved domain stops its users' tokens at once", async () => {
    const as = await startTestAuthorizationServer({ clients: [ADMIN_CLIENT] });
    try {
      await api(as, 'POST', '/domains', { domain: 'example.org' });
      const clientId = await register(as);
      const { token } = await userToken({
        issuer: as.issuer,
        clientId,
        redirectUri: REDIRECT,
        scope: 'stocks:read',
        email: 'carol@example.org',
      });
      const carolToken = String(token.json.access_token);
      assert.equal((await introspect(as, carolToken)).active, true);
      const before = (await as.running.audit.search({ event: 'grant.revoked' })).records.length;
      assert.equal((await api(as, 'DELETE', '/domains/example.org')).status, 204);
      assert.deepEqual(await introspect(as, carolToken), { active: false });
      assert.equal(as.audit('admin.domain.removed').at(-1)?.users_cut_off, 1);
      assert.ok(
        (await as.running.audit.search({ event: 'grant.revoked' })).records.length > before,
        'her grant is revoked',
      );
    } finally {
      await as.close();
    }
  });

  test('a notice in a link made elsewhere is not shown', async () => {
    const as = await startTestAuthorizationServer();
    try {
      const { browser } = await openSignedIn(as.issuer, '/account', 'alice@example.com');
      const spoofed = await browser.request(
        `${as.issuer}/account?notice=${encodeURIComponent('Your session expired: sign in at https://evil.example')}`,
      );
      assert.equal(spoofed.status, 200);
      assert.doesNotMatch(spoofed.text, /evil\.example/);
      const forged = await browser.request(`${as.issuer}/account?notice=hello&n=AAAA`);
      assert.doesNotMatch(pageText(forged.text), /hello/);
    } finally {
      await as.close();
    }
  });
});
