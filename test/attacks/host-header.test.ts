/**
 * The Host header and X-Forwarded-* at the authorization server (design §3: every URL the
 * authorization server publishes or accepts derives from the configured issuer, never from Host or
 * X-Forwarded-* headers), and the client assertions that depend on it (RFC 7523 §3, RFC 7521 §5.2,
 * RFC 9700 §2.3): an `aud` naming another server's URL sent with a matching Host, a lifetime of a
 * year, and a replayed `jti`.
 *
 * Already covered elsewhere and not repeated: a replayed assertion and the same jti in a freshly
 * signed assertion are refused (test/authorization-server/tokens.test.ts).
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import type { TestAuthorizationServer } from '../helpers/authorization-server.ts';
import { csrfOf, latestCode } from '../helpers/oauth.ts';
import { declareLeakCheck, SecretLedger } from '../helpers/secret-leaks.ts';
import { freePort } from '../helpers/stack.ts';
import {
  assertOAuthError,
  clientAssertion,
  codeRequest,
  type Json,
  JWT_BEARER,
  rawRequest,
  registerOk,
  startAttackServer,
  WORKLOAD,
  workloadKey,
} from './support/authorization-server.ts';

const EVIL = 'evil.example';
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

/** Every URL-valued member of the metadata document. */
function publishedUrls(metadata: Json): Array<[string, string]> {
  return Object.entries(metadata).filter(
    (entry): entry is [string, string] => typeof entry[1] === 'string' && /^https?:\/\//.test(entry[1]),
  );
}

async function metadataWith(as: TestAuthorizationServer, path: string, headers: Record<string, string>) {
  const response = await rawRequest(`${as.issuer}${path}`, { headers });
  assert.equal(response.status, 200, response.text.slice(0, 300));
  return JSON.parse(response.text) as Json;
}

function assertFromIssuer(as: TestAuthorizationServer, metadata: Json) {
  const urls = publishedUrls(metadata);
  assert.ok(urls.length >= 6, 'the endpoints are there');
  for (const [name, url] of urls) {
    if (name === 'issuer') assert.equal(url, as.issuer);
    else assert.ok(url.startsWith(`${as.issuer}/`), `${name} is ${url}, not under ${as.issuer}`);
  }
}

