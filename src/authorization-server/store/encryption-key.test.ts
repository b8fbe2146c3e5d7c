import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import { type LoadedConfig, parseConfig } from '../../shared/config/load.ts';
import { decodeEncryptionKey, storageEncryptionKey } from './encryption-key.ts';

const loaded = (storage: Record<string, unknown>): LoadedConfig => ({
  config: parseConfig({ storage }),
  dataDir: '/nonexistent',
  file: undefined,
});

describe('storage.encryptionKey', () => {
  test('32 bytes as base64, base64url or hex', () => {
    const key = randomBytes(32);
    assert.deepEqual(decodeEncryptionKey(key.toString('base64')), key);
    assert.deepEqual(decodeEncryptionKey(`${key.toString('base64url')}\n`), key);
    assert.deepEqual(decodeEncryptionKey(key.toString('hex')), key);
  });

  test('anything else is refused, saying how to make a key', () => {
    for (const bad of [randomBytes(16).toString('base64'), randomBytes(31).toString('hex'), 'x'.repeat(44)])
      assert.throws(() => decodeEncryptionKey(bad), /openssl rand -base64 32/);
  });

  test('a placeholder of the right length is refused too', () => {
    for (const bad of [
      Buffer.alloc(32).toString('base64'),
      'ab'.repeat(32),
      Buffer.alloc(32, 7).toString('hex'),
    ])
      assert.throws(() => decodeEncryptionKey(bad), /is not random .*openssl rand -base64 32/);
  });

  test('required (PostgreSQL), read from env:, never a literal', () => {
    assert.throws(
      () => storageEncryptionKey(loaded({})),
      /required with PostgreSQL.*openssl rand -base64 32/,
    );
    assert.throws(() => loaded({ encryptionKey: randomBytes(32).toString('base64') }), /env:NAME/);
    const key = randomBytes(32);
    process.env.GATEHOUSE_TEST_ENCRYPTION_KEY = key.toString('base64');
    try {
      assert.deepEqual(
        storageEncryptionKey(loaded({ encryptionKey: 'env:GATEHOUSE_TEST_ENCRYPTION_KEY' })),
        key,
      );
    } finally {
      delete process.env.GATEHOUSE_TEST_ENCRYPTION_KEY;
    }
  });
});
