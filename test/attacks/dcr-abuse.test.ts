/**
 * Abuse of dynamic client registration (RFC 7591, RFC 7592, RFC 9700 §4.15, design §3): dodging the
 * rate limit, huge metadata, script URIs, registering grants and scopes past the policy, making the
 * server connect to internal addresses through `jwks_uri` (SSRF and port scanning), and script in
 * the client name on the pages a user sees.
 *
 * Already covered elsewhere and not repeated: the limit itself (third registration gets 429), a
 * javascript: or data: redirect URI, grant types without authorization_code, response types other
 * than code, refresh_token stripped, the registered scope ceiling, the client name escaped on the
 * sign-in page (test/authorization-server/clients.test.ts, code-flow.test.ts).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { generateKeyPair } from 'jose';
import type { TestAuthorizationServer } from '../helpers/authorization-server.ts';
import { declareLeakCheck, SecretLedger } from '../helpers/secret-leaks.ts';
import { freePort } from '../helpers/stack.ts';
import { WORKLOAD, workloadTokenRequest } from '../helpers/workload.ts';
import {
  assertOAuthError,
  basicAuth,
  clientAssertion,
  clientAuth,
  GATEWAY,
  isActive,
  type Json,
  JWT_BEARER,
  post,
  rawRequest,
  redeem,
  register,
  registerOk,
  signIn,
  startAttackServer,
  storeOf,
  TOKEN_EXCHANGE,
} from './support/authorization-server.ts';
import { toConsentPage } from './support/interaction.ts';
import { type ConnectionTrap, specialUseInterfaceAddresses, startConnectionTrap } from './support/network.ts';

const REDIRECT = 'http://127.0.0.1/callback';
const ledger = new SecretLedger();
const servers: TestAuthorizationServer[] = [];
after(async () => {
  for (const server of servers) await server.close();
});

async function start(overrides: Record<string, unknown> = {}) {
  const as = await startAttackServer(ledger, overrides);
  servers.push(as);
  return as;
}

const NATIVE = { redirect_uris: [REDIRECT], application_type: 'native' };

/** A POST of a registration to `path` over node:http (fetch would normalise some spellings). */
async function registerAt(as: TestAuthorizationServer, path: string, headers: Record<string, string> = {}) {
  const response = await rawRequest(`${as.issuer}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(NATIVE),
  });
  try {
    ledger.rememberFields(JSON.parse(response.text) as Json);
  } catch {
    // 404 pages are not JSON.
  }
  return response;
}

describe('rate limit', () => {
  test('a new X-Forwarded-For on every request does not reset the limit (trustProxy off)', async () => {
    const as = await start({ dynamicRegistration: { rateLimit: { max: 2, windowSeconds: 60 } } });
    const statuses: number[] = [];
    for (let i = 0; i < 4; i += 1) {
      statuses.push((await registerAt(as, '/register', { 'x-forwarded-for': `203.0.113.${i + 1}` })).status);
    }
    assert.deepEqual(statuses, [201, 201, 429, 429]);
    assert.equal(storeOf(as).count('Client'), 2);
  });

  // Behind a trusted proxy the address is the last X-Forwarded-For entry, the one the proxy
  // appended (maxIpsCount = 1): entries a client put before it choose nothing.
  test('trustProxy: entries a client prepends to X-Forwarded-For do not reset the limit; the last one keys it', async () => {
    const as = await start({
      trustProxy: true,
      dynamicRegistration: { rateLimit: { max: 2, windowSeconds: 60 } },
    });
    const statuses: number[] = [];
    for (let i = 0; i < 4; i += 1) {
      const forwarded = `203.0.113.${i + 1}, 198.51.100.7`;
      statuses.push((await registerAt(as, '/register', { 'x-forwarded-for': forwarded })).status);
    }
    assert.deepEqual(statuses, [201, 201, 429, 429]);
    const other = await registerAt(as, '/register', { 'x-forwarded-for': '198.51.100.7, 198.51.100.8' });
    assert.equal(other.status, 201, 'another address the proxy saw has its own window');
    assert.equal(storeOf(as).count('Client'), 3);
  });

  // The limiter compares the path exactly; oidc-provider's router also answers these spellings.
  for (const path of ['/register/', '/REGISTER', '/Register/', '/register/.']) {
    test(`POST ${path} once the limit is reached: refused (429 or 404), no client created`, async () => {
      const as = await start({ dynamicRegistration: { rateLimit: { max: 1, windowSeconds: 60 } } });
      assert.equal((await registerAt(as, '/register')).status, 201);
      assert.equal((await registerAt(as, '/register')).status, 429, 'the limit is reached');
      const response = await registerAt(as, path);
      assert.ok([429, 404].includes(response.status), `${path} answered ${response.status}`);
      assert.equal(storeOf(as).count('Client'), 1, 'no second client');
    });
  }

  for (const path of ['/token/', '/TOKEN']) {
    test(`the token endpoint's address limit holds for POST ${path} too: 429 once reached, no code checked`, async () => {
      const as = await start({ tokenEndpointRateLimit: { perAddress: { max: 1, windowSeconds: 60 } } });
      // Requests without a client credential (a public client's) count against the address.
      const guess = (at: string) =>
        rawRequest(`${as.issuer}${at}`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: 'grant_type=authorization_code&client_id=nobody&code=a-guessed-code',
        });
      assert.notEqual((await guess('/token')).status, 429);
      assert.equal((await guess('/token')).status, 429, 'the limit is reached');
      const response = await guess(path);
      assert.ok(
        [429, 404].includes(response.status),
        `${path} answered ${response.status}: ${response.text}`,
      );
    });
  }
});

