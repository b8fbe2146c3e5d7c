/**
 * Attacks through Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document-02
 * §3, §4.1, §5, §8.6, §8.7): plain http, a document claiming another client_id, special-use
 * addresses in every notation (SSRF), redirects, oversized and slow documents, shared-secret
 * authentication, and a `jwks_uri` pointing inside. Where the attack is SSRF, a connection trap
 * proves the server never connected, not only that it answered an error.
 *
 * Already covered elsewhere and not repeated: a client_id that differs from the document URL or
 * names another path; client_secret_basic, client_secret_post and client_secret in the document; a
 * Content-Length over maxBytes; a 302; a body that is not JSON; the failure backoff; a loopback http
 * client_id without the development switch; https://10.0.0.1 and https://169.254.169.254
 * (test/authorization-server/clients.test.ts, src/.../client-metadata-document.test.ts).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { generateKeyPair } from 'jose';
import type { TestAuthorizationServer } from '../helpers/authorization-server.ts';
import { basic } from '../helpers/oauth.ts';
import { declareLeakCheck, SecretLedger } from '../helpers/secret-leaks.ts';
import {
  assertErrorPage,
  assertOAuthError,
  authorizationRequest,
  clientAssertion,
  codeRequest,
  type Json,
  JWT_BEARER,
  post,
  startAttackServer,
} from './support/authorization-server.ts';
import {
  type ConnectionTrap,
  type DocumentServer,
  specialUseInterfaceAddresses,
  startConnectionTrap,
  startDocumentServer,
} from './support/network.ts';

const REDIRECT = 'http://127.0.0.1/callback';
const ledger = new SecretLedger();
const inside = specialUseInterfaceAddresses();
const insideAddresses = [...inside.ipv4, ...inside.ipv6];
const hostOf = (address: string) => (address.includes(':') ? `[${address}]` : address);

let docs: DocumentServer;
let trap: ConnectionTrap;
/** The default: no development switch, so only https documents on public addresses. */
let strict: TestAuthorizationServer;
/** The development switch for loopback http documents. */
let dev: TestAuthorizationServer;
/** The same with a short deadline, for the slow documents. */
let hasty: TestAuthorizationServer;

before(async () => {
  docs = await startDocumentServer();
  trap = await startConnectionTrap(['127.0.0.1', '::1', ...insideAddresses]);
  strict = await startAttackServer(ledger);
  dev = await startAttackServer(ledger, { clientIdMetadataDocuments: { allowLoopbackHttp: true } });
  hasty = await startAttackServer(ledger, {
    clientIdMetadataDocuments: { allowLoopbackHttp: true, timeoutMs: 400 },
  });
});
after(async () => {
  await strict.close();
  await dev.close();
  await hasty.close();
  await docs.close();
  await trap.close();
});

const documentFor = (clientId: string, extra: Json = {}): Json => ({
  client_id: clientId,
  client_name: 'Document agent',
  redirect_uris: [REDIRECT],
  token_endpoint_auth_method: 'none',
  ...extra,
});

/** An authorization request naming `clientId`; it must die on an error page. */
async function assertRefusedClient(as: TestAuthorizationServer, clientId: string) {
  const response = await authorizationRequest(as.issuer, codeRequest(clientId, REDIRECT).params);
  assertErrorPage(response, 'invalid_client');
  return response;
}

/** The reason the server's audit gave for refusing a document client. */
const auditReason = (as: TestAuthorizationServer, clientId: string) =>
  String(as.audit('client.metadata_document').findLast((record) => record.client_id === clientId)?.reason);

let paths = 0;
/** A fresh document path on the document server, and its client_id. */
function fresh(name: string) {
  paths += 1;
  const path = `/${name}-${paths}/client.json`;
  return { path, clientId: docs.url(path) };
}

