/**
 * Client onboarding end to end against a real server: dynamic client registration (RFC 7591) under
 * the registration policy, its management (RFC 7592), rate limit and CORS; loopback redirect
 * matching (RFC 8252 §7.3); and Client ID Metadata Documents served by a real HTTP server, with the
 * trust policy, the development switch and every rejection the CIMD draft asks for.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, before, describe, test } from 'node:test';
import { DATABASE_FILE } from '../../src/authorization-server/store/sqlite-store.ts';
import {
  startTestAuthorizationServer,
  type TestAuthorizationServer,
} from '../helpers/authorization-server.ts';
import { authorize, basic, pkce, redeemCode } from '../helpers/oauth.ts';
import { workloadTokenRequest } from '../helpers/workload.ts';

const REDIRECT = 'http://127.0.0.1/callback';

// ---------------------------------------------------------------------------------------------------
// Helpers (local to this file)
// ---------------------------------------------------------------------------------------------------

type Json = Record<string, unknown>;

async function register(
  issuer: string,
  metadata: Json = {},
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: Headers; body: Json }> {
  const response = await fetch(`${issuer}/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({
      client_name: 'Test agent',
      redirect_uris: [REDIRECT],
      application_type: 'native',
      ...metadata,
    }),
  });
  return { status: response.status, headers: response.headers, body: (await response.json()) as Json };
}

/** RFC 7592 management request at the client configuration endpoint. */
async function manage(
  issuer: string,
  clientId: string,
  method: 'GET' | 'DELETE',
  registrationAccessToken?: string,
): Promise<{ status: number; headers: Headers; body: Json }> {
  const response = await fetch(`${issuer}/register/${encodeURIComponent(clientId)}`, {
    method,
    headers: registrationAccessToken ? { authorization: `Bearer ${registrationAccessToken}` } : {},
  });
  const text = await response.text();
  let body: Json = {};
  try {
    body = JSON.parse(text) as Json;
  } catch {
    // 204 and 404 carry no JSON.
  }
  return { status: response.status, headers: response.headers, body };
}

/** The clients persisted in the server's SQLite database, by client_id (read-only look). */
function storedClients(as: TestAuthorizationServer): Map<string, Json> {
  const db = new DatabaseSync(join(as.dataDir, DATABASE_FILE), { readOnly: true });
  try {
    const rows = db.prepare("SELECT id, payload FROM oidc_models WHERE model = 'Client'").all() as Array<{
      id: string;
      payload: string;
    }>;
    return new Map(rows.map((row) => [row.id, JSON.parse(row.payload) as Json]));
  } finally {
    db.close();
  }
}

/** The audit record of a CIMD client_id's latest rejection. */
const documentAudit = (as: TestAuthorizationServer, clientId: string) =>
  as.audit('client.metadata_document').findLast((record) => record.client_id === clientId);

/** One GET /authorize, as a browser would send it, without following anything. */
async function authorizationRequest(
  issuer: string,
  params: { clientId: string; redirectUri: string; scope?: string },
): Promise<{ status: number; location: string | null; contentType: string; text: string }> {
  const url = new URL(`${issuer}/authorize`);
  url.searchParams.set('response_type', 'code');
  url.searchParams.set('client_id', params.clientId);
  url.searchParams.set('redirect_uri', params.redirectUri);
  url.searchParams.set('state', 'state-123');
  url.searchParams.set('code_challenge', pkce().challenge);
  url.searchParams.set('code_challenge_method', 'S256');
  if (params.scope) url.searchParams.set('scope', params.scope);
  const response = await fetch(url, { redirect: 'manual' });
  return {
    status: response.status,
    location: response.headers.get('location'),
    contentType: response.headers.get('content-type') ?? '',
    text: await response.text(),
  };
}

/**
 * The authorization endpoint refused the request itself: a 400 error page naming the OAuth error,
 * and no redirect anywhere (a redirect to an unverified redirect_uri would be an open redirector).
 */
function assertRefusedWithErrorPage(
  response: Awaited<ReturnType<typeof authorizationRequest>>,
  error: string,
): void {
  assert.equal(response.status, 400, response.text.slice(0, 300));
  assert.equal(response.location, null, 'the browser must not be redirected');
  assert.match(response.contentType, /text\/html/);
  assert.ok(response.text.includes(`Error: ${error}`), `error page names ${error}`);
}

/** The text inside the consent page's "Published at" entry (the CIMD client_id host). */
const publishedAt = (html: string) => /<dt>Published at<\/dt><dd><strong>([^<]*)<\/strong>/.exec(html)?.[1];

/** A tiny HTTP server for client metadata documents, counting the requests each path gets. */
interface DocumentServer {
  origin: string;
  /** The client_id URL for a path: `${origin}${path}`. */
  url(path: string): string;
  /** Serves `handler` at `path` from now on. */
  route(path: string, handler: (request: IncomingMessage, response: ServerResponse) => void): void;
  /** Serves `document` as JSON at `path`. */
  json(path: string, document: Json): void;
  hits(path: string): number;
  close(): Promise<void>;
}