describe("the token endpoint's counts", () => {
  const publicRequest = (as: TestAuthorizationServer) =>
    rawRequest(`${as.issuer}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'grant_type=authorization_code&client_id=nobody&code=a-guessed-code',
    });
  const badAssertion = (as: TestAuthorizationServer) =>
    rawRequest(`${as.issuer}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'client_credentials',
        client_id: WORKLOAD,
        client_assertion_type: JWT_BEARER,
        client_assertion: 'eyJhbGciOiJFUzI1NiJ9.e30.bm90LWEtc2lnbmF0dXJl',
      }).toString(),
    });

  // Each request moves one count once (http/token-rate-limit.ts): a failed authentication uses the
  // address's budget, a token for an authenticated client only the client's.
  test('a failed client authentication counts against the address; an authenticated one does not', async () => {
    const as = await start({ tokenEndpointRateLimit: { perAddress: { max: 2, windowSeconds: 60 } } });
    for (let i = 0; i < 4; i += 1) {
      const response = await workloadTokenRequest(as);
      assert.equal(response.status, 200, response.text);
    }
    assert.notEqual((await publicRequest(as)).status, 429, 'four tokens of the workload used none of it');
    assert.equal((await badAssertion(as)).status, 401);
    assert.equal((await publicRequest(as)).status, 429, 'the failed authentication counted');
    const workload = await workloadTokenRequest(as);
    assert.equal(workload.status, 200, 'a client with a credential is never refused for its address');
  });

  test('failed authentications with a Basic header, or any other Authorization header, count against the address too', async () => {
    const as = await start({ tokenEndpointRateLimit: { perAddress: { max: 2, windowSeconds: 60 } } });
    const withHeader = (authorization: string) =>
      rawRequest(`${as.issuer}/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', authorization },
        body: 'grant_type=client_credentials',
      });
    assert.equal(
      (await withHeader(`Basic ${Buffer.from(`${WORKLOAD}:wrong`).toString('base64')}`)).status,
      401,
    );
    assert.notEqual((await withHeader('Bearer not-a-client-credential')).status, 200);
    assert.equal((await publicRequest(as)).status, 429, 'both counted: the address budget is used up');
    const workload = await workloadTokenRequest(as);
    assert.equal(workload.status, 200, 'and still no client with a credential is refused for its address');
  });

  test('an authenticated client over its own budget gets 429 with Retry-After', async () => {
    const as = await start({
      tokenEndpointRateLimit: { perClient: { workload: { max: 2, windowSeconds: 60 } } },
    });
    for (let i = 0; i < 2; i += 1) assert.equal((await workloadTokenRequest(as)).status, 200);
    const over = await workloadTokenRequest(as);
    assert.equal(over.status, 429, over.text);
    assert.equal(over.json.error, 'temporarily_unavailable');
    const wait = Number(over.headers.get('retry-after'));
    assert.ok(wait > 0 && wait <= 60, `retry-after ${wait}`);
    assert.notEqual((await publicRequest(as)).status, 429, "the refusal used the client's budget only");
  });
});

describe('registration metadata', () => {
  let as: TestAuthorizationServer;
  before(async () => {
    as = await start({ dynamicRegistration: { rateLimit: { max: 1000, windowSeconds: 60 } } });
  });

  for (const [name, size] of [
    ['a 60 kB client_name', 60_000],
    ['a 1 MB body', 1_000_000],
  ] as const) {
    test(`${name} is refused: invalid_request, nothing stored`, async () => {
      const before = storeOf(as).count('Client');
      const response = await register(ledger, as.issuer, { client_name: 'x'.repeat(size) });
      assert.equal(response.status, 400, JSON.stringify(response.body).slice(0, 200));
      assert.equal(response.body.error, 'invalid_request');
      assert.equal(response.body.client_id, undefined);
      assert.equal(storeOf(as).count('Client'), before);
    });
  }

  for (const uri of [
    'JavaScript:alert(1)',
    ' javascript:alert(1)',
    'java\tscript:alert(1)',
    'vbscript:msgbox(1)',
    'file:///etc/passwd',
    'blob:https://app.example.com/x',
    'data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==',
  ]) {
    test(`redirect URI ${JSON.stringify(uri)}: invalid_redirect_uri, nothing stored`, async () => {
      const before = storeOf(as).count('Client');
      const response = await register(ledger, as.issuer, { redirect_uris: [uri] });
      assert.equal(response.status, 400, JSON.stringify(response.body));
      assert.equal(response.body.error, 'invalid_redirect_uri');
      assert.equal(storeOf(as).count('Client'), before);
    });
  }

  for (const [property, name] of [
    ['client_name', 'Gatehouse'],
    ['client_name', 'Gate House admin'],
    ['client_name', 'GATEHOUSE™ console'],
    ['client_name', 'ｇａｔｅｈｏｕｓｅ'],
  ] as const) {
    test(`${property} ${JSON.stringify(name)} takes the sign-in service's own name: invalid_client_metadata, nothing stored`, async () => {
      const before = storeOf(as).count('Client');
      const response = await register(ledger, as.issuer, { [property]: name });
      assert.equal(response.status, 400, JSON.stringify(response.body));
      assert.equal(response.body.error, 'invalid_client_metadata');
      assert.match(String(response.body.error_description), /reserved/);
      assert.equal(storeOf(as).count('Client'), before);
    });
  }

  test('a name that merely contains the letters apart is accepted', async () => {
    const response = await register(ledger, as.issuer, { client_name: 'Gate keeper for the house' });
    assert.equal(response.status, 201, JSON.stringify(response.body));
  });

  for (const property of ['logo_uri', 'client_uri', 'policy_uri', 'tos_uri']) {
    for (const value of ['javascript:alert(1)', 'data:text/html,<script>alert(1)</script>']) {
      test(`${property} ${value.split(':')[0]}: invalid_client_metadata, nothing stored`, async () => {
        const before = storeOf(as).count('Client');
        const response = await register(ledger, as.issuer, { [property]: value });
        assert.equal(response.status, 400, JSON.stringify(response.body));
        assert.equal(response.body.error, 'invalid_client_metadata');
        assert.equal(storeOf(as).count('Client'), before);
      });
    }
  }
});

