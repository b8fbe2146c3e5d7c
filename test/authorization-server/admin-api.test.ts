/**
 * The admin API (<issuer>/admin/api): who may call it (RFC 6750 401/403), what it validates (400
 * with the field), what each change does at once (tokens stop), that every change is audited with
 * its caller, and that changes survive a restart.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  startTestAuthorizationServer,
  type TestAuthorizationServer,
} from '../helpers/authorization-server.ts';
import { basic, inbox, postForm, userToken } from '../helpers/oauth.ts';

const REDIRECT = 'http://127.0.0.1/callback';
const ADMIN = 'gatehouse-admin';
const READER = 'admin-reader';

const CLIENTS = {
  clients: [
    {
      clientId: ADMIN,
      name: 'Admin scripts',
      role: 'admin',
      authMethod: 'client_secret_basic',
      secret: 'file:secrets/gatehouse-admin.secret',
      scopes: ['admin'],
    },
    {
      clientId: READER,
      name: 'Read-only admin scripts',
      role: 'admin',
      authMethod: 'client_secret_basic',
      secret: 'file:secrets/admin-reader.secret',
      scopes: ['admin.read'],
    },
    {
      clientId: 'example-workload',
      name: 'Workload',
      role: 'workload',
      authMethod: 'client_secret_basic',
      secret: 'file:secrets/workload.secret',
      scopes: ['stocks:read'],
    },
  ],
};

const secretOf = (as: TestAuthorizationServer, file: string) =>
  readFileSync(path.join(as.dataDir, 'secrets', file), 'utf8').trim();

async function clientToken(
  as: TestAuthorizationServer,
  clientId: string,
  file: string,
  fields: Record<string, string> = {},
) {
  return postForm(
    `${as.issuer}/token`,
    { grant_type: 'client_credentials', ...fields },
    { authorization: basic(clientId, secretOf(as, file)) },
  );
}

async function adminToken(as: TestAuthorizationServer, who: 'admin' | 'reader' = 'admin'): Promise<string> {
  const response =
    who === 'admin'
      ? await clientToken(as, ADMIN, 'gatehouse-admin.secret', { scope: 'admin' })
      : await clientToken(as, READER, 'admin-reader.secret', { scope: 'admin.read' });
  assert.equal(response.status, 200, response.text);
  return String(response.json.access_token);
}

async function call(
  as: TestAuthorizationServer,
  token: string | undefined,
  method: string,
  route: string,
  body?: unknown,
) {
  const response = await fetch(`${as.issuer}/admin/api${route}`, {
    method,
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await response.text();
  return {
    status: response.status,
    headers: response.headers,
    json: (text ? JSON.parse(text) : {}) as Record<string, unknown> & { [key: string]: never },
  };
}

async function introspect(as: TestAuthorizationServer, token: string) {
  const response = await postForm(
    `${as.issuer}/introspect`,
    { token },
    { authorization: basic('gatehouse-gateway', secretOf(as, 'gatehouse-gateway.secret')) },
  );
  return response.json;
}

async function registerClient(as: TestAuthorizationServer, name = 'Test agent') {
  const response = await fetch(`${as.issuer}/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ client_name: name, redirect_uris: [REDIRECT], application_type: 'native' }),
  });
  assert.equal(response.status, 201);
  return String(((await response.json()) as { client_id: string }).client_id);
}

async function aliceToken(as: TestAuthorizationServer, clientId: string, email = 'alice@example.com') {
  const { token } = await userToken({
    issuer: as.issuer,
    clientId,
    redirectUri: REDIRECT,
    scope: 'stocks:read',
    email,
  });
  assert.equal(token.status, 200, token.text);
  return String(token.json.access_token);
}

describe('admin API', () => {
  let as: TestAuthorizationServer;
  let token: string;
  before(async () => {
    as = await startTestAuthorizationServer(CLIENTS);
    token = await adminToken(as);
  });
  after(() => as.close());

  describe('who may call it', () => {
    test('serves its OpenAPI document, and every path in it is an operation', async () => {
      const response = await fetch(`${as.issuer}/admin/api/openapi.json`);
      assert.equal(response.status, 200);
      const document = (await response.json()) as {
        openapi: string;
        paths: Record<string, object>;
        servers: Array<{ url: string }>;
      };
      assert.equal(document.openapi, '3.1.0');
      assert.equal(document.servers[0]!.url, `${as.issuer}/admin/api`);
      assert.ok(Object.keys(document.paths).length >= 15);
      for (const [route, operations] of Object.entries(document.paths)) {
        const concrete = route.replace(/\{[^}]+\}/g, 'nobody%40example.com');
        for (const method of Object.keys(operations).filter((key) => key !== 'parameters')) {
          // Anonymous: 401 proves the route exists (an unknown one is 404 before authentication).
          const answer = await call(as, undefined, method.toUpperCase(), concrete);
          assert.equal(answer.status, 401, `${method} ${route}`);
        }
      }
    });

    test('anonymous callers get 401 with a bare Bearer challenge (RFC 6750 §3.1)', async () => {
      const response = await call(as, undefined, 'GET', '/users');
      assert.equal(response.status, 401);
      assert.equal(response.headers.get('www-authenticate'), 'Bearer realm="gatehouse-admin"');
      assert.equal(response.headers.get('cache-control'), 'no-store');
    });

    test('a bogus or malformed token gets 401 invalid_token', async () => {
      for (const value of ['not-a-token', 'a'.repeat(600)]) {
        const response = await call(as, value, 'GET', '/users');
        assert.equal(response.status, 401);
        assert.match(response.headers.get('www-authenticate') ?? '', /error="invalid_token"/);
        assert.equal(response.json.error, 'invalid_token');
      }
      const basicAuth = await fetch(`${as.issuer}/admin/api/users`, {
        headers: { authorization: 'Basic eDp5' },
      });
      assert.equal(basicAuth.status, 401);
    });

    test("another client's token (the MCP server's audience) is not an admin token", async () => {
      const workload = await clientToken(as, 'example-workload', 'workload.secret', { scope: 'stocks:read' });
      assert.equal(workload.status, 200, workload.text);
      const response = await call(as, String(workload.json.access_token), 'GET', '/users');
      assert.equal(response.status, 401);
      assert.equal(response.json.error, 'invalid_token');
    });

    test('only admin clients get tokens for the admin API, and admin clients get no other', async () => {
      const workload = await clientToken(as, 'example-workload', 'workload.secret', {
        resource: `${as.issuer}/admin/api`,
      });
      assert.equal(workload.status, 400);
      assert.equal(workload.json.error, 'invalid_target');
      const admin = await clientToken(as, ADMIN, 'gatehouse-admin.secret', {
        resource: 'http://localhost:8000/mcp',
      });
      assert.equal(admin.status, 400);
      assert.equal(admin.json.error, 'invalid_target');
      const tooMuch = await clientToken(as, READER, 'admin-reader.secret', { scope: 'admin' });
      assert.notEqual(tooMuch.json.scope, 'admin');
    });

    test('a read-only token reads, and a change needs the admin scope: 403 insufficient_scope', async () => {
      const reader = await adminToken(as, 'reader');
      assert.equal((await call(as, reader, 'GET', '/users')).status, 200);
      const response = await call(as, reader, 'POST', '/users', { email: 'mallory@example.com' });
      assert.equal(response.status, 403);
      assert.equal(response.json.error, 'insufficient_scope');
      assert.match(
        response.headers.get('www-authenticate') ?? '',
        /error="insufficient_scope", scope="admin"/,
      );
      assert.equal((await call(as, token, 'GET', '/users/mallory%40example.com')).status, 404);
    });

    test('unknown operations are 404 and wrong methods 405, both as JSON', async () => {
      const unknown = await call(as, token, 'GET', '/nothing-here');
      assert.equal(unknown.status, 404);
      assert.equal(unknown.json.error, 'not_found');
      const wrong = await call(as, token, 'PUT', '/users');
      assert.equal(wrong.status, 405);
      assert.match(wrong.headers.get('allow') ?? '', /GET/);
    });
  });

  describe('users', () => {
    test('lists the seeded users, and searches them', async () => {
      const all = await call(as, token, 'GET', '/users');
      assert.equal(all.status, 200);
      const users = all.json.users as unknown as Array<{
        email: string;
        source: string;
        status: string;
        sub: string;
      }>;
      const alice = users.find((user) => user.email === 'alice@example.com');
      assert.equal(alice?.source, 'configuration');
      assert.equal(alice?.status, 'active');
      assert.match(alice?.sub ?? '', /^user_/);
      const found = await call(as, token, 'GET', '/users?search=BOB');
      assert.deepEqual(
        (found.json.users as unknown as Array<{ email: string }>).map((user) => user.email),
        ['bob@example.com'],
      );
      const wildcard = await call(as, token, 'GET', '/users?search=%25');
      assert.deepEqual(wildcard.json.users, []);
    });

    test('refuses bad input with 400 and the field at fault', async () => {
      const cases: Array<[unknown, string]> = [
        [{ email: 'not an address' }, 'email'],
        [{}, 'email'],
        [{ email: 'x@example.com', claims: { sub: 'someone-else' } }, 'claims.sub'],
        [{ email: 'x@example.com', claims: { region: { nested: true } } }, 'claims.region'],
        [{ email: 'x@example.com', claims: ['region'] }, 'claims'],
        [{ email: 'x@example.com', name: 'a\nb' }, 'name'],
        [{ email: 'x@example.com', invite: 'yes' }, 'invite'],
      ];
      for (const [body, field] of cases) {
        const response = await call(as, token, 'POST', '/users', body);
        assert.equal(response.status, 400, JSON.stringify(body));
        assert.equal(response.json.error, 'invalid_request');
        assert.equal(response.json.field, field, JSON.stringify(body));
      }
      const notJson = await fetch(`${as.issuer}/admin/api/users`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: '{"email":',
      });
      assert.equal(notJson.status, 400);
      const form = await fetch(`${as.issuer}/admin/api/users`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/x-www-form-urlencoded' },
        body: 'email=x@example.com',
      });
      assert.equal(form.status, 415);
      assert.equal((await call(as, token, 'GET', '/users/x%40example.com')).status, 404);
    });

    test('adds and invites a user, who may then sign in; the change is audited with its caller', async () => {
      const added = await call(as, token, 'POST', '/users', {
        email: 'Carol@Example.com',
        name: 'Carol',
        claims: { region: 'eu', groups: ['ops'] },
        invite: true,
      });
      assert.equal(added.status, 201);
      assert.equal(added.json.email, 'carol@example.com');
      assert.equal(added.json.source, 'administrator');
      const invitation = (await inbox(as.issuer)).find((message) => message.to === 'carol@example.com');
      assert.ok(invitation, 'an invitation mail');
      assert.match(invitation.text, /\/account/);
      assert.equal((await call(as, token, 'POST', '/users', { email: 'carol@example.com' })).status, 409);
      const audit = as.audit('admin.user.added').at(-1);
      assert.equal(audit?.actor, `client:${ADMIN}`);
      assert.equal(audit?.sub, added.json.sub);
      const clientId = await registerClient(as);
      const carolToken = await aliceToken(as, clientId, 'carol@example.com');
      const active = await introspect(as, carolToken);
      assert.equal(active.active, true);
      assert.equal(active.region, 'eu');
    });

    test('edits claims (in tokens issued from then on), and suspending a user stops their tokens at once', async () => {
      await call(as, token, 'POST', '/users', { email: 'dave@example.com', claims: { region: 'us' } });
      const clientId = await registerClient(as);
      const daveToken = await aliceToken(as, clientId, 'dave@example.com');
      const edited = await call(as, token, 'PATCH', '/users/dave%40example.com', {
        claims: { region: 'eu' },
      });
      assert.equal(edited.status, 200);
      assert.deepEqual(edited.json.claims, { region: 'eu' });
      // A token carries the claims of its issuance; the next one has the new ones.
      assert.equal((await introspect(as, daveToken)).region, 'us');
      assert.equal((await introspect(as, await aliceToken(as, clientId, 'dave@example.com'))).region, 'eu');
      const badStatus = await call(as, token, 'PATCH', '/users/dave%40example.com', { status: 'gone' });
      assert.equal(badStatus.json.field, 'status');
      const suspended = await call(as, token, 'PATCH', '/users/dave%40example.com', { status: 'suspended' });
      assert.equal(suspended.json.status, 'suspended');
      assert.deepEqual(await introspect(as, daveToken), { active: false });
      assert.equal(as.audit('admin.user.suspended').at(-1)?.actor, `client:${ADMIN}`);
      // Suspended users cannot sign in either: no code is sent.
      const before = (await inbox(as.issuer)).length;
      await userToken({
        issuer: as.issuer,
        clientId,
        redirectUri: REDIRECT,
        email: 'dave@example.com',
      }).catch(() => undefined);
      const codes = (await inbox(as.issuer)).slice(0, (await inbox(as.issuer)).length - before);
      assert.equal(codes.filter((message) => message.to === 'dave@example.com').length, 0);
    });

    test("lists a user's connected agents; revoking one stops its token at once", async () => {
      const clientId = await registerClient(as, 'Bob agent');
      const bobToken = await aliceToken(as, clientId, 'bob@example.com');
      const grants = await call(as, token, 'GET', '/users/bob%40example.com/grants');
      assert.equal(grants.status, 200);
      const grant = (grants.json.grants as unknown as Array<Record<string, unknown>>).find(
        (item) => item.client_id === clientId,
      );
      assert.ok(grant, 'the grant of the agent');
      assert.equal(grant.client_name, undefined === grant.client_name ? undefined : grant.client_name);
      assert.deepEqual(grant.scopes, ['stocks:read']);
      assert.equal(grant.email, 'bob@example.com');
      assert.ok(Date.parse(String(grant.consented_at)) > 0);
      const byClient = await call(as, token, 'GET', `/clients/${encodeURIComponent(clientId)}/grants`);
      assert.equal((byClient.json.grants as unknown as unknown[]).length, 1);
      const revoked = await call(as, token, 'DELETE', `/grants/${String(grant.grant_id)}`);
      assert.equal(revoked.status, 200);
      assert.deepEqual(await introspect(as, bobToken), { active: false });
      assert.equal((await call(as, token, 'DELETE', `/grants/${String(grant.grant_id)}`)).status, 404);
      assert.equal(as.audit('admin.grant.revoked').at(-1)?.grant_id, grant.grant_id);
    });

    test('removing a user stops their tokens, and signs them out everywhere', async () => {
      await call(as, token, 'POST', '/users', { email: 'erin@example.com' });
      const clientId = await registerClient(as);
      const erinToken = await aliceToken(as, clientId, 'erin@example.com');
      const signedOut = await call(as, token, 'POST', '/users/erin%40example.com/sign-out');
      assert.equal(signedOut.status, 200);
      assert.equal(signedOut.json.sessions_ended, 1);
      assert.equal((await call(as, token, 'DELETE', '/users/erin%40example.com')).status, 204);
      assert.deepEqual(await introspect(as, erinToken), { active: false });
      assert.equal((await call(as, token, 'GET', '/users/erin%40example.com')).status, 404);
    });
  });

  describe('domains and trusted domains', () => {
    test('adds and removes approved domains and CIMD trusted domains, validating them', async () => {
      assert.equal(
        (await call(as, token, 'POST', '/domains', { domain: 'not a domain' })).json.field,
        'domain',
      );
      const added = await call(as, token, 'POST', '/domains', {
        domain: '@Partner.example',
        claims: { region: 'eu' },
      });
      assert.equal(added.status, 201);
      assert.equal(added.json.domain, 'partner.example');
      assert.equal((await call(as, token, 'POST', '/domains', { domain: 'partner.example' })).status, 409);
      const domains = await call(as, token, 'GET', '/domains');
      assert.deepEqual(
        (domains.json.domains as unknown as Array<{ domain: string }>).map((entry) => entry.domain),
        ['partner.example'],
      );
      assert.equal((await call(as, token, 'DELETE', '/domains/partner.example')).status, 204);
      assert.equal((await call(as, token, 'DELETE', '/domains/partner.example')).status, 404);
      assert.equal(
        (await call(as, token, 'POST', '/trusted-domains', { domain: 'agents.example' })).status,
        201,
      );
      const trusted = await call(as, token, 'GET', '/trusted-domains');
      assert.deepEqual(
        (trusted.json.trusted_domains as unknown as Array<{ domain: string }>).map((entry) => entry.domain),
        ['agents.example'],
      );
      assert.equal((await call(as, token, 'DELETE', '/trusted-domains/agents.example')).status, 204);
      assert.equal(as.audit('admin.trusted_domain.removed').at(-1)?.actor, `client:${ADMIN}`);
    });
  });

  describe('clients', () => {
    test('lists every client with its trust class and registration', async () => {
      const clientId = await registerClient(as, 'Listed agent');
      const response = await call(as, token, 'GET', '/clients');
      const clients = response.json.clients as unknown as Array<Record<string, unknown>>;
      const dcr = clients.find((client) => client.client_id === clientId);
      assert.equal(dcr?.trust_class, 'dynamic');
      assert.equal(dcr?.registration, 'dynamic registration');
      assert.equal(dcr?.name, 'Listed agent');
      assert.deepEqual(dcr?.redirect_hosts, ['127.0.0.1']);
      assert.ok(Date.parse(String(dcr?.created_at)) > 0);
      const gateway = clients.find((client) => client.client_id === 'gatehouse-gateway');
      assert.equal(gateway?.trust_class, 'pre-registered');
      assert.equal(gateway?.registration, 'configuration');
      assert.equal(gateway?.role, 'gateway');
    });

    test('disabling a client stops its tokens and its sign-ins at once; enabling it lets it start again', async () => {
      const clientId = await registerClient(as);
      const agentToken = await aliceToken(as, clientId);
      const disabled = await call(as, token, 'POST', `/clients/${encodeURIComponent(clientId)}/disable`);
      assert.equal(disabled.status, 200);
      assert.equal(disabled.json.disabled, true);
      assert.deepEqual(await introspect(as, agentToken), { active: false });
      const authorize = await fetch(
        `${as.issuer}/authorize?client_id=${clientId}&response_type=code&redirect_uri=${encodeURIComponent(REDIRECT)}&code_challenge=${'a'.repeat(43)}&code_challenge_method=S256`,
        { redirect: 'manual' },
      );
      assert.equal(authorize.status, 400);
      assert.equal(
        (await call(as, token, 'POST', `/clients/${encodeURIComponent(clientId)}/enable`)).status,
        200,
      );
      assert.equal((await introspect(as, await aliceToken(as, clientId))).active, true);
      assert.equal(as.audit('admin.client.disabled').at(-1)?.client_id, clientId);
    });

    test('pre-registers clients: a public agent, and a workload whose secret is shown once', async () => {
      const agent = await call(as, token, 'POST', '/clients', {
        client_id: 'partner-agent',
        name: 'Partner agent',
        role: 'agent',
        redirect_uris: [REDIRECT],
        scopes: ['stocks:read'],
      });
      assert.equal(agent.status, 201);
      assert.equal(agent.json.trust_class, 'pre-registered');
      assert.equal(agent.json.registration, 'administrator');
      assert.equal(agent.json.client_secret, undefined);
      const agentToken = await aliceToken(as, 'partner-agent');
      const claims = await introspect(as, agentToken);
      assert.equal(claims.client_assurance_level, 4, "as trusted as the file's clients");
      const workload = await call(as, token, 'POST', '/clients', {
        name: 'Nightly report',
        role: 'workload',
      });
      assert.equal(workload.status, 201);
      const secret = String(workload.json.client_secret);
      assert.ok(secret.length >= 43);
      const id = String(workload.json.client_id);
      const issued = await postForm(
        `${as.issuer}/token`,
        { grant_type: 'client_credentials', scope: 'stocks:read' },
        { authorization: basic(id, secret) },
      );
      assert.equal(issued.status, 200, issued.text);
      const again = await call(as, token, 'GET', `/clients/${encodeURIComponent(id)}`);
      assert.equal(again.json.client_secret, undefined, 'never shown again');
      assert.equal(as.audit('admin.client.registered').at(-1)?.client_id, id);
      assert.doesNotMatch(as.logs.join('\n'), new RegExp(secret), 'the secret is in no log line');
      assert.equal((await call(as, token, 'DELETE', '/clients/partner-agent')).status, 204);
      assert.deepEqual(await introspect(as, agentToken), { active: false });
      const gone = await postForm(
        `${as.issuer}/token`,
        { grant_type: 'client_credentials' },
        { authorization: basic('partner-agent', 'x') },
      );
      assert.equal(gone.status, 401);
    });

    test('refuses clients it must not register, naming the field', async () => {
      const cases: Array<[Record<string, unknown>, string]> = [
        [{ name: 'Admin', role: 'admin' }, 'role'],
        [{ name: 'Gateway', role: 'gateway' }, 'role'],
        [{ name: 'Gatehouse helper', role: 'workload' }, 'name'],
        [{ client_id: 'gatehouse-gateway', name: 'X', role: 'workload' }, 'client_id'],
        [{ client_id: 'https://x.example/doc', name: 'X', role: 'workload' }, 'client_id'],
        [{ name: 'X', role: 'agent' }, 'redirect_uris'],
        [{ name: 'X', role: 'agent', redirect_uris: ['http://evil.example/cb'] }, 'redirect_uris.0'],
        [{ name: 'X', role: 'agent', redirect_uris: ['https://ok.example/cb#frag'] }, 'redirect_uris.0'],
        [{ name: 'X', role: 'workload', auth_method: 'none' }, 'auth_method'],
        [{ name: 'X', role: 'workload', scopes: ['admin'] }, 'scopes'],
        [
          {
            name: 'X',
            role: 'workload',
            auth_method: 'private_key_jwt',
            jwks: { keys: [{ kty: 'EC', d: 'secret' }] },
          },
          'jwks.keys.0',
        ],
        [{ name: 'X', role: 'workload', auth_method: 'private_key_jwt' }, 'jwks'],
      ];
      for (const [body, field] of cases) {
        const response = await call(as, token, 'POST', '/clients', body);
        assert.equal(response.status, 400, JSON.stringify(body));
        assert.equal(response.json.field, field, JSON.stringify(body));
      }
      await call(as, token, 'POST', '/clients', { client_id: 'twice', name: 'Twice', role: 'workload' });
      const duplicate = await call(as, token, 'POST', '/clients', {
        client_id: 'twice',
        name: 'Twice',
        role: 'workload',
      });
      assert.equal(duplicate.status, 409);
      assert.equal(duplicate.json.field, 'client_id');
      const taken = await call(as, token, 'POST', '/clients', {
        client_id: 'example-workload',
        name: 'X',
        role: 'workload',
      });
      assert.equal(taken.status, 409);
    });

    test('deleting a dynamic client removes it; clients of the configuration file are not deleted', async () => {
      const clientId = await registerClient(as);
      const agentToken = await aliceToken(as, clientId);
      assert.equal((await call(as, token, 'DELETE', `/clients/${encodeURIComponent(clientId)}`)).status, 204);
      assert.deepEqual(await introspect(as, agentToken), { active: false });
      assert.equal((await call(as, token, 'GET', `/clients/${encodeURIComponent(clientId)}`)).status, 404);
      const config = await call(as, token, 'DELETE', '/clients/example-workload');
      assert.equal(config.status, 409);
      assert.match(String(config.json.error_description), /configuration file/);
      const gateway = await call(as, token, 'POST', '/clients/gatehouse-gateway/disable');
      assert.equal(gateway.status, 409);
      // The pages' own client: disabling it would lock every administrator out of the console.
      assert.equal((await call(as, token, 'POST', '/clients/gatehouse-account/disable')).status, 409);
    });
  });
});

describe('every change is audited with its caller', () => {
  test('each admin API operation that changes something writes its audit record, in the log and the trail', async () => {
    const as = await startTestAuthorizationServer({ ...CLIENTS, clientApproval: { dynamic: 'approval' } });
    try {
      const token = await adminToken(as);
      const queued = await registerClient(as, 'Queued');
      await aliceToken(as, queued).catch(() => undefined); // held for approval: queued with alice
      const changes: Array<[string, string, unknown, string]> = [
        ['POST', '/users', { email: 'judy@example.com' }, 'admin.user.added'],
        ['PATCH', '/users/judy%40example.com', { claims: { region: 'eu' } }, 'admin.user.updated'],
        ['PATCH', '/users/judy%40example.com', { status: 'suspended' }, 'admin.user.suspended'],
        ['PATCH', '/users/judy%40example.com', { status: 'active' }, 'admin.user.reinstated'],
        ['POST', '/users/judy%40example.com/sign-out', undefined, 'admin.user.signed_out'],
        ['DELETE', '/users/judy%40example.com', undefined, 'admin.user.removed'],
        ['POST', '/domains', { domain: 'audited.example' }, 'admin.domain.added'],
        ['DELETE', '/domains/audited.example', undefined, 'admin.domain.removed'],
        ['POST', '/trusted-domains', { domain: 'agents.example' }, 'admin.trusted_domain.added'],
        ['DELETE', '/trusted-domains/agents.example', undefined, 'admin.trusted_domain.removed'],
        [
          'POST',
          '/clients',
          { client_id: 'audited', name: 'Audited', role: 'workload' },
          'admin.client.registered',
        ],
        ['POST', '/clients/audited/disable', undefined, 'admin.client.disabled'],
        ['POST', '/clients/audited/enable', undefined, 'admin.client.enabled'],
        ['DELETE', '/clients/audited', undefined, 'admin.client.deleted'],
        [
          'POST',
          `/approvals/${encodeURIComponent(queued)}`,
          { decision: 'approved' },
          'admin.client.approved',
        ],
        ['POST', `/approvals/${encodeURIComponent(queued)}`, { decision: 'denied' }, 'admin.client.denied'],
      ];
      for (const [method, route, body, event] of changes) {
        const before = as.audit(event).length;
        const response = await call(as, token, method, route, body);
        assert.ok(
          response.status < 300,
          `${method} ${route}: ${response.status} ${JSON.stringify(response.json)}`,
        );
        const records = as.audit(event);
        assert.equal(records.length, before + 1, `${method} ${route} writes ${event}`);
        assert.equal(records.at(-1)?.actor, `client:${ADMIN}`, `${event} names its caller`);
        const kept = (await as.running.audit.search({ event })).records;
        assert.equal(
          (kept[0]?.fields as { actor?: string } | undefined)?.actor,
          `client:${ADMIN}`,
          `${event} is in the trail`,
        );
      }
      // Revoking a grant, once an approved client holds one.
      await call(as, token, 'POST', `/approvals/${encodeURIComponent(queued)}`, { decision: 'approved' });
      await aliceToken(as, queued);
      const grant = (
        (await call(as, token, 'GET', `/grants?client=${encodeURIComponent(queued)}`)).json
          .grants as unknown as Array<{
          grant_id: string;
        }>
      )[0]!;
      await call(as, token, 'DELETE', `/grants/${grant.grant_id}`);
      assert.equal(as.audit('admin.grant.revoked').at(-1)?.actor, `client:${ADMIN}`);
      // A refused change writes no success record.
      const before = as.audit('admin.user.added').length;
      await call(as, token, 'POST', '/users', { email: 'not an address' });
      assert.equal(as.audit('admin.user.added').length, before);
    } finally {
      await as.close();
    }
  });
});

describe('the audit trail in the admin API', () => {
  test('finds each change with who made it, by user email, and exports the same search as JSON lines', async () => {
    const as = await startTestAuthorizationServer(CLIENTS);
    try {
      const token = await adminToken(as);
      await call(as, token, 'POST', '/users', { email: 'ivan@example.com' });
      await call(as, token, 'PATCH', '/users/ivan%40example.com', { status: 'suspended' });
      const clientId = await registerClient(as);
      await aliceToken(as, clientId);
      const changes = await call(as, token, 'GET', '/audit?user=Ivan%40example.com');
      assert.equal(changes.status, 200);
      const records = changes.json.records as unknown as Array<Record<string, unknown>>;
      assert.deepEqual(
        records.map((record) => record.event),
        ['admin.user.suspended', 'admin.user.added'],
      );
      assert.equal((records[0]!.fields as Record<string, unknown>).actor, `client:${ADMIN}`);
      const alice = await call(
        as,
        token,
        'GET',
        `/audit?user=alice%40example.com&client=${clientId}&event=consent`,
      );
      const consent = (alice.json.records as unknown as Array<Record<string, unknown>>)[0]!;
      assert.equal(consent.email, 'alice@example.com', 'administrators see the email');
      assert.ok(consent.grant_id);
      const paged = await call(as, token, 'GET', '/audit?limit=1');
      assert.equal((paged.json.records as unknown as unknown[]).length, 1);
      const older = await call(
        as,
        token,
        'GET',
        `/audit?limit=1&cursor=${encodeURIComponent(String(paged.json.next_cursor))}`,
      );
      assert.notEqual(
        (older.json.records as unknown as Array<{ id: string }>)[0]!.id,
        (paged.json.records as unknown as Array<{ id: string }>)[0]!.id,
      );
      const exported = await fetch(`${as.issuer}/admin/api/audit/export?user=ivan%40example.com`, {
        headers: { authorization: `Bearer ${token}` },
      });
      assert.equal(exported.status, 200);
      assert.equal(exported.headers.get('content-type'), 'application/x-ndjson');
      const lines = (await exported.text())
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line) as { event: string });
      assert.deepEqual(
        lines.map((line) => line.event),
        ['admin.user.suspended', 'admin.user.added'],
      );
      for (const [query, field] of [
        ['since=yesterday', 'since'],
        ['limit=5000', 'limit'],
        ['cursor=not-a-cursor', 'query'],
        ['outcome=maybe', 'outcome'],
        ['limit=x', 'limit'],
      ] as const) {
        const bad = await call(as, token, 'GET', `/audit?${query}`);
        assert.equal(bad.status, 400, query);
        assert.equal(bad.json.field, field, query);
      }
      assert.equal((await call(as, undefined, 'GET', '/audit')).status, 401);
      assert.equal((await fetch(`${as.issuer}/admin/api/audit/export`)).status, 401);
    } finally {
      await as.close();
    }
  });
});

describe('signing keys in the admin API and the console', () => {
  test('lists the keys, refuses a rotation under the overlap rule, and rotates once it holds', async () => {
    const as = await startTestAuthorizationServer({ ...CLIENTS, keys: { publishBeforeUseSeconds: 2 } });
    try {
      const token = await adminToken(as);
      const listed = await call(as, token, 'GET', '/keys');
      assert.equal(listed.status, 200);
      const keys = listed.json.keys as unknown as Array<{
        kid: string;
        state: string;
        use: string;
        alg: string;
        rotates: boolean;
      }>;
      const current = keys.find((key) => key.use === 'access_token' && key.state === 'current')!;
      const next = keys.find((key) => key.use === 'access_token' && key.state === 'next')!;
      assert.ok(current && next);
      const idCurrent = keys.find((key) => key.use === 'id_token' && key.state === 'current')!;
      const idNext = keys.find((key) => key.use === 'id_token' && key.state === 'next')!;
      assert.deepEqual([idCurrent.alg, idNext.alg], ['RS256', 'RS256']);
      assert.ok(
        keys.every((key) => key.rotates),
        'both rings rotate',
      );
      assert.ok(
        keys.every((key) => !('d' in key)),
        'nothing private',
      );
      const early = await call(as, token, 'POST', '/keys/rotate');
      assert.equal(early.status, 409);
      assert.equal(early.json.error, 'too_soon');
      const reader = await adminToken(as, 'reader');
      assert.equal((await call(as, reader, 'POST', '/keys/rotate')).status, 403);
      await new Promise((resolve) => setTimeout(resolve, 3200));
      const rotated = await call(as, token, 'POST', '/keys/rotate');
      assert.equal(rotated.status, 200);
      assert.equal(rotated.json.current, next.kid);
      assert.equal(rotated.json.retired, current.kid);
      const idRotation = rotated.json.idToken as unknown as Record<string, string>;
      assert.deepEqual([idRotation.current, idRotation.retired], [idNext.kid, idCurrent.kid]);
      assert.ok(idRotation.next && idRotation.retireAt);
      const after = (await call(as, token, 'GET', '/keys')).json.keys as unknown as Array<{
        kid: string;
        state: string;
      }>;
      assert.equal(after.find((key) => key.kid === current.kid)?.state, 'retired');
      assert.equal(after.find((key) => key.kid === idCurrent.kid)?.state, 'retired');
      assert.equal(after.find((key) => key.kid === idNext.kid)?.state, 'current');
      assert.equal(as.audit('keys.rotated').at(-1)?.actor, `client:${ADMIN}`);
    } finally {
      await as.close();
    }
  });
});

describe('admin changes and the configuration file', () => {
  test('survive a restart; the file keeps owning only what an administrator did not change', async () => {
    const as = await startTestAuthorizationServer(CLIENTS);
    try {
      let token = await adminToken(as);
      await call(as, token, 'POST', '/users', { email: 'frank@example.com', claims: { region: 'apac' } });
      await call(as, token, 'PATCH', '/users/bob%40example.com', { claims: { region: 'eu' } });
      assert.equal((await call(as, token, 'DELETE', '/users/alice%40example.com')).status, 204);
      // The file still lists alice and bob (with region us), and now lists grace.
      await as.restart({
        ...CLIENTS,
        users: {
          approved: [
            { email: 'alice@example.com', claims: { region: 'eu' } },
            { email: 'bob@example.com', claims: { region: 'us' } },
            { email: 'grace@example.com', claims: { region: 'us' } },
          ],
        },
      });
      token = await adminToken(as);
      const users = (await call(as, token, 'GET', '/users')).json.users as unknown as Array<{
        email: string;
        claims: Record<string, unknown>;
      }>;
      const byEmail = new Map(users.map((user) => [user.email, user]));
      assert.equal(byEmail.get('frank@example.com')?.claims.region, 'apac', 'added by an administrator');
      assert.equal(byEmail.get('bob@example.com')?.claims.region, 'eu', 'changed by an administrator');
      assert.equal(byEmail.has('alice@example.com'), false, 'removed by an administrator stays removed');
      assert.equal(byEmail.get('grace@example.com')?.claims.region, 'us', 'new in the file');
      // An entry the file seeded and nobody changed follows the file, also out of it.
      await as.restart({ ...CLIENTS, users: { approved: [{ email: 'bob@example.com' }] } });
      token = await adminToken(as);
      const after = (await call(as, token, 'GET', '/users')).json.users as unknown as Array<{
        email: string;
      }>;
      assert.deepEqual(after.map((user) => user.email).sort(), ['bob@example.com', 'frank@example.com']);
    } finally {
      await as.close();
    }
  });
});
