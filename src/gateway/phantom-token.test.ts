import assert from 'node:assert/strict';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { describe, test } from 'node:test';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, SignJWT } from 'jose';
import { tagToken, tokenTagKey } from '../shared/token-tag.ts';
import { createDpopProofVerifier } from './dpop-proof.ts';
import { createIntrospectionCache } from './introspection-cache.ts';
import { AuthorizationServerUnavailableError, type Introspection } from './introspection-client.ts';
import { createPhantomTokenTranslator, isOpaqueToken } from './phantom-token.ts';

const PHANTOM = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2ln';
const HTU = 'https://gateway.example/mcp';
const CONTEXT = { address: () => '127.0.0.1', htu: HTU };

function request(authorization?: string | string[], dpop?: string, method = 'POST') {
  const rawHeaders: string[] = [];
  for (const value of [authorization ?? []].flat()) rawHeaders.push('Authorization', value);
  if (dpop) rawHeaders.push('DPoP', dpop);
  const first = Array.isArray(authorization) ? authorization[0] : authorization;
  return {
    method,
    rawHeaders,
    headers: { ...(first === undefined ? {} : { authorization: first }), ...(dpop ? { dpop } : {}) },
  } as unknown as IncomingMessage;
}

/** A translator over a scripted introspection that records the tokens it was asked about. */
function translator(answer: (token: string) => Introspection) {
  const asked: string[] = [];
  const translate = createPhantomTokenTranslator(
    createIntrospectionCache({ maxSeconds: 30, maxEntries: 10 }),
    {
      introspect: async (token) => {
        asked.push(token);
        return answer(token);
      },
    },
    {
      dpop: {
        verifier: createDpopProofVerifier({
          algorithms: ['ES256'],
          maxAgeSeconds: 60,
          replayCacheMaxEntries: 1000,
        }),
        algorithms: ['ES256'],
      },
    },
  );
  return { translate, asked };
}

const exp = () => Math.floor(Date.now() / 1000) + 600;

async function dpopKey() {
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const jwk = await exportJWK(publicKey);
  return { privateKey, jwk, jkt: await calculateJwkThumbprint(jwk) };
}

async function proof(
  key: Awaited<ReturnType<typeof dpopKey>>,
  token: string,
  claims: Record<string, unknown> = {},
) {
  return new SignJWT({
    htm: 'POST',
    htu: HTU,
    jti: randomUUID(),
    iat: Math.floor(Date.now() / 1000),
    ath: createHash('sha256').update(token).digest('base64url'),
    ...claims,
  })
    .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: key.jwk })
    .sign(key.privateKey);
}