/** A registration sent with the given headers; returns its registration_client_uri. */
async function registrationClientUri(as: TestAuthorizationServer, headers: Record<string, string>) {
  const response = await rawRequest(`${as.issuer}/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ redirect_uris: ['http://127.0.0.1/callback'], application_type: 'native' }),
  });
  assert.equal(response.status, 201, response.text.slice(0, 300));
  const body = JSON.parse(response.text) as Json;
  ledger.rememberFields(body);
  return String(body.registration_client_uri);
}

const FORGED = [
  ['Host', { host: EVIL }],
  ['Host with a port', { host: `${EVIL}:8443` }],
  ['X-Forwarded-Host and X-Forwarded-Proto', { 'x-forwarded-host': EVIL, 'x-forwarded-proto': 'https' }],
  ['Forwarded (RFC 7239)', { forwarded: `host=${EVIL};proto=https` }],
] as const;

for (const trustProxy of [false, true]) {
  describe(`published URLs ${trustProxy ? 'with' : 'without'} trustProxy`, () => {
    let as: TestAuthorizationServer;
    before(async () => {
      as = await start({ trustProxy });
    });

    test('control: without forged headers, discovery and registration_client_uri use the issuer', async () => {
      assertFromIssuer(as, await metadataWith(as, '/.well-known/openid-configuration', {}));
      assert.ok((await registrationClientUri(as, {})).startsWith(`${as.issuer}/register/`));
    });

    for (const [header, headers] of FORGED) {
      for (const path of ['/.well-known/openid-configuration', '/.well-known/oauth-authorization-server']) {
        test(`a forged ${header} does not change ${path}`, async () => {
          assertFromIssuer(as, await metadataWith(as, path, headers));
        });
      }
      test(`a forged ${header} does not change registration_client_uri`, async () => {
        const uri = await registrationClientUri(as, headers);
        assert.ok(uri.startsWith(`${as.issuer}/register/`), uri);
      });
    }
  });
}

describe('the sign-in flow under a forged Host', () => {
  let as: TestAuthorizationServer;
  let clientId: string;
  before(async () => {
    as = await start();
    clientId = String((await registerOk(ledger, as.issuer, { client_name: 'Host test agent' })).client_id);
  });

  /** A request over node:http with a cookie jar, so that every request carries the forged Host. */
  async function request(
    jar: Map<string, string>,
    url: string,
    options: { form?: Record<string, string> } = {},
  ): Promise<{ status: number; location: string | undefined; text: string }> {
    const headers: Record<string, string> = { host: EVIL };
    if (jar.size > 0) headers.cookie = [...jar].map(([name, value]) => `${name}=${value}`).join('; ');
    if (options.form) headers['content-type'] = 'application/x-www-form-urlencoded';
    const response = await rawRequest(url, {
      method: options.form ? 'POST' : 'GET',
      headers,
      ...(options.form ? { body: new URLSearchParams(options.form).toString() } : {}),
    });
    for (const cookie of [response.headers['set-cookie'] ?? []].flat()) {
      const [pair] = cookie.split(';');
      const index = pair!.indexOf('=');
      const value = pair!.slice(index + 1);
      if (value === '' || /expires=thu, 01 jan 1970/i.test(cookie)) jar.delete(pair!.slice(0, index));
      else jar.set(pair!.slice(0, index), value);
    }
    const location = response.headers.location;
    return {
      status: response.status,
      location: typeof location === 'string' ? location : undefined,
      text: response.text,
    };
  }

  /** Where a Location sends the browser; followed on the real server (the forged Host says where). */
  const onServer = (location: string) => {
    const target = new URL(location, as.issuer);
    return { target, url: `${as.issuer}${target.pathname}${target.search}` };
  };

  test('every redirect on the way stays on the issuer, and the callback carries the configured iss', async () => {
    const jar = new Map<string, string>();
    const { params } = codeRequest(clientId, 'http://127.0.0.1/callback');
    const url = new URL(`${as.issuer}/authorize`);
    for (const [key, value] of Object.entries(params)) if (value) url.searchParams.set(key, value);
    let response = await request(jar, url.href);
    const seen: string[] = [];
    for (let step = 0; step < 10; step += 1) {
      assert.ok(response.location, `a redirect, got ${response.status}: ${response.text.slice(0, 200)}`);
      const { target, url: next } = onServer(response.location);
      seen.push(target.href);
      if (target.origin === 'http://127.0.0.1') {
        assert.deepEqual(target.searchParams.getAll('iss'), [as.issuer]);
        assert.ok(target.searchParams.get('code'));
        ledger.remember(target.searchParams.get('code'));
        break;
      }
      assert.equal(target.origin, as.issuer, `a redirect to ${target.href}`);
      const page = await request(jar, next);
      if (page.status !== 200) {
        response = page;
        continue;
      }
      const path = target.pathname;
      if (page.text.includes('name="email"')) {
        const sent = await request(jar, `${as.issuer}${path}/email`, {
          form: { csrf: csrfOf(page.text), email: 'alice@example.com' },
        });
        const code = await latestCode(as.issuer, 'alice@example.com');
        ledger.rememberOneTimeCode(code);
        response = await request(jar, `${as.issuer}${path}/code`, {
          form: { csrf: csrfOf(sent.text), code },
        });
      } else {
        response = await request(jar, `${as.issuer}${path}/consent`, {
          form: { csrf: csrfOf(page.text), decision: 'allow' },
        });
      }
    }
    assert.ok(
      seen.some((href) => href.startsWith('http://127.0.0.1/callback')),
      seen.join('\n'),
    );
  });
});

describe('client assertions (private_key_jwt)', () => {
  let as: TestAuthorizationServer;
  let proxied: TestAuthorizationServer;
  before(async () => {
    as = await start();
    proxied = await start({ trustProxy: true });
  });

  /** A client credentials request by the workload with `assertion`, with extra request headers. */
  async function tokenWith(
    server: TestAuthorizationServer,
    assertion: string,
    headers: Record<string, string> = {},
  ) {
    const body = new URLSearchParams({
      grant_type: 'client_credentials',
      scope: 'stocks:read',
      client_assertion_type: JWT_BEARER,
      client_assertion: assertion,
    }).toString();
    const response = await rawRequest(`${server.issuer}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
      body,
    });
    let json: Json = {};
    try {
      json = JSON.parse(response.text) as Json;
    } catch {
      json = {};
    }
    ledger.rememberFields(json);
    return { status: response.status, headers: new Headers(), text: response.text, json };
  }

  test('control: aud = the issuer and aud = the token endpoint are accepted', async () => {
    const key = await workloadKey(as);
    for (const audience of [as.issuer, `${as.issuer}/token`]) {
      const response = await tokenWith(
        as,
        await clientAssertion(ledger, key, { clientId: WORKLOAD, audience }),
      );
      assert.equal(response.status, 200, response.text);
    }
  });

  test("aud = another server's token endpoint, sent with a matching Host: invalid_client (401), no token", async () => {
    const assertion = await clientAssertion(ledger, await workloadKey(as), {
      clientId: WORKLOAD,
      audience: `http://${EVIL}/token`,
    });
    assertOAuthError(await tokenWith(as, assertion, { host: EVIL }), 401, 'invalid_client');
  });

  test("aud = another server's token endpoint, with matching X-Forwarded-* under trustProxy: invalid_client", async () => {
    const assertion = await clientAssertion(ledger, await workloadKey(proxied), {
      clientId: WORKLOAD,
      audience: `https://${EVIL}/token`,
    });
    const response = await tokenWith(proxied, assertion, {
      'x-forwarded-host': EVIL,
      'x-forwarded-proto': 'https',
    });
    assertOAuthError(response, 401, 'invalid_client');
  });

  test("aud = another server's issuer: invalid_client (401)", async () => {
    const assertion = await clientAssertion(ledger, await workloadKey(as), {
      clientId: WORKLOAD,
      audience: `http://${EVIL}`,
    });
    assertOAuthError(await tokenWith(as, assertion, { host: EVIL }), 401, 'invalid_client');
  });

  test('an assertion valid for a year: invalid_client (401), no token', async () => {
    const assertion = await clientAssertion(ledger, await workloadKey(as), {
      clientId: WORKLOAD,
      audience: as.issuer,
      lifetimeSeconds: 365 * 86400,
    });
    assertOAuthError(await tokenWith(as, assertion), 401, 'invalid_client');
  });

  test('the same jti with the other accepted audience: invalid_client (401)', async () => {
    const key = await workloadKey(as);
    const jti = randomUUID();
    const first = await tokenWith(
      as,
      await clientAssertion(ledger, key, { clientId: WORKLOAD, audience: as.issuer, jti }),
    );
    assert.equal(first.status, 200, first.text);
    const replay = await tokenWith(
      as,
      await clientAssertion(ledger, key, { clientId: WORKLOAD, audience: `${as.issuer}/token`, jti }),
    );
    assertOAuthError(replay, 401, 'invalid_client');
  });

  test('a replayed assertion after a restart: invalid_client (401), the jti is remembered', async () => {
    const port = await freePort();
    const fixed = await start({ issuer: `http://127.0.0.1:${port}`, listen: { host: '127.0.0.1', port } });
    const assertion = await clientAssertion(ledger, await workloadKey(fixed), {
      clientId: WORKLOAD,
      audience: fixed.issuer,
    });
    assert.equal((await tokenWith(fixed, assertion)).status, 200);
    await ledger.harvestOneTimeCodes();
    await fixed.restart();
    assert.equal(fixed.issuer, `http://127.0.0.1:${port}`);
    assertOAuthError(await tokenWith(fixed, assertion), 401, 'invalid_client');
    // Control: the same key and issuer still work with a fresh jti.
    const fresh = await clientAssertion(ledger, await workloadKey(fixed), {
      clientId: WORKLOAD,
      audience: fixed.issuer,
    });
    assert.equal((await tokenWith(fixed, fresh)).status, 200);
  });
});

declareLeakCheck(ledger, { minimumSecrets: 15, oneTimeCodes: false });