describe('grant escalation', () => {
  let as: TestAuthorizationServer;
  before(async () => {
    as = await start({ dynamicRegistration: { rateLimit: { max: 1000, windowSeconds: 60 } } });
  });

  test('client_credentials, token exchange, password and device grants are dropped; client_credentials is unauthorized_client', async () => {
    const body = await registerOk(ledger, as.issuer, {
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: [
        'authorization_code',
        'client_credentials',
        TOKEN_EXCHANGE,
        'password',
        'urn:ietf:params:oauth:grant-type:device_code',
        'urn:ietf:params:oauth:grant-type:jwt-bearer',
      ],
    });
    assert.deepEqual(body.grant_types, ['authorization_code']);
    const response = await post(
      ledger,
      `${as.issuer}/token`,
      { grant_type: 'client_credentials', scope: 'stocks:read' },
      { authorization: basicAuth(ledger, String(body.client_id), String(body.client_secret)) },
    );
    assertOAuthError(response, 400, 'unauthorized_client');
  });

  test("a chosen client_id (the gateway's) and client_secret are ignored; the gateway is unchanged", async () => {
    const chosenSecret = 'a-secret-the-registrant-chose-0123456789';
    ledger.remember(chosenSecret);
    const body = await registerOk(ledger, as.issuer, {
      client_id: GATEWAY,
      client_secret: chosenSecret,
      // (Calling itself "Gatehouse gateway" is refused outright: see the reserved names above.)
      client_name: 'The gateway',
      token_endpoint_auth_method: 'client_secret_basic',
    });
    assert.notEqual(body.client_id, GATEWAY);
    assert.notEqual(body.client_secret, chosenSecret);
    // The real gateway still introspects with its own secret; the chosen one is worthless.
    const probe = await post(
      ledger,
      `${as.issuer}/introspect`,
      { token: 'no-such-token-0123456789abcdefghij' },
      { authorization: basicAuth(ledger, GATEWAY, chosenSecret) },
    );
    assertOAuthError(probe, 401, 'invalid_client');
    const real = await post(
      ledger,
      `${as.issuer}/introspect`,
      { token: 'no-such-token-0123456789abcdefghij' },
      { authorization: clientAuth(ledger, as, GATEWAY) },
    );
    assert.equal(real.status, 200, real.text);
  });

  test('an update (RFC 7592) adding client_credentials and refresh_token never gets client_credentials', async () => {
    const body = await registerOk(ledger, as.issuer, { token_endpoint_auth_method: 'client_secret_basic' });
    const response = await rawRequest(String(body.registration_client_uri), {
      method: 'PUT',
      headers: {
        'content-type': 'application/json',
        authorization: `Bearer ${String(body.registration_access_token)}`,
      },
      body: JSON.stringify({
        ...NATIVE,
        client_id: body.client_id,
        client_secret: body.client_secret,
        token_endpoint_auth_method: 'client_secret_basic',
        grant_types: ['authorization_code', 'client_credentials', 'refresh_token'],
        scope: 'admin:all stocks:read',
      }),
    });
    assert.equal(response.status, 200, response.text);
    const updated = JSON.parse(response.text) as Json;
    ledger.rememberFields(updated);
    // refresh_token stays: the default policy gives it to confidential self-registered clients.
    assert.deepEqual(updated.grant_types, ['authorization_code', 'refresh_token']);
    assert.equal(
      updated.scope,
      'openid stocks:read stocks:trade customers:read',
      'the ceiling, not admin:all',
    );
    assert.deepEqual(storeOf(as).payload('Client', String(body.client_id))?.grant_types, [
      'authorization_code',
      'refresh_token',
    ]);
  });

  test('an update (RFC 7592) to a javascript: redirect URI is refused and the stored client is unchanged', async () => {
    const body = await registerOk(ledger, as.issuer, { token_endpoint_auth_method: 'client_secret_basic' });
    const response = await rawRequest(String(body.registration_client_uri), {
      method: 'PUT',
      headers: {
        'content-type': 'application/json',
        authorization: `Bearer ${String(body.registration_access_token)}`,
      },
      body: JSON.stringify({
        ...NATIVE,
        client_id: body.client_id,
        client_secret: body.client_secret,
        token_endpoint_auth_method: 'client_secret_basic',
        redirect_uris: ['javascript:alert(1)'],
      }),
    });
    assert.equal(response.status, 400, response.text);
    assert.equal((JSON.parse(response.text) as Json).error, 'invalid_redirect_uri');
    assert.deepEqual(storeOf(as).payload('Client', String(body.client_id))?.redirect_uris, [REDIRECT]);
  });
});

