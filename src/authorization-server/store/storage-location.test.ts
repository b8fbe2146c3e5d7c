/** storage-location.ts: which store the configuration and the environment name, and bad URLs refused at start. */
import assert from 'node:assert/strict';
import { afterEach, describe, test } from 'node:test';
import { ConfigError, type LoadedConfig, parseConfig } from '../../shared/config/load.ts';
import { describeStorage, STORAGE_URL_VARIABLE, storageLocation } from './storage-location.ts';

function loaded(storage: Record<string, unknown> = {}): LoadedConfig {
  return { config: parseConfig({ storage }), dataDir: '/var/lib/gatehouse', file: undefined };
}

const DEFAULT_POOL = { max: 10, acquireTimeoutMs: 2000, statementTimeoutMs: 5000 };

describe('storageLocation', () => {
  afterEach(() => {
    delete process.env.GATEHOUSE_TEST_STORE_URL;
  });

  test('without a URL the store is SQLite in the data directory', () => {
    assert.deepEqual(storageLocation(loaded(), {}), { kind: 'sqlite', dataDir: '/var/lib/gatehouse' });
    // An empty variable is as good as none.
    assert.deepEqual(storageLocation(loaded(), { [STORAGE_URL_VARIABLE]: '' }), {
      kind: 'sqlite',
      dataDir: '/var/lib/gatehouse',
    });
  });

  test('storage.url names PostgreSQL, with the pool settings', () => {
    assert.deepEqual(
      storageLocation(loaded({ url: 'postgres://gh@db:5432/gatehouse', pool: { max: 3 } }), {}),
      {
        kind: 'postgres',
        url: 'postgres://gh@db:5432/gatehouse',
        pool: { ...DEFAULT_POOL, max: 3 },
      },
    );
  });

  test('GATEHOUSE_STORAGE_URL takes the place of storage.url', () => {
    const location = storageLocation(loaded({ url: 'postgres://gh@config-db/one' }), {
      GATEHOUSE_STORAGE_URL: 'postgresql://gh@env-db/two',
    });
    assert.deepEqual(location, { kind: 'postgres', url: 'postgresql://gh@env-db/two', pool: DEFAULT_POOL });
  });

  test('env:NAME is resolved', () => {
    process.env.GATEHOUSE_TEST_STORE_URL = 'postgres://gh:secret@db/gatehouse';
    assert.deepEqual(storageLocation(loaded({ url: 'env:GATEHOUSE_TEST_STORE_URL' }), {}), {
      kind: 'postgres',
      url: 'postgres://gh:secret@db/gatehouse',
      pool: DEFAULT_POOL,
    });
  });

  test('env:NAME of an unset variable is refused', () => {
    assert.throws(
      () => storageLocation(loaded({ url: 'env:GATEHOUSE_TEST_STORE_URL' }), {}),
      (error: unknown) => error instanceof ConfigError && /GATEHOUSE_TEST_STORE_URL/.test(error.message),
    );
  });

  test('an http:// URL is refused with a ConfigError naming the setting', () => {
    // Written in the file, the configuration schema already refuses it, naming the key.
    assert.throws(
      () => loaded({ url: 'http://db/gatehouse' }),
      (error: unknown) =>
        error instanceof ConfigError && /storage\.url: must be a postgres:\/\/ URL/.test(error.message),
    );
    // Behind env:NAME, only storageLocation sees the value.
    process.env.GATEHOUSE_TEST_STORE_URL = 'http://db/gatehouse';
    assert.throws(
      () => storageLocation(loaded({ url: 'env:GATEHOUSE_TEST_STORE_URL' }), {}),
      (error: unknown) =>
        error instanceof ConfigError && /^storage\.url must be a postgres:\/\/ URL/.test(error.message),
    );
    assert.throws(
      () => storageLocation(loaded(), { GATEHOUSE_STORAGE_URL: 'http://db/gatehouse' }),
      (error: unknown) =>
        error instanceof ConfigError &&
        /^GATEHOUSE_STORAGE_URL must be a postgres:\/\/ URL/.test(error.message),
    );
  });

  test('a URL without a database is refused', () => {
    for (const url of ['postgres://gh@db:5432', 'postgres://gh@db:5432/']) {
      assert.throws(
        () => storageLocation(loaded(), { GATEHOUSE_STORAGE_URL: url }),
        (error: unknown) =>
          error instanceof ConfigError && /^GATEHOUSE_STORAGE_URL names no database/.test(error.message),
        url,
      );
    }
  });

  test('something that is not a URL is refused, naming the setting', () => {
    assert.throws(
      () => storageLocation(loaded(), { GATEHOUSE_STORAGE_URL: 'not a url' }),
      (error: unknown) =>
        error instanceof ConfigError && /^GATEHOUSE_STORAGE_URL is not a URL/.test(error.message),
    );
  });
});

describe('describeStorage', () => {
  test('hides the password', () => {
    const text = describeStorage({
      kind: 'postgres',
      url: 'postgres://gh:hunter2@db:5432/gatehouse',
      pool: DEFAULT_POOL,
    });
    assert.equal(text, 'PostgreSQL at postgres://gh:***@db:5432/gatehouse');
    assert.equal(text.includes('hunter2'), false);
  });

  test('a URL without password and SQLite are shown as they are', () => {
    assert.equal(
      describeStorage({ kind: 'postgres', url: 'postgres://gh@db/gatehouse', pool: DEFAULT_POOL }),
      'PostgreSQL at postgres://gh@db/gatehouse',
    );
    assert.equal(describeStorage({ kind: 'sqlite', dataDir: '/d' }), 'SQLite in /d');
  });
});
