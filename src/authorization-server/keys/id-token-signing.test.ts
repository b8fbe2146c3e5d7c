/**
 * The ID-token slots in a real oidc-provider keystore: what it selects to sign and to verify as the
 * ring changes under it. (The keystore is reached through oidc-provider's internals, which the
 * server itself never does: the end-to-end proof is test/authorization-server/key-rotation.test.ts.)
 */
import assert from 'node:assert/strict';
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { describe, test } from 'node:test';
import { compactVerify, decodeProtectedHeader, SignJWT } from 'jose';
import Provider from 'oidc-provider';
import {
  type IdTokenKey,
  idTokenKeySlots,
  idTokenSlotCount,
  MAX_ID_TOKEN_SLOTS,
} from './id-token-signing.ts';
import { generateSigningKey } from './signing-key.ts';

// oidc-provider's internals, untyped: its JWT helpers (what IdToken signs and validates with) and
// the private state that holds its keystore.
const internals = (module: string) => import(`oidc-provider/lib/helpers/${module}.js`);
const jwt = (await internals('jwt')) as {
  sign(payload: object, key: unknown, alg: string, options: { fields: { kid: string } }): Promise<string>;
  verify(token: string, keystore: Keystore, options: Record<string, unknown>): Promise<unknown>;
};
const { default: instance } = (await internals('weak_cache')) as {
  default: (provider: Provider) => { keystore: Keystore; configuration: Record<string, unknown> };
};
const providerSign = jwt.sign;
const providerVerify = jwt.verify;

interface Selectable {
  kid: string;
  kty: string;
  keyObject(): unknown;
}
interface Keystore {
  selectForSign(options: { alg: string; kid?: string }): Selectable[];
  selectForVerify(options: { alg: string; kid?: string }): Selectable[];
}

async function idTokenKey(): Promise<IdTokenKey> {
  const jwk = await generateSigningKey('RS256');
  const privateKey = createPrivateKey({ key: jwk as never, format: 'jwk' });
  return { kid: jwk.kid!, n: jwk.n!, e: jwk.e!, privateKey, publicKey: createPublicKey(privateKey) };
}

/** A provider on `slots` slots over a ring the test changes, as the server builds it. */
function providerOver(ring: { keys: IdTokenKey[] }, count: number) {
  const slots = idTokenKeySlots(() => ring.keys, count);
  const provider = new Provider('https://as.example', {
    jwks: { keys: [...slots.keys] },
    features: {
      devInteractions: { enabled: false },
      externalSigningSupport: { enabled: true, ack: 'experimental-01' },
    },
  });
  slots.registered();
  return { provider, keystore: instance(provider).keystore };
}

const kids = (keys: Selectable[]) => keys.map((key) => key.kid);

describe('ID-token key slots', () => {
  test('the current key signs; a rotation switches the signer without a new provider', async () => {
    const [a, b] = [await idTokenKey(), await idTokenKey()];
    const ring = { keys: [a] };
    const { keystore } = providerOver(ring, 4);
    assert.deepEqual(
      kids(keystore.selectForSign({ alg: 'RS256' })),
      [a.kid],
      'unused slots are no candidates',
    );

    const signWithFirst = async () => {
      const [key] = keystore.selectForSign({ alg: 'RS256' });
      // As lib/models/id_token.js signs: the first candidate, its kid in the header.
      return providerSign({ sub: 'u' }, key, 'RS256', { fields: { kid: key!.kid } }) as Promise<string>;
    };
    const before = await signWithFirst();
    assert.equal(decodeProtectedHeader(before).kid, a.kid);
    await compactVerify(before, a.publicKey);

    // The rotation: b current, a retired (still in its slot, after the current one).
    ring.keys = [b, a];
    const after = await signWithFirst();
    assert.equal(decodeProtectedHeader(after).kid, b.kid, 'signed with the new current key');
    await compactVerify(after, b.publicKey);
    await assert.rejects(compactVerify(after, a.publicKey));
  });

  test('verification finds the current and the retired keys by kid, and nothing else', async () => {
    const [a, b, next] = [await idTokenKey(), await idTokenKey(), await idTokenKey()];
    const ring = { keys: [b, a] };
    const { keystore } = providerOver(ring, 4);
    for (const key of [a, b]) {
      const found = keystore.selectForVerify({ alg: 'RS256', kid: key.kid });
      assert.deepEqual(kids(found), [key.kid]);
      assert.equal(found[0]!.keyObject(), key.publicKey);
    }
    // The next key (no slot), an unused slot's own kid, another algorithm: no key.
    assert.deepEqual(keystore.selectForVerify({ alg: 'RS256', kid: next.kid }), []);
    for (let slot = 0; slot < 4; slot++)
      assert.deepEqual(
        keystore.selectForVerify({ alg: 'RS256', kid: `gatehouse-unused-id-token-key-slot-${slot}` }),
        [],
      );
    assert.deepEqual(keystore.selectForVerify({ alg: 'PS256', kid: a.kid }), []);
    assert.deepEqual(keystore.selectForSign({ alg: 'ES256' }), []);

    // oidc-provider's own verify (what IdToken.validate runs for an id_token_hint).
    const hintByA = await new SignJWT({ sub: 'u', aud: 'c', iss: 'https://as.example' })
      .setProtectedHeader({ alg: 'RS256', kid: a.kid })
      .sign(a.privateKey);
    await providerVerify(hintByA, keystore, {
      algorithm: 'RS256',
      audience: 'c',
      issuer: 'https://as.example',
    });
    // Once a has left the ring (past its retireAt), its tokens no longer verify.
    ring.keys = [b];
    await assert.rejects(providerVerify(hintByA, keystore, { algorithm: 'RS256' }), {
      name: 'JWKSNoMatchingKey',
    });
  });

  test('sign() signs with the key the header names, so the kid and the signature always agree', async () => {
    const [a, b] = [await idTokenKey(), await idTokenKey()];
    const ring = { keys: [a] };
    const { keystore } = providerOver(ring, 2);
    const [slot] = keystore.selectForSign({ alg: 'RS256' });
    const kid = slot!.kid;
    // A rotation lands between selecting the key and signing.
    ring.keys = [b, a];
    const token = await providerSign({ sub: 'u' }, slot, 'RS256', { fields: { kid } });
    assert.equal(decodeProtectedHeader(token).kid, a.kid);
    await compactVerify(token, a.publicKey);
    // A kid the ring does not hold is never signed for.
    ring.keys = [b];
    await assert.rejects(
      providerSign({ sub: 'u' }, slot, 'RS256', { fields: { kid: a.kid } }),
      /no ID-token key/,
    );
  });

  test('registration: every slot, used or not, registers with its own kid; the algorithms are RS256 only', async () => {
    const ring = { keys: [await idTokenKey()] };
    const { provider } = providerOver(ring, 5);
    assert.deepEqual(instance(provider).configuration.idTokenSigningAlgValues, ['RS256']);
  });

  test('the slot count covers every key retired within retireAfter, capped', () => {
    // Defaults: 3660 s after retirement, rotations at least 3601 s apart: two retired keys at most.
    assert.equal(idTokenSlotCount(3660, 3600), 3);
    assert.equal(idTokenSlotCount(100, 9), 1 + 11);
    assert.equal(idTokenSlotCount(3660, 1), MAX_ID_TOKEN_SLOTS);
  });
});