describe('scopes past the ceiling', () => {
  test('admin:all and offline_access are neither granted nor turned into a refresh token', async () => {
    const as = await start({
      // The defaults: refresh tokens for confidential clients only.
      refreshTokens: { enabled: true },
    });
    const body = await registerOk(ledger, as.issuer, {
      scope: 'openid offline_access admin:all stocks:read',
      grant_types: ['authorization_code', 'refresh_token'],
    });
    const clientId = String(body.client_id);
    assert.deepEqual(body.grant_types, ['authorization_code'], 'a public client gets none');
    const result = await signIn(ledger, {
      issuer: as.issuer,
      clientId,
      redirectUri: REDIRECT,
      scope: 'offline_access admin:all stocks:read',
    });
    assert.doesNotMatch(result.consentHtml ?? '', /admin:all|offline_access/, 'not even asked');
    const token = await redeem(ledger, as.issuer, {
      code: result.callback.searchParams.get('code')!,
      verifier: result.verifier,
      redirectUri: REDIRECT,
      clientId,
    });
    assert.equal(token.status, 200, token.text);
    assert.equal(token.json.scope, 'stocks:read');
    assert.equal(token.json.refresh_token, undefined);
  });
});

describe('jwks_uri SSRF', () => {
  let as: TestAuthorizationServer;
  let trap: ConnectionTrap;
  const inside = specialUseInterfaceAddresses();
  before(async () => {
    as = await start({ dynamicRegistration: { rateLimit: { max: 1000, windowSeconds: 60 } } });
    trap = await startConnectionTrap(['127.0.0.1', '::1', ...inside.ipv4, ...inside.ipv6]);
  });
  after(() => trap.close());

  const hostOf = (address: string) => (address.includes(':') ? `[${address}]` : address);

  /** Registers a private_key_jwt client with `jwksUri` (or refuses to: then returns the refusal). */
  const registerWithJwksUri = (jwksUri: string) =>
    register(ledger, as.issuer, { token_endpoint_auth_method: 'private_key_jwt', jwks_uri: jwksUri });

  /** Client authentication by that client: the server needs its keys, from the jwks_uri. */
  async function authenticateAs(clientId: string) {
    const { privateKey } = await generateKeyPair('ES256');
    const assertion = await clientAssertion(
      ledger,
      { key: privateKey, kid: 'attacker-key' },
      {
        clientId,
        audience: as.issuer,
      },
    );
    return post(ledger, `${as.issuer}/token`, {
      grant_type: 'authorization_code',
      code: 'an-authorization-code-that-does-not-exist',
      redirect_uri: REDIRECT,
      client_assertion_type: JWT_BEARER,
      client_assertion: assertion,
    });
  }

  for (const host of ['127.0.0.1', '10.0.0.1', '[::1]']) {
    test(`an http jwks_uri on ${host} is refused at registration: invalid_client_metadata, nothing stored`, async () => {
      const before = storeOf(as).count('Client');
      const response = await registerWithJwksUri(`http://${host}:${trap.port}/jwks`);
      assert.equal(response.status, 400, JSON.stringify(response.body));
      assert.equal(response.body.error, 'invalid_client_metadata');
      assert.equal(storeOf(as).count('Client'), before);
    });
  }

  test('an update (RFC 7592) to an http jwks_uri is refused too', async () => {
    const body = await registerOk(ledger, as.issuer, { token_endpoint_auth_method: 'client_secret_basic' });
    const response = await rawRequest(String(body.registration_client_uri), {
      method: 'PUT',
      headers: {
        'content-type': 'application/json',
        authorization: `Bearer ${String(body.registration_access_token)}`,
      },
      body: JSON.stringify({
        ...NATIVE,
        client_id: body.client_id,
        token_endpoint_auth_method: 'private_key_jwt',
        jwks_uri: `http://127.0.0.1:${trap.port}/jwks`,
      }),
    });
    assert.equal(response.status, 400, response.text);
    assert.equal((JSON.parse(response.text) as Json).error, 'invalid_client_metadata');
  });

  const addresses = [
    ['loopback', '127.0.0.1'],
    ['IPv6 loopback', '::1'],
    ...inside.ipv4.map((address) => ['a private address of this machine', address] as const),
    ...inside.ipv6.map((address) => ['a unique-local address of this machine', address] as const),
  ] as const;
  for (const [kind, address] of addresses) {
    test(`an https jwks_uri on ${kind} (${address}): client authentication fails and nothing connects there`, async () => {
      assert.ok(trap.addresses.includes(address), `the trap listens on ${address}`);
      const jwksUri = `https://${hostOf(address)}:${trap.port}/jwks`;
      const registration = await registerWithJwksUri(jwksUri);
      const before = trap.connections.get(address) ?? 0;
      if (registration.status === 201) {
        const response = await authenticateAs(String(registration.body.client_id));
        assertOAuthError(response, 401, 'invalid_client');
      } else {
        assert.equal(registration.body.error, 'invalid_client_metadata');
      }
      assert.equal(
        trap.connections.get(address) ?? 0,
        before,
        `the server connected to ${address}:${trap.port}`,
      );
    });
  }

  test('an open and a closed internal port answer alike, and nothing connects (no port-scan oracle)', async () => {
    const closed = await freePort();
    const answers: Array<{ status: number; body: string }> = [];
    const before = trap.total();
    for (const port of [trap.port, closed]) {
      const registration = await registerWithJwksUri(`https://127.0.0.1:${port}/jwks`);
      if (registration.status !== 201) {
        answers.push({ status: registration.status, body: JSON.stringify(registration.body) });
        continue;
      }
      const response = await authenticateAs(String(registration.body.client_id));
      answers.push({ status: response.status, body: response.text });
    }
    assert.deepEqual(answers[0], answers[1], 'the same answer for an open and a closed port');
    assert.equal(trap.total(), before, 'no connection was made');
  });

  test('control: a registered client whose keys cannot be fetched does not break anyone else', async () => {
    const other = await registerOk(ledger, as.issuer, { client_name: 'Bystander' });
    const result = await signIn(ledger, {
      issuer: as.issuer,
      clientId: String(other.client_id),
      redirectUri: REDIRECT,
      scope: 'stocks:read',
    });
    const token = await redeem(ledger, as.issuer, {
      code: result.callback.searchParams.get('code')!,
      verifier: result.verifier,
      redirectUri: REDIRECT,
      clientId: String(other.client_id),
    });
    assert.equal(token.status, 200, token.text);
    assert.ok(await isActive(ledger, as, String(token.json.access_token)));
  });
});

