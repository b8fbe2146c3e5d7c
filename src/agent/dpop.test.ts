import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, test } from 'node:test';
import type {
  AuthorizationServerMetadata,
  FetchLike,
  OAuthProtectedResourceMetadata,
} from '@modelcontextprotocol/client';
import {
  calculateJwkThumbprint,
  decodeJwt,
  decodeProtectedHeader,
  importJWK,
  type JWK,
  jwtVerify,
} from 'jose';
import {
  createDpopKey,
  dpopChallenge,
  dpopSessionFor,
  isDpopBound,
  presentingDpop,
  proofAlgorithm,
} from './dpop.ts';

const AS = (algs?: string[]) =>
  ({
    issuer: 'https://auth.example.com',
    authorization_endpoint: 'https://auth.example.com/authorize',
    token_endpoint: 'https://auth.example.com/token',
    response_types_supported: ['code'],
    ...(algs ? { dpop_signing_alg_values_supported: algs } : {}),
  }) as AuthorizationServerMetadata;
const PRM = (extra: Record<string, unknown> = {}) =>
  ({ resource: 'https://mcp.example.com/mcp', ...extra }) as OAuthProtectedResourceMetadata;

describe('when the agent binds tokens with DPoP', () => {
  test('a DPoP challenge is found among several, with its algs', () => {
    assert.deepEqual(
      dpopChallenge('DPoP resource_metadata="https://x/.well-known/oauth-protected-resource"'),
      {},
    );
    assert.deepEqual(dpopChallenge('Bearer resource_metadata="https://x", DPoP algs="ES256 EdDSA"'), {
      algs: ['ES256', 'EdDSA'],
    });
    assert.deepEqual(dpopChallenge('dpop error="use_dpop_nonce"'), {});
    assert.equal(
      dpopChallenge('Bearer error="invalid_token", error_description="use_dpop_nonce"'),
      undefined,
    );
    assert.equal(dpopChallenge('Bearer resource_metadata="https://x"'), undefined);
    assert.equal(dpopChallenge(null), undefined);
  });

  test('only when the authorization server and the MCP server both take it, ES256 first', () => {
    const challenge = {};
    assert.equal(
      proofAlgorithm({ metadata: AS(['ES256']), resourceMetadata: PRM(), challenge: undefined }),
      undefined,
      'the MCP server said nothing about DPoP: a bound token would be refused there',
    );
    assert.equal(
      proofAlgorithm({ metadata: AS(), resourceMetadata: PRM(), challenge }),
      undefined,
      'the authorization server does not advertise DPoP',
    );
    assert.equal(
      proofAlgorithm({ metadata: AS(['EdDSA', 'ES256']), resourceMetadata: PRM(), challenge }),
      'ES256',
    );
    assert.equal(
      proofAlgorithm({ metadata: AS(['Ed25519', 'EdDSA']), resourceMetadata: PRM(), challenge }),
      'EdDSA',
    );
    assert.equal(
      proofAlgorithm({
        metadata: AS(['ES256', 'EdDSA']),
        resourceMetadata: PRM({ dpop_signing_alg_values_supported: ['EdDSA'] }),
        challenge: undefined,
      }),
      'EdDSA',
      'RFC 9728 §2: the resource metadata lists what the resource verifies',
    );
    assert.equal(
      proofAlgorithm({
        metadata: AS(['ES256']),
        resourceMetadata: PRM({ dpop_bound_access_tokens_required: true }),
        challenge: undefined,
      }),
      'ES256',
    );
    assert.equal(
      proofAlgorithm({ metadata: AS(['ES256']), resourceMetadata: PRM(), challenge: { algs: ['PS256'] } }),
      undefined,
      'no algorithm both take',
    );
    assert.equal(
      proofAlgorithm({ metadata: AS(['HS256', 'none']), resourceMetadata: PRM(), challenge }),
      undefined,
      'never a symmetric algorithm or none (RFC 9449 §11.6)',
    );
  });

  test('the token type decides the scheme, in any case', () => {
    assert.equal(isDpopBound({ token_type: 'DPoP' }), true);
    assert.equal(isDpopBound({ token_type: 'dpop' }), true);
    assert.equal(isDpopBound({ token_type: 'Bearer' }), false);
    assert.equal(isDpopBound(undefined), false);
  });
});

