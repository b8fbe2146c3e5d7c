/**
 * Every URL the authorization server publishes or accepts derives from the configured issuer, not
 * from the request's Host or X-Forwarded-* headers, with or without `trustProxy` (defect 2), and
 * client assertions are short-lived and single-use (RFC 7523 §3).
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { importJWK, type JWK, SignJWT } from 'jose';
import {
  startTestAuthorizationServer,
  type TestAuthorizationServer,
} from '../helpers/authorization-server.ts';

const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
const WORKLOAD = 'example-workload';
const SPOOFED = {
  host: 'evil.example',
  'x-forwarded-host': 'evil.example',
  'x-forwarded-proto': 'https',
  forwarded: 'host=evil.example;proto=https',
};

/** A raw HTTP request, so that the Host header is exactly what the test says. */
function send(
  url: string,
  options: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<{
  status: number;
  headers: Record<string, unknown>;
  text: string;
  json: Record<string, unknown>;
}> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: options.method ?? 'GET', headers: options.headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: Record<string, unknown> = {};
        try {
          json = JSON.parse(text);
        } catch {}
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
      });
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

/** Every string in the metadata that looks like a URL. */
function urlsIn(metadata: Record<string, unknown>): string[] {
  return Object.values(metadata).filter(
    (value): value is string => typeof value === 'string' && /^https?:/.test(value),
  );
}

async function workloadSigning(as: TestAuthorizationServer) {
  const jwk = JSON.parse(
    readFileSync(path.join(as.dataDir, 'secrets/example-workload.private-key.json'), 'utf8'),
  ) as JWK;
  return { key: await importJWK(jwk, 'ES256'), kid: jwk.kid };
}

async function assertion(
  as: TestAuthorizationServer,
  claims: { aud?: string; iat?: number; exp?: number; jti?: string } = {},
) {
  const { key, kid } = await workloadSigning(as);
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({})
    .setProtectedHeader({ alg: 'ES256', ...(kid ? { kid } : {}) })
    .setIssuer(WORKLOAD)
    .setSubject(WORKLOAD)
    .setAudience(claims.aud ?? as.issuer)
    .setJti(claims.jti ?? randomUUID())
    .setIssuedAt(claims.iat ?? now)
    .setExpirationTime(claims.exp ?? now + 60)
    .sign(key);
}

function clientCredentials(
  as: TestAuthorizationServer,
  clientAssertion: string,
  headers: Record<string, string> = {},
) {
  return send(`${as.issuer}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams({
      grant_type: 'client_credentials',
      client_assertion_type: JWT_BEARER,
      client_assertion: clientAssertion,
      scope: 'stocks:read',
    }).toString(),
  });
}

for (const trustProxy of [false, true]) {
  describe(`the published URLs come from the issuer (trustProxy: ${trustProxy})`, () => {
    let as: TestAuthorizationServer;
    before(async () => {
      as = await startTestAuthorizationServer({ trustProxy });
    });
    after(() => as.close());

    for (const path of ['/.well-known/openid-configuration', '/.well-known/oauth-authorization-server']) {
      test(`${path} with a spoofed Host and X-Forwarded-* names only the issuer`, async () => {
        const { status, json } = await send(`${as.issuer}${path}`, { headers: SPOOFED });
        assert.equal(status, 200);
        assert.equal(json.issuer, as.issuer);
        const urls = urlsIn(json);
        for (const name of [
          'authorization_endpoint',
          'token_endpoint',
          'jwks_uri',
          'registration_endpoint',
          'pushed_authorization_request_endpoint',
          'introspection_endpoint',
          'revocation_endpoint',
        ]) {
          assert.equal(typeof json[name], 'string', `${name} is published`);
        }
        assert.ok(urls.length >= 7);
        for (const url of urls) {
          assert.ok(url === as.issuer || url.startsWith(`${as.issuer}/`), `${url} is under the issuer`);
        }
      });
    }

    test('registration_client_uri derives from the issuer, not the Host', async () => {
      const { status, json } = await send(`${as.issuer}/register`, {
        method: 'POST',
        headers: { ...SPOOFED, 'content-type': 'application/json' },
        body: JSON.stringify({
          redirect_uris: ['http://127.0.0.1/callback'],
          application_type: 'native',
          client_name: 'host test',
        }),
      });
      assert.equal(status, 201, JSON.stringify(json));
      assert.equal(json.registration_client_uri, `${as.issuer}/register/${json.client_id}`);
    });

    test('a client assertion made for another server is refused, even sent with its Host', async () => {
      const forOther = await assertion(as, { aud: 'http://evil.example/token' });
      const response = await clientCredentials(as, forOther, SPOOFED);
      assert.equal(response.status, 401, response.text);
      assert.equal(response.json.error, 'invalid_client');
      assert.equal(response.json.access_token, undefined);
    });

    test('an assertion for this issuer is accepted whatever the Host says', async () => {
      const response = await clientCredentials(as, await assertion(as), SPOOFED);
      assert.equal(response.status, 200, response.text);
      assert.equal(typeof response.json.access_token, 'string');
    });
  });
}

describe('client assertion lifetime and replay', () => {
  let as: TestAuthorizationServer;
  before(async () => {
    as = await startTestAuthorizationServer({ clientAssertions: { maxLifetimeSeconds: 120 } });
  });
  after(() => as.close());
  const now = () => Math.floor(Date.now() / 1000);

  test('an assertion valid for a year is invalid_client', async () => {
    const response = await clientCredentials(as, await assertion(as, { exp: now() + 365 * 86400 }));
    assert.equal(response.status, 401, response.text);
    assert.equal(response.json.error, 'invalid_client');
    assert.equal(response.json.access_token, undefined);
  });

  test('an assertion issued long ago and still valid is refused (exp - iat over the limit)', async () => {
    const response = await clientCredentials(as, await assertion(as, { iat: now() - 600, exp: now() + 60 }));
    assert.equal(response.status, 401, response.text);
    assert.equal(response.json.error, 'invalid_client');
  });

  test('an assertion without iat whose exp is too far is refused', async () => {
    const { key, kid } = await workloadSigning(as);
    const noIat = await new SignJWT({})
      .setProtectedHeader({ alg: 'ES256', ...(kid ? { kid } : {}) })
      .setIssuer(WORKLOAD)
      .setSubject(WORKLOAD)
      .setAudience(as.issuer)
      .setJti(randomUUID())
      .setExpirationTime(now() + 600)
      .sign(key);
    const response = await clientCredentials(as, noIat);
    assert.equal(response.status, 401, response.text);
    assert.equal(response.json.error, 'invalid_client');
  });

  test('an assertion within the limit is accepted once, and its jti never again', async () => {
    const jti = randomUUID();
    const first = await clientCredentials(as, await assertion(as, { jti, exp: now() + 110 }));
    assert.equal(first.status, 200, first.text);
    const replay = await clientCredentials(as, await assertion(as, { jti, exp: now() + 110 }));
    assert.equal(replay.status, 401, replay.text);
    assert.equal(replay.json.error, 'invalid_client');
    const failures = as.audit('token.issued').filter((r) => r.outcome === 'failure');
    assert.ok(failures.length >= 1, 'the refusals are audited');
  });
});
