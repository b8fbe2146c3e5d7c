import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { describe, test } from 'node:test';
import { createIntrospectionCache } from './introspection-cache.ts';
import { AuthorizationServerUnavailableError, type Introspection } from './introspection-client.ts';
import { createPhantomTokenTranslator, isOpaqueToken } from './phantom-token.ts';

const PHANTOM = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2ln';
const request = (authorization?: string) =>
  ({ headers: authorization === undefined ? {} : { authorization } }) as IncomingMessage;

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
  );
  return { translate, asked };
}

const exp = () => Math.floor(Date.now() / 1000) + 600;

describe('phantom-token translation', () => {
  test('no Authorization: nothing to translate, nothing introspected', async () => {
    const { translate, asked } = translator(() => ({ active: false }));
    assert.deepEqual(await translate(request()), { authorization: undefined, bearer: 'none' });
    assert.deepEqual(asked, []);
  });

  test('an active opaque token becomes the phantom JWT', async () => {
    const { translate, asked } = translator(() => ({ active: true, jwt: PHANTOM, exp: exp() }));
    assert.deepEqual(await translate(request('Bearer opaque-abc_123')), {
      authorization: `Bearer ${PHANTOM}`,
      bearer: 'phantom',
      cache: 'miss',
    });
    assert.equal((await translate(request('bearer opaque-abc_123'))).cache, 'hit');
    assert.deepEqual(asked, ['opaque-abc_123']);
  });

  test('an inactive opaque token is removed', async () => {
    const { translate } = translator(() => ({ active: false }));
    const result = await translate(request('Bearer unknown'));
    assert.equal(result.authorization, undefined);
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
      'DPoP opaque',
    ]) {
      assert.deepEqual(
        await translate(request(header)),
        { authorization: undefined, bearer: 'refused' },
        header,
      );
    }
    assert.deepEqual(asked, []);
  });

  test('an authorization server failure propagates: the caller fails closed', async () => {
    const { translate } = translator(() => {
      throw new AuthorizationServerUnavailableError('down');
    });
    await assert.rejects(translate(request('Bearer opaque')), AuthorizationServerUnavailableError);
  });

  test('opaque means a single part', () => {
    assert.equal(isOpaqueToken('k3Jx_Z-abc'), true);
    assert.equal(isOpaqueToken('a.b.c'), false);
    assert.equal(isOpaqueToken('a.b.c.d.e'), false);
  });
});