describe('the DPoP key and proofs', () => {
  test('a stored key signs proofs whose jwk header is its public part, with the thumbprint of it', async () => {
    for (const alg of ['ES256', 'EdDSA'] as const) {
      const stored = await createDpopKey(alg);
      assert.equal(typeof stored.private_jwk.d, 'string', 'the store keeps the private key');
      const session = await dpopSessionFor(JSON.parse(JSON.stringify(stored)));
      const proof = await session.buildProof({ htm: 'post', htu: 'https://auth.example.com/token?x=1#f' });
      const header = decodeProtectedHeader(proof);
      assert.equal(header.typ, 'dpop+jwt');
      assert.equal(header.alg, alg);
      const jwk = header.jwk as JWK;
      assert.equal(jwk.d, undefined, 'never the private key');
      assert.equal(await calculateJwkThumbprint(jwk), session.thumbprint);
      const { payload } = await jwtVerify(proof, await importJWK(jwk, alg));
      assert.equal(payload.htm, 'POST');
      assert.equal(payload.htu, 'https://auth.example.com/token', 'RFC 9449 §4.2: no query, no fragment');
      assert.equal(typeof payload.jti, 'string');
      assert.equal(typeof payload.iat, 'number');
      assert.equal(payload.ath, undefined, 'no token, no ath');
    }
  });

  test('MCP requests with a bound token: DPoP scheme, a fresh proof with ath, the nonce retry once', async () => {
    const session = await dpopSessionFor(await createDpopKey('ES256'));
    const seen: Headers[] = [];
    let answers = [
      new Response('{"error":"use_dpop_nonce"}', {
        status: 401,
        headers: { 'www-authenticate': 'DPoP error="use_dpop_nonce"', 'dpop-nonce': 'n-1' },
      }),
      new Response('{}', { status: 200, headers: { 'dpop-nonce': 'n-2' } }),
      new Response('{}', { status: 200 }),
    ];
    const base: FetchLike = async (_input, init) => {
      seen.push(new Headers(init?.headers));
      const [next, ...rest] = answers;
      answers = rest;
      return next!;
    };
    const token = 'opaque-access-token';
    const wrapped = presentingDpop(base, () => ({ session, token }));
    const url = new URL('https://mcp.example.com/mcp?session=1');
    const init = { method: 'POST', headers: { authorization: `Bearer ${token}` }, body: '{}' };
    assert.equal((await wrapped(url, init)).status, 200, 'retried once with the nonce');
    await wrapped(url, init);
    assert.equal(seen.length, 3);
    const proofs = seen.map((headers) => {
      assert.equal(headers.get('authorization'), `DPoP ${token}`, 'never Bearer');
      return decodeJwt(headers.get('dpop')!);
    });
    const ath = createHash('sha256').update(token).digest('base64url');
    for (const proof of proofs) {
      assert.equal(proof.ath, ath);
      assert.equal(proof.htu, 'https://mcp.example.com/mcp');
      assert.equal(proof.htm, 'POST');
    }
    assert.equal(proofs[0]!.nonce, undefined);
    assert.equal(proofs[1]!.nonce, 'n-1', 'the retry carries the nonce of the challenge');
    assert.equal(proofs[2]!.nonce, 'n-2', 'the latest nonce the server sent, on any response');
    assert.equal(new Set(proofs.map((proof) => proof.jti)).size, 3, 'a new jti for every proof');
  });

  test('a Bearer token passes untouched', async () => {
    const seen: Headers[] = [];
    const base: FetchLike = async (_input, init) => {
      seen.push(new Headers(init?.headers));
      return new Response('{}');
    };
    await presentingDpop(base, () => undefined)('https://mcp.example.com/mcp', {
      method: 'POST',
      headers: { authorization: 'Bearer plain' },
    });
    assert.equal(seen[0]!.get('authorization'), 'Bearer plain');
    assert.equal(seen[0]!.get('dpop'), null);
  });
});