test('control: a valid loopback document under the development switch goes on to sign-in', async () => {
  const { path, clientId } = fresh('valid');
  docs.json(path, documentFor(clientId));
  const response = await authorizationRequest(dev.issuer, codeRequest(clientId, REDIRECT).params);
  assert.equal(response.status, 303, response.text.slice(0, 200));
  assert.match(response.location?.pathname ?? '', /^\/interaction\//);
});

describe('special-use addresses in every notation (no development switch)', () => {
  const P = () => trap.port;
  /**
   * `vetted`: a canonical URL, so the server resolves it and must refuse the address before any
   * connection; `not a document URL`: a spelling the URL parser would rewrite, refused unfetched.
   */
  type Refusal = 'vetted' | 'not a document URL';
  const notations: Array<[string, () => string, Refusal]> = [
    ['dotted loopback', () => `https://127.0.0.1:${P()}/c.json`, 'vetted'],
    ['hexadecimal', () => `https://0x7f000001:${P()}/c.json`, 'not a document URL'],
    ['one decimal number', () => `https://2130706433:${P()}/c.json`, 'not a document URL'],
    ['octal', () => `https://017700000001:${P()}/c.json`, 'not a document URL'],
    ['shortened (127.1)', () => `https://127.1:${P()}/c.json`, 'not a document URL'],
    ['with a trailing dot', () => `https://127.0.0.1.:${P()}/c.json`, 'not a document URL'],
    ['percent-encoded', () => `https://%31%32%37.0.0.1:${P()}/c.json`, 'not a document URL'],
    ['unspecified 0.0.0.0', () => `https://0.0.0.0:${P()}/c.json`, 'vetted'],
    ['IPv6 loopback', () => `https://[::1]:${P()}/c.json`, 'vetted'],
    ['IPv6 loopback written out', () => `https://[0:0:0:0:0:0:0:1]:${P()}/c.json`, 'not a document URL'],
    ['IPv4-mapped IPv6 (dotted)', () => `https://[::ffff:127.0.0.1]:${P()}/c.json`, 'not a document URL'],
    ['IPv4-mapped IPv6 (hex)', () => `https://[::ffff:7f00:1]:${P()}/c.json`, 'vetted'],
    ['IPv4-compatible IPv6', () => `https://[::7f00:1]:${P()}/c.json`, 'vetted'],
    ['IPv6 unspecified', () => `https://[::]:${P()}/c.json`, 'vetted'],
    ['NAT64 of 127.0.0.1', () => `https://[64:ff9b::7f00:1]:${P()}/c.json`, 'vetted'],
    ['6to4 of 127.0.0.1', () => `https://[2002:7f00:1::]:${P()}/c.json`, 'vetted'],
    ['IPv6 link-local', () => `https://[fe80::1]:${P()}/c.json`, 'vetted'],
    ['carrier-grade NAT', () => `https://100.64.0.1:${P()}/c.json`, 'vetted'],
    ['the name localhost', () => `https://localhost:${P()}/c.json`, 'vetted'],
    ...insideAddresses.map(
      (address) =>
        [
          `this machine's private address ${address}`,
          () => `https://${hostOf(address)}:${P()}/c.json`,
          'vetted',
        ] as [string, () => string, Refusal],
    ),
  ];
  /** The resolver's log record for a refused document URL (it has none for what it never fetched). */
  const rejection = (clientId: string) =>
    strict.logs
      .map((line) => JSON.parse(line) as Json)
      .find(
        (record) => record.message === 'client metadata document rejected' && record.client_id === clientId,
      );
  for (const [name, url, refusal] of notations) {
    test(`${name}: invalid_client, and nothing connects (${refusal})`, async () => {
      const before = trap.total();
      await assertRefusedClient(strict, url());
      assert.equal(trap.total(), before, `the server connected for ${url()}`);
      if (refusal === 'vetted') assert.equal(rejection(url())?.reason, 'forbidden_address');
      else assert.equal(rejection(url()), undefined, 'never resolved');
    });
  }
});

describe('plain http', () => {
  test('an http document on a private address, without the switch: invalid_client, nothing connects', async () => {
    for (const address of ['127.0.0.1', ...insideAddresses]) {
      const before = trap.total();
      await assertRefusedClient(strict, `http://${hostOf(address)}:${trap.port}/c.json`);
      assert.equal(trap.total(), before, address);
    }
  });

  test('an http document on a non-loopback address, even with the switch: invalid_client, nothing connects', async () => {
    for (const address of insideAddresses) {
      const before = trap.total();
      await assertRefusedClient(dev, `http://${hostOf(address)}:${trap.port}/c.json`);
      assert.equal(trap.total(), before, address);
    }
    await assertRefusedClient(dev, 'http://docs.example/client.json');
  });
});

describe('a document claiming another client_id', () => {
  const claims: Array<[string, (clientId: string) => unknown]> = [
    ['a trailing slash', (clientId) => `${clientId}/`],
    ['an upper-case scheme and host', (clientId) => clientId.replace('http://127.0.0.1', 'HTTP://127.0.0.1')],
    ['a percent-encoded path', (clientId) => clientId.replace('client.json', 'client%2Ejson')],
    ['the URL inside an array', (clientId) => [clientId]],
    ['no client_id at all', () => undefined],
  ];
  for (const [name, claim] of claims) {
    test(`${name}: invalid_client, the audit says it does not match`, async () => {
      const { path, clientId } = fresh('mismatch');
      docs.json(path, documentFor(clientId, { client_id: claim(clientId) }));
      await assertRefusedClient(dev, clientId);
      assert.match(auditReason(dev, clientId), /does not match the document URL/);
    });
  }
});

describe('redirects are not followed', () => {
  for (const status of [301, 303, 307, 308]) {
    test(`a ${status} to a valid document: invalid_client, the target is never fetched`, async () => {
      const { path, clientId } = fresh(`redirect-${status}`);
      const target = fresh('target');
      docs.json(target.path, documentFor(clientId));
      docs.route(path, (_request, response) =>
        response.writeHead(status, { location: target.clientId }).end(),
      );
      await assertRefusedClient(dev, clientId);
      assert.equal(docs.hits(path), 1);
      assert.equal(docs.hits(target.path), 0);
      assert.match(auditReason(dev, clientId), new RegExp(`HTTP ${status} \\(redirects are not followed\\)`));
    });
  }

  test('a redirect to an internal address: invalid_client, nothing connects there', async () => {
    const { path, clientId } = fresh('redirect-inside');
    const before = trap.total();
    docs.route(path, (_request, response) =>
      response
        .writeHead(302, {
          location: `http://${hostOf(insideAddresses[0] ?? '127.0.0.1')}:${trap.port}/c.json`,
        })
        .end(),
    );
    await assertRefusedClient(dev, clientId);
    assert.equal(trap.total(), before);
  });
});

describe('size', () => {
  test('an endless chunked body (no Content-Length): invalid_client, and the server stops reading', async () => {
    const { path, clientId } = fresh('endless');
    docs.route(path, (_request, response) => {
      response.writeHead(200, { 'content-type': 'application/json' });
      const chunk = `{"client_id":"${clientId}","padding":"${'x'.repeat(1000)}`;
      const pump = () => {
        while (!response.destroyed && response.write(chunk)) {
          if (response.writableLength > 1_000_000) break;
        }
        if (!response.destroyed) setTimeout(pump, 5);
      };
      pump();
    });
    await assertRefusedClient(dev, clientId);
    assert.match(auditReason(dev, clientId), /exceeds 5120 bytes/);
    assert.ok(await docs.whenAbandoned(path), 'the server hung up instead of reading on');
  });

  test('a small gzip-encoded body that would inflate: invalid_client, not decompressed', async () => {
    const { path, clientId } = fresh('gzip');
    const body = gzipSync(JSON.stringify(documentFor(clientId, { padding: 'x'.repeat(100_000) })));
    assert.ok(body.length < 5120, 'small on the wire');
    docs.route(path, (_request, response) =>
      response.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip' }).end(body),
    );
    await assertRefusedClient(dev, clientId);
    assert.match(auditReason(dev, clientId), /content-encoded/);
  });
});

describe('slowness', () => {
  test('a server that accepts and never answers: invalid_client within the deadline, the connection dropped', async () => {
    const { path, clientId } = fresh('silent');
    docs.route(path, () => {
      // Never answers.
    });
    await assertRefusedClient(hasty, clientId);
    assert.ok(await docs.whenAbandoned(path), 'the server gave up on the connection');
  });

  test('a body trickled a byte at a time: invalid_client, the connection dropped', async () => {
    const { path, clientId } = fresh('trickle');
    docs.route(path, (_request, response) => {
      response.writeHead(200, { 'content-type': 'application/json' });
      const text = JSON.stringify(documentFor(clientId));
      let index = 0;
      const timer = setInterval(() => {
        if (response.destroyed || index >= text.length) {
          clearInterval(timer);
          if (!response.destroyed) response.end();
          return;
        }
        response.write(text[index]!);
        index += 1;
      }, 50);
    });
    await assertRefusedClient(hasty, clientId);
    assert.ok(await docs.whenAbandoned(path), 'the server gave up on the connection');
  });
});

describe('shared-secret client authentication', () => {
  test('client_secret_jwt in the document: invalid_client', async () => {
    const { path, clientId } = fresh('secret-jwt');
    docs.json(path, documentFor(clientId, { token_endpoint_auth_method: 'client_secret_jwt' }));
    await assertRefusedClient(dev, clientId);
    assert.match(auditReason(dev, clientId), /shared-secret/);
  });

  test('client_secret_expires_at in the document: invalid_client', async () => {
    const { path, clientId } = fresh('secret-expiry');
    docs.json(path, documentFor(clientId, { client_secret_expires_at: 0 }));
    await assertRefusedClient(dev, clientId);
  });

  for (const [name, key] of [
    ['a symmetric (oct) key', { kty: 'oct', k: 'c2VjcmV0LXNoYXJlZC13aXRoLWV2ZXJ5b25l' }],
    ['a private EC key', { kty: 'EC', crv: 'P-256', x: 'x', y: 'y', d: 'private-part' }],
  ] as const) {
    test(`${name} in the document's jwks: invalid_client`, async () => {
      const { path, clientId } = fresh('jwks-secret');
      docs.json(
        path,
        documentFor(clientId, { token_endpoint_auth_method: 'private_key_jwt', jwks: { keys: [key] } }),
      );
      await assertRefusedClient(dev, clientId);
      assert.match(auditReason(dev, clientId), /public keys only/);
    });
  }

  test('a document client presenting a client secret at the token endpoint: invalid_client (401)', async () => {
    const { path, clientId } = fresh('public');
    docs.json(path, documentFor(clientId));
    const secret = 'a-secret-nobody-agreed-on-0123456789';
    ledger.remember(secret);
    const response = await post(
      ledger,
      `${dev.issuer}/token`,
      { grant_type: 'authorization_code', code: 'no-such-code-0123456789abcdef', redirect_uri: REDIRECT },
      { authorization: basic(clientId, secret) },
    );
    assertOAuthError(response, 401, 'invalid_client');
  });
});

describe('jwks_uri pointing inside', () => {
  for (const address of insideAddresses) {
    test(`an https jwks_uri on this machine's private address ${address}: invalid_client, nothing connects`, async () => {
      const { path, clientId } = fresh('jwks-uri');
      docs.json(
        path,
        documentFor(clientId, {
          token_endpoint_auth_method: 'private_key_jwt',
          jwks_uri: `https://${hostOf(address)}:${trap.port}/jwks`,
        }),
      );
      const { privateKey } = await generateKeyPair('ES256');
      const assertion = await clientAssertion(
        ledger,
        { key: privateKey, kid: 'k' },
        { clientId, audience: dev.issuer },
      );
      const before = trap.connections.get(address) ?? 0;
      const response = await post(ledger, `${dev.issuer}/token`, {
        grant_type: 'authorization_code',
        code: 'no-such-code-0123456789abcdef',
        redirect_uri: REDIRECT,
        client_id: clientId,
        client_assertion_type: JWT_BEARER,
        client_assertion: assertion,
      });
      assertOAuthError(response, 401, 'invalid_client');
      assert.equal(
        trap.connections.get(address) ?? 0,
        before,
        `the server connected to ${address}:${trap.port}`,
      );
    });
  }
});

declareLeakCheck(ledger, { minimumSecrets: 3, oneTimeCodes: false });