async function startDocumentServer(): Promise<DocumentServer> {
  const routes = new Map<string, (request: IncomingMessage, response: ServerResponse) => void>();
  const hits = new Map<string, number>();
  const server = createServer((request, response) => {
    const path = new URL(request.url ?? '/', 'http://x').pathname;
    hits.set(path, (hits.get(path) ?? 0) + 1);
    const handler = routes.get(path);
    if (handler) handler(request, response);
    else response.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const handle: DocumentServer = {
    origin,
    url: (path) => `${origin}${path}`,
    route: (path, handler) => routes.set(path, handler),
    json: (path, document) =>
      handle.route(path, (_request, response) => {
        response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(document));
      }),
    hits: (path) => hits.get(path) ?? 0,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
  return handle;
}

/** The warning the CIMD development switch must log (not the development inbox's). */
function isDevelopmentSwitchWarning(line: string): boolean {
  const record = JSON.parse(line) as Json;
  const message = String(record.message);
  return record.level === 'warn' && /development/i.test(message) && /loopback/i.test(message);
}

/** A valid client metadata document for `clientId` (a public native-style agent). */
const documentFor = (clientId: string, extra: Json = {}): Json => ({
  client_id: clientId,
  client_name: 'Document agent',
  redirect_uris: [REDIRECT],
  token_endpoint_auth_method: 'none',
  ...extra,
});

// ---------------------------------------------------------------------------------------------------
// Dynamic client registration (RFC 7591) under the registration policy
// ---------------------------------------------------------------------------------------------------

describe('dynamic client registration policy', () => {
  let as: TestAuthorizationServer;
  /** Every registration_access_token and client_secret this suite received: none may reach a log. */
  const received: string[] = [];
  const registeredIds: string[] = [];

  async function registerOk(metadata: Json = {}) {
    const response = await register(as.issuer, metadata);
    assert.equal(response.status, 201, JSON.stringify(response.body));
    for (const key of ['registration_access_token', 'client_secret'] as const) {
      if (typeof response.body[key] === 'string') received.push(response.body[key]);
    }
    registeredIds.push(String(response.body.client_id));
    return response.body;
  }

  before(async () => {
    // The policy is what is under test here, not the rate limit (tested below with its own server).
    as = await startTestAuthorizationServer({
      dynamicRegistration: { rateLimit: { max: 1000, windowSeconds: 60 } },
    });
  });
  after(() => as.close());

  test('a native registration becomes a public client with management credentials', async () => {
    const body = await registerOk();
    assert.equal(typeof body.client_id, 'string');
    assert.equal(body.token_endpoint_auth_method, 'none');
    assert.equal(body.client_secret, undefined, 'a public client gets no secret');
    assert.equal(body.application_type, 'native');
    assert.deepEqual(body.grant_types, ['authorization_code']);
    assert.deepEqual(body.response_types, ['code']);
    assert.deepEqual(body.redirect_uris, [REDIRECT]);
    assert.equal(typeof body.registration_access_token, 'string');
    assert.ok(String(body.registration_access_token).length >= 32);
    assert.equal(
      body.registration_client_uri,
      `${as.issuer}/register/${String(body.client_id)}`,
      'RFC 7592 client configuration endpoint',
    );

    // What was stored is what was answered: read it back through RFC 7592.
    const stored = await manage(
      as.issuer,
      String(body.client_id),
      'GET',
      String(body.registration_access_token),
    );
    assert.equal(stored.status, 200);
    assert.equal(stored.body.client_id, body.client_id);
    assert.equal(stored.body.token_endpoint_auth_method, 'none');
    assert.equal(stored.body.client_secret, undefined, 'no secret stored for a public client');
    assert.deepEqual(stored.body.redirect_uris, [REDIRECT]);
    const row = storedClients(as).get(String(body.client_id));
    assert.ok(row, 'the client is persisted');
    assert.equal(row.token_endpoint_auth_method, 'none');
    assert.equal(row.client_secret, undefined, 'no secret in the database either');
    assert.deepEqual(row.grant_types, ['authorization_code']);
  });

  const badRedirectUris: Array<[string, Json]> = [
    ['a javascript: URI', { redirect_uris: ['javascript:alert(document.cookie)'] }],
    ['a data: URI', { redirect_uris: ['data:text/html,<script>alert(1)</script>'] }],
    ['http on a non-loopback host', { redirect_uris: ['http://evil.example/cb'] }],
    ['a fragment', { redirect_uris: ['https://app.example.com/cb#fragment'] }],
    [
      'a custom scheme without application_type native',
      { redirect_uris: ['com.example.app:/oauth/callback'], application_type: 'web' },
    ],
    [
      'a custom scheme with application_type omitted (web by default)',
      { redirect_uris: ['com.example.app:/oauth/callback'], application_type: undefined },
    ],
    ['a custom scheme that is not a reverse domain name', { redirect_uris: ['myapp:/oauth/callback'] }],
    ['one bad URI among good ones', { redirect_uris: [REDIRECT, 'http://evil.example/cb'] }],
  ];
  for (const [name, metadata] of badRedirectUris) {
    test(`refuses ${name} with invalid_redirect_uri`, async () => {
      const before = storedClients(as).size;
      const response = await register(as.issuer, metadata);
      assert.equal(response.status, 400, JSON.stringify(response.body));
      assert.equal(response.body.error, 'invalid_redirect_uri');
      assert.equal(typeof response.body.error_description, 'string');
      assert.equal(response.body.client_id, undefined, 'no client was created');
      assert.equal(response.body.registration_access_token, undefined);
      assert.equal(storedClients(as).size, before, 'nothing was persisted');
    });
  }

  test('accepts a reverse-domain custom scheme for a native application (RFC 8252 §7.1)', async () => {
    const body = await registerOk({ redirect_uris: ['com.example.agent:/oauth/callback'] });
    assert.deepEqual(body.redirect_uris, ['com.example.agent:/oauth/callback']);
    assert.equal(body.application_type, 'native');
  });

  test('accepts https and loopback http redirect URIs for a web client', async () => {
    const body = await registerOk({
      application_type: 'web',
      redirect_uris: ['https://app.example.com/oauth/callback', 'http://localhost:6274/oauth/callback'],
    });
    assert.deepEqual(body.redirect_uris, [
      'https://app.example.com/oauth/callback',
      'http://localhost:6274/oauth/callback',
    ]);
  });

  test('strips refresh_token from grant_types under the default policy', async () => {
    const body = await registerOk({ grant_types: ['authorization_code', 'refresh_token'] });
    assert.deepEqual(body.grant_types, ['authorization_code']);
    const stored = await manage(
      as.issuer,
      String(body.client_id),
      'GET',
      String(body.registration_access_token),
    );
    assert.deepEqual(stored.body.grant_types, ['authorization_code'], 'stored without refresh_token');
  });

  test('refuses grant_types without authorization_code', async () => {
    const response = await register(as.issuer, { grant_types: ['client_credentials'] });
    assert.equal(response.status, 400);
    assert.equal(response.body.error, 'invalid_client_metadata');
  });

  for (const responseTypes of [['token'], ['code id_token'], ['code', 'id_token']]) {
    test(`refuses response_types ${JSON.stringify(responseTypes)} with invalid_client_metadata`, async () => {
      const before = storedClients(as).size;
      const response = await register(as.issuer, { response_types: responseTypes });
      assert.equal(response.status, 400, JSON.stringify(response.body));
      assert.equal(response.body.error, 'invalid_client_metadata');
      assert.equal(response.body.client_id, undefined);
      assert.equal(storedClients(as).size, before, 'nothing was persisted');
    });
  }

  test('the registered scope ceiling is the MCP server scopes, whatever was asked (so step-up works)', async () => {
    const body = await registerOk({ scope: 'stocks:read admin:all email' });
    assert.equal(body.scope, 'openid stocks:read stocks:trade customers:read');
    const stored = await manage(
      as.issuer,
      String(body.client_id),
      'GET',
      String(body.registration_access_token),
    );
    assert.equal(stored.body.scope, 'openid stocks:read stocks:trade customers:read');
  });

  test('a client asking for client_secret_basic becomes confidential, and its secret works', async () => {
    const body = await registerOk({ token_endpoint_auth_method: 'client_secret_basic' });
    assert.equal(body.token_endpoint_auth_method, 'client_secret_basic');
    assert.equal(typeof body.client_secret, 'string');
    assert.ok(String(body.client_secret).length >= 32);
    const clientId = String(body.client_id);
    const secret = String(body.client_secret);
    assert.equal(storedClients(as).get(clientId)?.token_endpoint_auth_method, 'client_secret_basic');

    const redirectUri = 'http://127.0.0.1:50123/callback';
    const result = await authorize({ issuer: as.issuer, clientId, redirectUri, scope: 'stocks:read' });
    const code = result.callback.searchParams.get('code');
    assert.ok(code, 'authorization code issued');
    const fields = { code, verifier: result.verifier, redirectUri, clientId };

    const wrong = await redeemCode(as.issuer, fields, { authorization: basic(clientId, 'wrong-secret') });
    assert.equal(wrong.status, 401);
    assert.equal(wrong.json.error, 'invalid_client');
    const anonymous = await redeemCode(as.issuer, fields);
    assert.equal(anonymous.status, 401, 'a confidential client must authenticate');
    assert.equal(anonymous.json.error, 'invalid_client');
    const token = await redeemCode(as.issuer, fields, { authorization: basic(clientId, secret) });
    assert.equal(token.status, 200, token.text);
    assert.equal(token.json.token_type, 'Bearer');
    assert.equal(token.json.scope, 'stocks:read');
  });

  test('audits registrations, and logs no registration access token or client secret', async () => {
    const body = await registerOk({ token_endpoint_auth_method: 'client_secret_basic' });
    // Use the credentials, so they pass through the request logging paths too.
    const read = await manage(
      as.issuer,
      String(body.client_id),
      'GET',
      String(body.registration_access_token),
    );
    assert.equal(read.status, 200);
    const refused = await register(as.issuer, { redirect_uris: ['javascript:alert(1)'] });
    assert.equal(refused.status, 400);

    const records = as.audit('client.registered');
    for (const clientId of registeredIds) {
      const record = records.find((r) => r.client_id === clientId);
      assert.ok(record, `audit record for ${clientId}`);
      assert.equal(record.outcome, 'success');
      assert.equal(record.level, 'info');
    }
    const failures = records.filter((r) => r.outcome === 'failure');
    assert.ok(
      failures.some((r) => r.error === 'invalid_redirect_uri'),
      'a refused registration is audited as a failure',
    );

    assert.ok(received.length >= 4, 'the suite collected credentials to look for');
    for (const value of received) {
      const leaking = as.logs.filter((line) => line.includes(value));
      assert.deepEqual(leaking, [], 'no log line holds a registration access token or client secret');
    }
  });
});

describe('dynamic client registration rate limit', () => {
  let as: TestAuthorizationServer;
  before(async () => {
    as = await startTestAuthorizationServer({
      dynamicRegistration: { rateLimit: { max: 2, windowSeconds: 60 } },
    });
  });
  after(() => as.close());

  test('the third registration from one address within the window gets 429 with Retry-After', async () => {
    const first = await register(as.issuer);
    const second = await register(as.issuer);
    assert.equal(first.status, 201);
    assert.equal(second.status, 201);

    const third = await register(as.issuer);
    assert.equal(third.status, 429);
    assert.equal(third.body.error, 'temporarily_unavailable');
    assert.equal(third.body.client_id, undefined, 'no client was created');
    const retryAfter = Number(third.headers.get('retry-after'));
    assert.ok(
      Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 60,
      `Retry-After ${retryAfter}`,
    );

    // A refused attempt does not reset or slip through the window.
    const fourth = await register(as.issuer);
    assert.equal(fourth.status, 429);

    assert.equal(storedClients(as).size, 2, 'only the two admitted registrations were persisted');
    assert.equal(as.audit('client.registered').filter((r) => r.outcome === 'success').length, 2);
    const denied = as.audit('client.registration').filter((r) => r.outcome === 'denied');
    assert.equal(denied.length, 2, 'each refused attempt is audited');
  });
});

describe('token endpoint rate limit', () => {
  test('wrong secrets lock no client out: each gets 401, the right secret still authenticates', async () => {
    const as = await startTestAuthorizationServer({
      tokenEndpointRateLimit: { perAddress: { max: 3, windowSeconds: 60 } },
    });
    try {
      const secret = readFileSync(join(as.dataDir, 'secrets/gatehouse-gateway.secret'), 'utf8').trim();
      const attempt = (password: string) =>
        fetch(`${as.issuer}/token`, {
          method: 'POST',
          headers: {
            'content-type': 'application/x-www-form-urlencoded',
            authorization: basic('gatehouse-gateway', password),
          },
          body: new URLSearchParams({ grant_type: 'client_credentials' }),
        });
      // More than the address's budget: a lockout anyone could trigger would be a kill switch, and the
      // secret (256 bits) cannot be guessed (RFC 6749 §10.10).
      for (let i = 0; i < 6; i += 1) {
        const wrong = await attempt('a-wrong-secret-guessed-by-an-attacker');
        assert.equal(wrong.status, 401, 'a wrong secret is refused');
        assert.equal(((await wrong.json()) as Json).error, 'invalid_client');
      }
      const right = await attempt(secret);
      const body = (await right.json()) as Json;
      assert.notEqual(right.status, 401, 'the gateway authenticates');
      assert.notEqual(right.status, 429, 'and is not refused for the failures of others');
      assert.notEqual(body.error, 'invalid_client');
      assert.equal(as.audit('token').filter((r) => r.outcome === 'denied').length, 0);
    } finally {
      await as.close();
    }
  });
});

describe('token endpoint limits by client, not by address (defect 11)', () => {
  test('authenticated clients count against their own client_id; public clients against the address', async () => {
    const as = await startTestAuthorizationServer({
      tokenEndpointRateLimit: {
        perAddress: { max: 3, windowSeconds: 60 },
        perClient: { workload: { max: 2, windowSeconds: 60 } },
      },
    });
    try {
      const mcpSecret = readFileSync(join(as.dataDir, 'secrets/gatehouse-mcp-server.secret'), 'utf8').trim();
      // The MCP server's requests (token exchange, here refused for want of a subject) are its own.
      const exchange = () =>
        fetch(`${as.issuer}/token`, {
          method: 'POST',
          headers: {
            'content-type': 'application/x-www-form-urlencoded',
            authorization: basic('gatehouse-mcp-server', mcpSecret),
          },
          body: new URLSearchParams({
            grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
            subject_token: 'not-a-token',
            subject_token_type: 'urn:ietf:params:oauth:token-type:access_token',
            audience: 'http://localhost:8000/api/stocks',
          }),
        });
      for (let i = 0; i < 8; i += 1)
        assert.equal((await exchange()).status, 400, 'never limited by the address');

      // Public clients from the same address: 3, then 429.
      const publicRequest = () =>
        fetch(`${as.issuer}/token`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams({ grant_type: 'authorization_code', client_id: 'nobody', code: 'x' }),
        });
      for (let i = 0; i < 3; i += 1) assert.notEqual((await publicRequest()).status, 429);
      const limited = await publicRequest();
      assert.equal(limited.status, 429);
      assert.ok(Number(limited.headers.get('retry-after')) >= 1);
      // ... which does not stop the MCP server on the same address.
      assert.equal((await exchange()).status, 400);

      // A workload (private_key_jwt, its identity in the body) from the same address is not refused
      // for it: it counts against its own limit of 2.
      const workload = async () => (await workloadTokenRequest(as)).status;
      assert.equal(await workload(), 200);
      assert.equal(await workload(), 200);
      assert.equal(await workload(), 429);
      // A public client's request is still refused for the address.
      assert.equal((await publicRequest()).status, 429);
    } finally {
      await as.close();
    }
  });

  test('a workload is limited by its own client_id', async () => {
    const as = await startTestAuthorizationServer({
      tokenEndpointRateLimit: { perClient: { workload: { max: 2, windowSeconds: 60 } } },
    });
    try {
      const workload = async () => (await workloadTokenRequest(as)).status;
      assert.equal(await workload(), 200);
      assert.equal(await workload(), 200);
      // Refused once its signature verified, before any token is issued.
      const limited = await workloadTokenRequest(as);
      assert.equal(limited.status, 429, limited.text);
      assert.equal(limited.json.error, 'temporarily_unavailable');
      assert.ok(Number(limited.headers.get('retry-after')) >= 1);
      assert.equal(as.audit('token.issued').filter((r) => r.outcome === 'success').length, 2);
    } finally {
      await as.close();
    }
  });
});

describe('client use is recorded', () => {
  test('issuing a token stamps the client as used, so housekeeping keeps active clients', async () => {
    const as = await startTestAuthorizationServer();
    try {
      const { body } = await register(as.issuer);
      const clientId = String(body.client_id);
      const lastUsed = () => {
        const db = new DatabaseSync(join(as.dataDir, DATABASE_FILE), { readOnly: true });
        try {
          const row = db
            .prepare("SELECT last_used_at FROM oidc_models WHERE model = 'Client' AND id = ?")
            .get(clientId) as { last_used_at: number | null };
          return row.last_used_at;
        } finally {
          db.close();
        }
      };
      assert.equal(lastUsed(), null, 'not used yet');
      const result = await authorize({
        issuer: as.issuer,
        clientId,
        redirectUri: REDIRECT,
        scope: 'stocks:read',
      });
      const token = await redeemCode(as.issuer, {
        code: result.callback.searchParams.get('code')!,
        verifier: result.verifier,
        redirectUri: REDIRECT,
        clientId,
      });
      assert.equal(token.status, 200);
      assert.ok(Number(lastUsed()) > Date.now() - 60_000, 'last_used_at set by the token endpoint');
    } finally {
      await as.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------------
// Registration management (RFC 7592) and CORS for browser-based clients
// ---------------------------------------------------------------------------------------------------

describe('registration management (RFC 7592)', () => {
  let as: TestAuthorizationServer;
  before(async () => {
    as = await startTestAuthorizationServer();
  });
  after(() => as.close());

  test('GET with the registration access token returns the metadata; without or with a wrong one, 401', async () => {
    const { body } = await register(as.issuer, { client_name: 'Managed agent' });
    const clientId = String(body.client_id);
    const rat = String(body.registration_access_token);

    const read = await manage(as.issuer, clientId, 'GET', rat);
    assert.equal(read.status, 200);
    assert.equal(read.body.client_id, clientId);
    assert.equal(read.body.client_name, 'Managed agent');
    assert.deepEqual(read.body.redirect_uris, [REDIRECT]);
    assert.equal(read.body.registration_access_token, rat);
    assert.equal(read.body.registration_client_uri, `${as.issuer}/register/${clientId}`);

    const anonymous = await manage(as.issuer, clientId, 'GET');
    assert.equal(anonymous.status, 401);
    assert.equal(anonymous.body.error, 'invalid_token');
    assert.match(anonymous.headers.get('www-authenticate') ?? '', /^Bearer /);
    assert.equal(anonymous.body.client_name, undefined, 'no metadata without the token');

    const wrong = await manage(as.issuer, clientId, 'GET', 'not-the-registration-access-token');
    assert.equal(wrong.status, 401);
    assert.equal(wrong.body.error, 'invalid_token');
    assert.equal(wrong.body.client_name, undefined);

    // Another client's registration access token does not open this client.
    const other = await register(as.issuer);
    const crossed = await manage(as.issuer, clientId, 'GET', String(other.body.registration_access_token));
    assert.equal(crossed.status, 401);
    assert.equal(crossed.body.error, 'invalid_token');
  });

  test('DELETE with the registration access token removes the client for good', async () => {
    const { body } = await register(as.issuer);
    const clientId = String(body.client_id);
    const rat = String(body.registration_access_token);

    // A token the client holds before it is deleted.
    const granted = await authorize({
      issuer: as.issuer,
      clientId,
      redirectUri: REDIRECT,
      scope: 'stocks:read',
    });
    const token = await redeemCode(as.issuer, {
      code: granted.callback.searchParams.get('code')!,
      verifier: granted.verifier,
      redirectUri: REDIRECT,
      clientId,
    });
    const accessToken = String(token.json.access_token);
    const gatewaySecret = readFileSync(join(as.dataDir, 'secrets/gatehouse-gateway.secret'), 'utf8').trim();
    const introspect = () =>
      fetch(`${as.issuer}/introspect`, {
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          authorization: basic('gatehouse-gateway', gatewaySecret),
        },
        body: new URLSearchParams({ token: accessToken }),
      });
    assert.equal(((await (await introspect()).json()) as { active: boolean }).active, true);

    // Before: the client can start an authorization (the user is sent to sign in).
    const before = await authorizationRequest(as.issuer, { clientId, redirectUri: REDIRECT });
    assert.equal(before.status, 303);
    assert.match(before.location ?? '', /\/interaction\//);

    const anonymous = await manage(as.issuer, clientId, 'DELETE');
    assert.equal(anonymous.status, 401, 'DELETE needs the registration access token');
    assert.equal((await manage(as.issuer, clientId, 'GET', rat)).status, 200, 'still there');

    assert.ok(storedClients(as).has(clientId));
    const removed = await manage(as.issuer, clientId, 'DELETE', rat);
    assert.equal(removed.status, 204);
    assert.equal(storedClients(as).has(clientId), false, 'the stored client is gone');

    const read = await manage(as.issuer, clientId, 'GET', rat);
    assert.equal(read.status, 401, 'the registration access token went with the client');
    const afterwards = await authorizationRequest(as.issuer, { clientId, redirectUri: REDIRECT });
    assertRefusedWithErrorPage(afterwards, 'invalid_client');
    // Its tokens are inactive (not a server error).
    const introspection = await introspect();
    assert.equal(introspection.status, 200);
    assert.deepEqual(await introspection.json(), { active: false });
  });

  test('a registered client survives a restart', async () => {
    const { body } = await register(as.issuer);
    const clientId = String(body.client_id);
    await as.restart();
    const read = await manage(as.issuer, clientId, 'GET', String(body.registration_access_token));
    assert.equal(read.status, 200);
    assert.equal(read.body.client_id, clientId);
    const request = await authorizationRequest(as.issuer, { clientId, redirectUri: REDIRECT });
    assert.equal(request.status, 303);
  });
});

describe('CORS for browser-based MCP clients', () => {
  const ORIGIN = 'https://agent.example';
  let as: TestAuthorizationServer;
  before(async () => {
    as = await startTestAuthorizationServer();
  });
  after(() => as.close());

  test('preflight for /register allows the MCP-Protocol-Version header', async () => {
    const response = await fetch(`${as.issuer}/register`, {
      method: 'OPTIONS',
      headers: {
        origin: ORIGIN,
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'content-type, mcp-protocol-version',
      },
    });
    assert.equal(response.status, 204);
    const allowOrigin = response.headers.get('access-control-allow-origin');
    assert.ok(allowOrigin === '*' || allowOrigin === ORIGIN, `allow-origin ${allowOrigin}`);
    const allowHeaders = (response.headers.get('access-control-allow-headers') ?? '')
      .split(',')
      .map((header) => header.trim().toLowerCase());
    assert.ok(allowHeaders.includes('mcp-protocol-version'), `allow-headers ${allowHeaders}`);
    assert.ok(allowHeaders.includes('content-type'));
    assert.ok(allowHeaders.includes('authorization'));
    assert.match(response.headers.get('access-control-allow-methods') ?? '', /POST/);
  });

  test('the registration response itself carries CORS headers and exposes WWW-Authenticate', async () => {
    const response = await register(as.issuer, {}, { origin: ORIGIN });
    assert.equal(response.status, 201);
    assert.ok(response.headers.get('access-control-allow-origin'));
    assert.match(response.headers.get('access-control-expose-headers') ?? '', /WWW-Authenticate/i);
  });

  test('the authorization server metadata answers cross-origin requests', async () => {
    const response = await fetch(`${as.issuer}/.well-known/oauth-authorization-server`, {
      headers: { origin: ORIGIN },
    });
    assert.equal(response.status, 200);
    const allowOrigin = response.headers.get('access-control-allow-origin');
    assert.ok(allowOrigin === '*' || allowOrigin === ORIGIN, `allow-origin ${allowOrigin}`);
    const metadata = (await response.json()) as Json;
    assert.equal(metadata.registration_endpoint, `${as.issuer}/register`);
  });

  test('the token endpoint answers cross-origin requests, errors included', async () => {
    const { body } = await register(as.issuer);
    const response = await fetch(`${as.issuer}/token`, {
      method: 'POST',
      headers: { origin: ORIGIN, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'authorization_code',
        code: 'not-a-code',
        client_id: String(body.client_id),
        code_verifier: pkce().verifier,
        redirect_uri: REDIRECT,
      }),
    });
    assert.equal(response.status, 400);
    assert.equal(((await response.json()) as Json).error, 'invalid_grant');
    const allowOrigin = response.headers.get('access-control-allow-origin');
    assert.ok(allowOrigin === '*' || allowOrigin === ORIGIN, `allow-origin ${allowOrigin}`);
  });
});

describe('dynamic client registration disabled', () => {
  let as: TestAuthorizationServer;
  before(async () => {
    as = await startTestAuthorizationServer({ dynamicRegistration: { enabled: false } });
  });
  after(() => as.close());

  test('/register is not advertised and answers 404', async () => {
    const metadata = (await (
      await fetch(`${as.issuer}/.well-known/oauth-authorization-server`)
    ).json()) as Json;
    assert.equal(metadata.registration_endpoint, undefined, 'not advertised');
    assert.equal(metadata.token_endpoint, `${as.issuer}/token`, 'the rest of the metadata is there');

    const response = await fetch(`${as.issuer}/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ redirect_uris: [REDIRECT], application_type: 'native' }),
    });
    assert.equal(response.status, 404);
    await response.body?.cancel();
    assert.equal(as.audit('client.registered').length, 0, 'nothing was registered');

    const management = await manage(as.issuer, 'anything', 'GET', 'token');
    assert.equal(management.status, 404);
  });
});

// ---------------------------------------------------------------------------------------------------
// Loopback redirect URIs match on any port (RFC 8252 §7.3); every other URI matches exactly
// ---------------------------------------------------------------------------------------------------

describe('redirect URI matching', () => {
  let as: TestAuthorizationServer;
  before(async () => {
    as = await startTestAuthorizationServer();
  });
  after(() => as.close());

  test('http://127.0.0.1/callback registered without a port matches an ephemeral port', async () => {
    const { body } = await register(as.issuer, { redirect_uris: ['http://127.0.0.1/callback'] });
    const clientId = String(body.client_id);
    const redirectUri = 'http://127.0.0.1:49152/callback';
    const result = await authorize({ issuer: as.issuer, clientId, redirectUri, scope: 'stocks:read' });
    assert.equal(result.callback.origin, 'http://127.0.0.1:49152');
    assert.equal(result.callback.pathname, '/callback');
    assert.equal(result.callback.searchParams.get('state'), result.state);
    const token = await redeemCode(as.issuer, {
      code: result.callback.searchParams.get('code') ?? '',
      verifier: result.verifier,
      redirectUri,
      clientId,
    });
    assert.equal(token.status, 200, token.text);

    // The port is free, the rest of the URI is not.
    const otherPath = await authorizationRequest(as.issuer, {
      clientId,
      redirectUri: 'http://127.0.0.1:49152/other',
    });
    assertRefusedWithErrorPage(otherPath, 'invalid_redirect_uri');
    const otherHost = await authorizationRequest(as.issuer, {
      clientId,
      redirectUri: 'http://localhost:49152/callback',
    });
    assertRefusedWithErrorPage(otherHost, 'invalid_redirect_uri');
  });

  test('http://localhost:3334/oauth/callback registered matches any port', async () => {
    const { body } = await register(as.issuer, {
      redirect_uris: ['http://localhost:3334/oauth/callback'],
    });
    const clientId = String(body.client_id);
    for (const redirectUri of [
      'http://localhost:3334/oauth/callback',
      'http://localhost:61234/oauth/callback',
    ]) {
      const result = await authorize({ issuer: as.issuer, clientId, redirectUri, scope: 'stocks:read' });
      assert.equal(`${result.callback.origin}${result.callback.pathname}`, redirectUri);
      assert.ok(result.callback.searchParams.get('code'), `code delivered to ${redirectUri}`);
    }
  });

  test('an https redirect URI matches exactly: another path or an added query is refused', async () => {
    const registered = 'https://app.example.com/oauth/callback';
    const { body } = await register(as.issuer, { application_type: 'web', redirect_uris: [registered] });
    const clientId = String(body.client_id);

    const exact = await authorize({
      issuer: as.issuer,
      clientId,
      redirectUri: registered,
      scope: 'stocks:read',
    });
    assert.equal(`${exact.callback.origin}${exact.callback.pathname}`, registered);
    assert.ok(exact.callback.searchParams.get('code'));

    for (const redirectUri of [
      'https://app.example.com/oauth/callback/evil',
      'https://app.example.com/oauth/other',
      'https://app.example.com/oauth/callback?next=https://evil.example',
      'https://app.example.com:8443/oauth/callback',
      'https://evil.example/oauth/callback',
    ]) {
      const response = await authorizationRequest(as.issuer, { clientId, redirectUri });
      assertRefusedWithErrorPage(response, 'invalid_redirect_uri');
      assert.ok(!response.text.includes('href="https://evil.example'), 'no link to the bad URI');
    }
  });

  test('a request without scope gets the MCP base scopes (RFC 6749 §3.3)', async () => {
    const { body } = await register(as.issuer);
    const result = await authorize({
      issuer: as.issuer,
      clientId: String(body.client_id),
      redirectUri: REDIRECT,
    });
    assert.notEqual(result.callback.searchParams.get('error'), 'access_denied');
    const token = await redeemCode(as.issuer, {
      code: result.callback.searchParams.get('code')!,
      verifier: result.verifier,
      redirectUri: REDIRECT,
      clientId: String(body.client_id),
    });
    assert.equal(token.json.scope, 'stocks:read customers:read');
  });
});

// ---------------------------------------------------------------------------------------------------
// Client ID Metadata Documents
// ---------------------------------------------------------------------------------------------------

describe('client ID metadata documents', () => {
  let docs: DocumentServer;
  before(async () => {
    docs = await startDocumentServer();
  });
  after(() => docs.close());

  describe('with the development switch for loopback http documents', () => {
    let as: TestAuthorizationServer;
    before(async () => {
      as = await startTestAuthorizationServer({ clientIdMetadataDocuments: { allowLoopbackHttp: true } });
    });
    after(() => as.close());

    test('the development switch logs a warning', () => {
      const warnings = as.logs.filter(isDevelopmentSwitchWarning);
      assert.equal(warnings.length, 1, 'one warning line about the development switch');
      assert.match(warnings[0] ?? '', /development/i);
    });

    test('a valid document: consent shows its host as unverified, and the code flow completes', async () => {
      const path = '/valid/client.json';
      const clientId = docs.url(path);
      docs.json(path, documentFor(clientId));
      const redirectUri = 'http://127.0.0.1:49200/callback';

      const result = await authorize({ issuer: as.issuer, clientId, redirectUri, scope: 'stocks:read' });
      assert.deepEqual(result.pages, ['email', 'code', 'consent']);
      const consent = result.consentHtml ?? '';
      assert.equal(publishedAt(consent), new URL(clientId).host, 'the client_id host (127.0.0.1:<port>)');
      assert.match(consent, /Document agent/);
      assert.match(consent, /<span class="badge unverified">Unverified<\/span>/);
      assert.doesNotMatch(consent, /badge verified/);

      assert.equal(result.callback.origin, 'http://127.0.0.1:49200');
      assert.equal(result.callback.searchParams.get('state'), result.state);
      assert.equal(result.callback.searchParams.get('iss'), as.issuer);
      const token = await redeemCode(as.issuer, {
        code: result.callback.searchParams.get('code') ?? '',
        verifier: result.verifier,
        redirectUri,
        clientId,
      });
      assert.equal(token.status, 200, token.text);
      assert.equal(token.json.scope, 'stocks:read');
      assert.equal(docs.hits(path), 1, 'fetched once, then served from the cache');
      assert.ok(
        as.audit('token.issued').some((r) => r.client_id === clientId && r.outcome === 'success'),
        'the token is audited against the document URL',
      );
    });

    test('a redirect URI the document does not list is refused', async () => {
      const path = '/valid-other-redirect/client.json';
      const clientId = docs.url(path);
      docs.json(path, documentFor(clientId));
      const response = await authorizationRequest(as.issuer, {
        clientId,
        redirectUri: 'https://evil.example/callback',
      });
      assertRefusedWithErrorPage(response, 'invalid_redirect_uri');
    });

    /** Each: what is wrong, the document, and the reason the audit record must give. */
    const rejections: Array<[string, (clientId: string) => Json, RegExp]> = [
      [
        'a document whose client_id differs from its URL',
        (clientId) => documentFor(`${clientId}?other`),
        /client_id .* does not match the document URL/,
      ],
      [
        'a document naming another URL on the same host',
        (clientId) => documentFor(clientId.replace('/client.json', '/other.json')),
        /client_id .* does not match the document URL/,
      ],
      [
        'token_endpoint_auth_method client_secret_basic',
        (clientId) => documentFor(clientId, { token_endpoint_auth_method: 'client_secret_basic' }),
        /shared-secret/,
      ],
      [
        'token_endpoint_auth_method client_secret_post',
        (clientId) => documentFor(clientId, { token_endpoint_auth_method: 'client_secret_post' }),
        /shared-secret/,
      ],
      [
        'a client_secret inside the document',
        (clientId) => documentFor(clientId, { client_secret: 'a-shared-secret-in-a-public-document' }),
        /must not contain client_secret/,
      ],
      [
        'an oversized document (more than maxBytes, 5120 by default)',
        (clientId) => documentFor(clientId, { description: 'x'.repeat(6000) }),
        /exceeds 5120 bytes/,
      ],
      [
        'a javascript: redirect URI in the document',
        (clientId) => documentFor(clientId, { redirect_uris: ['javascript:alert(1)'] }),
        /javascript:/,
      ],
    ];
    rejections.forEach(([name, makeDocument, reason], index) => {
      test(`refuses ${name} at the authorization endpoint`, async () => {
        const path = `/rejected-${index}/client.json`;
        const clientId = docs.url(path);
        docs.json(path, makeDocument(clientId));
        const response = await authorizationRequest(as.issuer, { clientId, redirectUri: REDIRECT });
        assertRefusedWithErrorPage(response, 'invalid_client');
        assert.equal(docs.hits(path), 1, 'fetched exactly once');
        const record = documentAudit(as, clientId);
        assert.equal(record?.outcome, 'failure');
        assert.match(String(record?.reason), reason);
      });
    });

    test('refuses a document behind a redirect, without following it', async () => {
      const path = '/redirecting/client.json';
      const target = '/redirect-target/client.json';
      const clientId = docs.url(path);
      docs.json(target, documentFor(clientId));
      docs.route(path, (_request, response) => {
        response.writeHead(302, { location: docs.url(target) }).end();
      });
      const response = await authorizationRequest(as.issuer, { clientId, redirectUri: REDIRECT });
      assertRefusedWithErrorPage(response, 'invalid_client');
      assert.equal(docs.hits(path), 1);
      assert.equal(docs.hits(target), 0, 'the redirect target is never fetched');
      assert.match(String(documentAudit(as, clientId)?.reason), /HTTP 302 \(redirects are not followed\)/);
    });

    test('refuses a body that is not JSON', async () => {
      const path = '/not-json/client.json';
      const clientId = docs.url(path);
      docs.route(path, (_request, response) => {
        response.writeHead(200, { 'content-type': 'application/json' }).end('<html>not json</html>');
      });
      const response = await authorizationRequest(as.issuer, { clientId, redirectUri: REDIRECT });
      assertRefusedWithErrorPage(response, 'invalid_client');
      assert.equal(docs.hits(path), 1);
      assert.match(String(documentAudit(as, clientId)?.reason), /not valid JSON/);
    });

    test('a failing document URL is not fetched again within the backoff', async () => {
      const path = '/flaky/client.json';
      const clientId = docs.url(path);
      docs.route(path, (_request, response) => {
        response.writeHead(500).end();
      });
      const first = await authorizationRequest(as.issuer, { clientId, redirectUri: REDIRECT });
      assertRefusedWithErrorPage(first, 'invalid_client');
      assert.equal(docs.hits(path), 1);

      // The document is fixed, but the failure is remembered for failureBackoffSeconds (60 s).
      docs.json(path, documentFor(clientId));
      const second = await authorizationRequest(as.issuer, { clientId, redirectUri: REDIRECT });
      assertRefusedWithErrorPage(second, 'invalid_client');
      const third = await authorizationRequest(as.issuer, { clientId, redirectUri: REDIRECT });
      assertRefusedWithErrorPage(third, 'invalid_client');
      assert.equal(docs.hits(path), 1, 'no further fetch within the backoff');
    });

    test('document clients are not persisted, and document content never reaches the log', () => {
      const stored = [...storedClients(as).keys()];
      assert.deepEqual(
        stored.filter((id) => id.startsWith(docs.origin)),
        [],
        'a document is resolved, not registered',
      );
      const leaked = as.logs.filter(
        (line) => line.includes('a-shared-secret-in-a-public-document') || line.includes('not json</html>'),
      );
      assert.deepEqual(leaked, []);
    });
  });

  describe('trust policy', () => {
    const started: TestAuthorizationServer[] = [];
    const start = async (policy: Json) => {
      const as = await startTestAuthorizationServer({
        clientIdMetadataDocuments: { allowLoopbackHttp: true, ...policy },
      });
      started.push(as);
      return as;
    };
    after(() => Promise.all(started.map((as) => as.close())));

    test('a document from a trusted domain is shown as verified', async () => {
      const as = await start({ trustedDomains: ['127.0.0.1'] });
      const path = '/trusted/client.json';
      const clientId = docs.url(path);
      docs.json(path, documentFor(clientId, { client_name: 'Trusted agent' }));
      const redirectUri = 'http://127.0.0.1:49300/callback';
      const result = await authorize({ issuer: as.issuer, clientId, redirectUri, scope: 'stocks:read' });
      const consent = result.consentHtml ?? '';
      assert.match(consent, /Trusted agent/);
      assert.match(consent, /<span class="badge verified">Verified<\/span>/);
      assert.match(consent, /Gatehouse has verified who publishes this application\./);
      assert.doesNotMatch(consent, /Unverified/);
      assert.equal(publishedAt(consent), new URL(clientId).host);
      assert.ok(result.callback.searchParams.get('code'));
    });

    for (const [name, policy] of [
      ['a denied domain', { deniedDomains: ['127.0.0.1'] }],
      ['an unlisted domain when unlisted documents are denied', { unlisted: 'deny' }],
      [
        'a domain both trusted and denied (deny wins)',
        { trustedDomains: ['127.0.0.1'], deniedDomains: ['127.0.0.1'] },
      ],
    ] as const) {
      test(`refuses ${name} without fetching the document`, async () => {
        const as = await start(policy);
        const path = `/denied-${started.length}/client.json`;
        const clientId = docs.url(path);
        docs.json(path, documentFor(clientId));
        const response = await authorizationRequest(as.issuer, { clientId, redirectUri: REDIRECT });
        assertRefusedWithErrorPage(response, 'invalid_client');
        assert.equal(docs.hits(path), 0, 'the document server was not contacted');
        assert.equal(documentAudit(as, clientId)?.outcome, 'denied');
      });
    }
  });

  describe('without the development switch (the default)', () => {
    let as: TestAuthorizationServer;
    before(async () => {
      as = await startTestAuthorizationServer();
    });
    after(() => as.close());

    test('logs no development warning', () => {
      assert.deepEqual(as.logs.filter(isDevelopmentSwitchWarning), []);
    });

    test('a loopback http client_id is an unknown client, and nothing is fetched', async () => {
      const path = '/default-off/client.json';
      const clientId = docs.url(path);
      docs.json(path, documentFor(clientId));
      const response = await authorizationRequest(as.issuer, { clientId, redirectUri: REDIRECT });
      assertRefusedWithErrorPage(response, 'invalid_client');
      assert.equal(docs.hits(path), 0);
    });

    for (const clientId of ['https://10.0.0.1/client.json', 'https://169.254.169.254/x']) {
      test(`refuses the special-use address in ${clientId}`, async () => {
        const started = Date.now();
        const response = await authorizationRequest(as.issuer, { clientId, redirectUri: REDIRECT });
        assertRefusedWithErrorPage(response, 'invalid_client');
        const record = as.logs
          .map((line) => JSON.parse(line) as Json)
          .find((r) => r.message === 'client metadata document rejected' && r.client_id === clientId);
        assert.equal(record?.reason, 'forbidden_address', 'vetted before any connection');
        assert.ok(Date.now() - started < 2000, 'refused at once, not after a connect timeout');
      });
    }
  });
});