describe('script in the client name, on the pages a user sees', () => {
  let as: TestAuthorizationServer;
  before(async () => {
    as = await start({ dynamicRegistration: { rateLimit: { max: 1000, windowSeconds: 60 } } });
  });

  for (const name of [
    '<script>alert(1)</script>',
    '"><img src=x onerror=alert(1)>',
    "'><svg onload=alert(1)>",
    '</title><script>alert(1)</script>',
    '{{constructor.constructor(`alert(1)`)()}}',
  ]) {
    test(`client_name ${JSON.stringify(name)} is shown as text on the consent page`, async () => {
      const clientId = String((await registerOk(ledger, as.issuer, { client_name: name })).client_id);
      const consent = await toConsentPage(as, ledger, clientId);
      const html = consent.page.text;
      assert.doesNotMatch(html, /<script>alert|<img[^>]*onerror|<svg[^>]*onload/i, 'no markup from the name');
      assert.ok(
        html.includes(
          name
            .replace(/&/g, '&amp;')
            .replace(/</g, '&lt;')
            .replace(/>/g, '&gt;')
            .replace(/"/g, '&quot;')
            .replace(/'/g, '&#39;')
            .replace(/`/g, '&#96;'),
        ),
        'the name, escaped',
      );
      assert.match(consent.page.headers.get('content-security-policy') ?? '', /default-src 'none'/);
    });
  }
});

declareLeakCheck(ledger, { minimumSecrets: 40, oneTimeCodes: true });