describe('phantom-token translation', () => {
  test('no Authorization: nothing to translate, nothing introspected', async () => {
    const { translate, asked } = translator(() => ({ active: false }));
    assert.deepEqual(await translate(request(), CONTEXT), {
      action: 'forward',
      authorization: undefined,
      bearer: 'none',
    });
    assert.deepEqual(asked, []);
  });

  test('an active opaque token becomes the phantom JWT', async () => {
    const { translate, asked } = translator(() => ({ active: true, jwt: PHANTOM, exp: exp() }));
    assert.deepEqual(await translate(request('Bearer opaque-abc_123'), CONTEXT), {
      action: 'forward',
      authorization: `Bearer ${PHANTOM}`,
      bearer: 'phantom',
      cache: 'miss',
    });
    const again = await translate(request('bearer opaque-abc_123'), CONTEXT);
    assert.equal(again.cache, 'hit');
    assert.deepEqual(asked, ['opaque-abc_123']);
  });

  test('an inactive opaque token is removed', async () => {
    const { translate } = translator(() => ({ active: false }));
    const result = await translate(request('Bearer unknown'), CONTEXT);
    assert.equal(result.action, 'forward');
    assert.equal(result.action === 'forward' && result.authorization, undefined);
    assert.equal(result.bearer, 'inactive');
  });

  test('JWTs, other schemes and malformed headers are removed without asking anyone', async () => {
    const { translate, asked } = translator(() => ({ active: true, jwt: PHANTOM, exp: exp() }));
    for (const header of [
      `Bearer ${PHANTOM}`,
      'Bearer a.b',
      'Basic dXNlcjpwYXNz',
      'Bearer',
      'Bearer two tokens',
      `Bearer ${'a'.repeat(2000)}`,
    ]) {
      assert.deepEqual(
        await translate(request(header), CONTEXT),
        { action: 'forward', authorization: undefined, bearer: 'refused' },
        header,
      );
    }
    assert.deepEqual(asked, []);
  });

  test('two Authorization headers are refused with invalid_request, nothing introspected', async () => {
    const { translate, asked } = translator(() => ({ active: true, jwt: PHANTOM, exp: exp() }));
    const result = await translate(request(['Bearer one', 'Bearer two']), CONTEXT);
    assert.equal(result.action, 'refuse');
    assert.equal(result.action === 'refuse' && result.status, 400);
    assert.equal(result.action === 'refuse' && result.error, 'invalid_request');
    assert.deepEqual(asked, []);
  });

  test('a DPoP-bound token sent as Bearer is refused (RFC 9449 §7.2)', async () => {
    const key = await dpopKey();
    const { translate } = translator(() => ({ active: true, jwt: PHANTOM, exp: exp(), jkt: key.jkt }));
    const result = await translate(request('Bearer bound-token'), CONTEXT);
    assert.equal(result.action, 'refuse');
    if (result.action !== 'refuse') return;
    assert.equal(result.status, 401);
    assert.equal(result.error, 'invalid_token');
    assert.match(result.headers['www-authenticate']!, /^DPoP error="invalid_token"/);
    assert.match(result.headers['www-authenticate']!, /algs="ES256"/);
  });

  test('a bound token with a good proof becomes the phantom JWT, as Bearer', async () => {
    const key = await dpopKey();
    const { translate } = translator(() => ({ active: true, jwt: PHANTOM, exp: exp(), jkt: key.jkt }));
    const result = await translate(request('DPoP bound-token', await proof(key, 'bound-token')), CONTEXT);
    assert.deepEqual(result, {
      action: 'forward',
      authorization: `Bearer ${PHANTOM}`,
      bearer: 'phantom',
      cache: 'miss',
    });
  });

  test('a proof by another key is invalid_dpop_proof; a bad proof is refused before any introspection', async () => {
    const key = await dpopKey();
    const other = await dpopKey();
    const { translate, asked } = translator(() => ({ active: true, jwt: PHANTOM, exp: exp(), jkt: key.jkt }));
    const wrongKey = await translate(request('DPoP bound-token', await proof(other, 'bound-token')), CONTEXT);
    assert.equal(wrongKey.action === 'refuse' && wrongKey.error, 'invalid_dpop_proof');
    asked.length = 0;
    for (const bad of [
      undefined,
      'not-a-jwt',
      await proof(key, 'another-token'),
      await proof(key, 'bound-token', { htu: 'https://evil.example/mcp' }),
      await proof(key, 'bound-token', { htm: 'GET' }),
      await proof(key, 'bound-token', { iat: Math.floor(Date.now() / 1000) - 3600 }),
    ]) {
      const result = await translate(request('DPoP bound-token', bad), CONTEXT);
      assert.equal(result.action, 'refuse', String(bad));
      if (result.action !== 'refuse') continue;
      assert.equal(result.status, 401);
      assert.equal(result.error, 'invalid_dpop_proof');
      assert.match(result.headers['www-authenticate']!, /^DPoP error="invalid_dpop_proof"/);
    }
    assert.deepEqual(asked, [], 'no introspection for a request whose proof fails');
  });

  test('the DPoP scheme with an unbound token is refused', async () => {
    const key = await dpopKey();
    const { translate } = translator(() => ({ active: true, jwt: PHANTOM, exp: exp() }));
    const result = await translate(request('DPoP plain-token', await proof(key, 'plain-token')), CONTEXT);
    assert.equal(result.action === 'refuse' && result.error, 'invalid_token');
  });

  test('an authorization server failure propagates: the caller fails closed', async () => {
    const { translate } = translator(() => {
      throw new AuthorizationServerUnavailableError('down');
    });
    await assert.rejects(translate(request('Bearer opaque'), CONTEXT), AuthorizationServerUnavailableError);
  });

  test('opaque means a single part', () => {
    assert.equal(isOpaqueToken('k3Jx_Z-abc'), true);
    assert.equal(isOpaqueToken('a.b.c'), false);
    assert.equal(isOpaqueToken('a.b.c.d.e'), false);
  });
});

describe('token tags (a flood of made-up tokens)', () => {
  const key = tokenTagKey(randomBytes(32));
  function tagged() {
    const asked: string[] = [];
    const cache = createIntrospectionCache({ maxSeconds: 30, maxEntries: 10 });
    const translate = createPhantomTokenTranslator(
      cache,
      {
        introspect: async (token) => {
          asked.push(token);
          return { active: true, jwt: PHANTOM, exp: exp() };
        },
      },
      { tokenTagKey: () => key },
    );
    return { translate, asked, cache };
  }

  test('a token without a valid tag is removed without an introspection; a tagged one is introspected', async () => {
    const { translate, asked, cache } = tagged();
    const issued = tagToken(randomBytes(32).toString('base64url'), key);
    const madeUp = randomBytes(32).toString('base64url');
    const otherKey = tagToken(randomBytes(32).toString('base64url'), tokenTagKey(randomBytes(32)));
    // The last character changed, always to a different one (a fixed 'A' left one tag in 64 valid).
    const altered = `${issued.slice(0, -1)}${issued.endsWith('A') ? 'B' : 'A'}`;
    for (const token of [madeUp, otherKey, altered]) {
      const result = await translate(request(`Bearer ${token}`), CONTEXT);
      assert.deepEqual(result, {
        action: 'forward',
        authorization: undefined,
        bearer: 'not-issued',
      });
    }
    assert.deepEqual(asked, [], 'nothing asked of the authorization server');
    assert.equal(cache.size, 0, 'and nothing cached: a flood of them takes no memory');
    assert.equal((await translate(request(`Bearer ${issued}`), CONTEXT)).bearer, 'phantom');
    assert.deepEqual(asked, [issued]);
  });

  test('until the key is known, every token is introspected', async () => {
    const asked: string[] = [];
    const translate = createPhantomTokenTranslator(
      createIntrospectionCache({ maxSeconds: 30, maxEntries: 10 }),
      {
        introspect: async (token) => {
          asked.push(token);
          return { active: false };
        },
      },
      { tokenTagKey: () => undefined },
    );
    await translate(request('Bearer no-key-yet-so-ask'), CONTEXT);
    assert.deepEqual(asked, ['no-key-yet-so-ask']);
  });
});
