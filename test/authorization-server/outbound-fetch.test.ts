/**
 * SSRF through client metadata (defect 4): a self-registered `jwks_uri` must be https, and the
 * server never connects to a special-use address for it, whatever the client registered.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import * as net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { generateKeyPair, SignJWT } from 'jose';
import {
  startTestAuthorizationServer,
  type TestAuthorizationServer,
} from '../helpers/authorization-server.ts';
import { postForm } from '../helpers/oauth.ts';

const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

let as: TestAuthorizationServer;
let connections = 0;
let port = 0;
const counter = net.createServer((socket) => {
  connections += 1;
  socket.destroy();
});

before(async () => {
  counter.listen(0, '127.0.0.1');
  await once(counter, 'listening');
  port = (counter.address() as net.AddressInfo).port;
  as = await startTestAuthorizationServer();
});
after(async () => {
  await as.close();
  counter.close();
});

async function register(metadata: Record<string, unknown>) {
  const response = await fetch(`${as.issuer}/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      client_name: 'Keyed agent',
      redirect_uris: ['http://127.0.0.1/callback'],
      application_type: 'native',
      token_endpoint_auth_method: 'private_key_jwt',
      ...metadata,
    }),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

describe('jwks_uri', () => {
  for (const uri of ['http://10.0.0.1/jwks', 'http://127.0.0.1:9/jwks', 'ftp://example.com/jwks']) {
    test(`${uri} is refused at registration`, async () => {
      const before = connections;
      const { status, body } = await register({ jwks_uri: uri });
      assert.equal(status, 400, JSON.stringify(body));
      assert.equal(body.error, 'invalid_client_metadata');
      assert.match(String(body.error_description), /jwks_uri must be an https URL/);
      assert.equal(body.client_id, undefined);
      assert.equal(connections, before);
    });
  }

  test('an https jwks_uri on a loopback address never gets a connection; the client cannot authenticate', async () => {
    const { status, body } = await register({ jwks_uri: `https://127.0.0.1:${port}/jwks` });
    assert.equal(status, 201, JSON.stringify(body));
    const clientId = String(body.client_id);
    const { privateKey } = await generateKeyPair('ES256');
    const assertion = await new SignJWT({})
      .setProtectedHeader({ alg: 'ES256' })
      .setIssuer(clientId)
      .setSubject(clientId)
      .setAudience(as.issuer)
      .setJti(randomUUID())
      .setIssuedAt()
      .setExpirationTime('60s')
      .sign(privateKey);
    const before = connections;
    const response = await postForm(`${as.issuer}/request`, {
      client_assertion_type: JWT_BEARER,
      client_assertion: assertion,
      response_type: 'code',
      redirect_uri: 'http://127.0.0.1/callback',
      scope: 'stocks:read',
      code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
      code_challenge_method: 'S256',
    });
    assert.equal(response.status, 401, response.text);
    assert.equal(response.json.error, 'invalid_client');
    assert.equal(connections, before, 'the loopback address was never connected to');
    assert.ok(
      as.logs.some((line) => line.includes('outbound fetch refused') && line.includes('forbidden_address')),
    );
  });
});
