import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import { SealedBoxError, sealedBox } from './sealed-box.ts';

describe('the sealed box', () => {
  const box = sealedBox(randomBytes(32));

  test('opens what it sealed, for the same row', () => {
    const sealed = box.seal('signing_keys:main', '{"keys":[]}');
    assert.equal(box.open('signing_keys:main', sealed), '{"keys":[]}');
    assert.ok(!sealed.includes(Buffer.from('keys')), 'the plaintext is not in the sealed value');
  });

  test('a random IV per seal: the same value never seals the same way twice', () => {
    assert.notDeepEqual(box.seal('a', 'same'), box.seal('a', 'same'));
  });

  test('refuses a value moved to another row', () => {
    const sealed = box.seal('generated_secrets:secrets/a.secret', 'value-a');
    assert.throws(() => box.open('generated_secrets:secrets/b.secret', sealed), SealedBoxError);
  });

  test('refuses any byte changed: format, key id, IV, ciphertext, tag', () => {
    const sealed = box.seal('row', 'a secret worth keeping');
    for (const at of [0, 1, 9, 21, 25, sealed.length - 1]) {
      const tampered = Buffer.from(sealed);
      tampered[at]! ^= 0x01;
      assert.throws(() => box.open('row', tampered), SealedBoxError, `byte ${at}`);
    }
    assert.throws(() => box.open('row', sealed.subarray(0, sealed.length - 1)), SealedBoxError);
    assert.throws(() => box.open('row', Buffer.alloc(10)), SealedBoxError);
  });

  test('refuses a value sealed with another key, and says so', () => {
    const other = sealedBox(randomBytes(32));
    assert.notEqual(other.keyId, box.keyId);
    assert.throws(
      () => other.open('row', box.seal('row', 'x')),
      (error: unknown) =>
        error instanceof SealedBoxError && /another storage\.encryptionKey/.test(error.message),
    );
  });

  test('takes 32-byte keys only', () => {
    assert.throws(() => sealedBox(randomBytes(16)));
  });
});
