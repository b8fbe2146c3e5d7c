/**
 * Upgrading a PostgreSQL deployment from a version that kept the admin directory in each data
 * directory's SQLite file: the first start on this version copies it into PostgreSQL before the
 * configuration file seeds the directory, so what administrators changed holds (a disabled client
 * stays disabled, a user they removed is not seeded back from the file), and a later start, or an
 * instance with another data directory, imports nothing over it.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { seedDirectory } from '../../src/authorization-server/admin/seed.ts';
import { createSqliteDirectory } from '../../src/authorization-server/admin/sqlite-directory.ts';
import { startAuthorizationServer } from '../../src/authorization-server/server.ts';
import { closeDatabase, openDatabase } from '../../src/authorization-server/store/sqlite-store.ts';
import { parseConfig } from '../../src/shared/config/load.ts';
import { createLogger } from '../../src/shared/logging.ts';
import {
  createTestDatabase,
  skipWithoutPostgres,
  type TestDatabase,
  testEncryptionKey,
} from '../helpers/postgres.ts';

const skipPostgres = await skipWithoutPostgres();

describe('upgrading a PostgreSQL deployment whose directory was in the data directory', {
  skip: skipPostgres,
}, () => {
  let database: TestDatabase;
  const dirs: string[] = [];
  const logs: string[] = [];
  const configFor = (dataDir: string, storage: boolean) =>
    parseConfig({
      dataDir,
      ...(storage ? { storage: { url: database.url, encryptionKey: testEncryptionKey() } } : {}),
      authorizationServer: { issuer: 'http://127.0.0.1:9000', listen: { host: '127.0.0.1', port: 0 } },
    });
  const startOn = (dataDir: string) =>
    startAuthorizationServer(
      { config: configFor(dataDir, true), dataDir, file: undefined },
      { logger: createLogger('authorization-server', { level: 'info', write: (line) => logs.push(line) }) },
    );
  const query = async (sql: string) => {
    const client = new pg.Client({ connectionString: database.url });
    await client.connect();
    try {
      return (await client.query(sql)).rows;
    } finally {
      await client.end();
    }
  };
  const fresh = () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'gatehouse-upgrade-'));
    dirs.push(dir);
    return dir;
  };

  before(async () => {
    database = await createTestDatabase();
  });
  after(async () => {
    await database?.drop();
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  test('the local directory is copied before the file seeds it; administrators’ changes hold', async () => {
    // What the earlier version left in the data directory: the file's users seeded, then an
    // administrator removed bob and disabled a client.
    const dataDir = fresh();
    const sqlite = openDatabase(dataDir);
    const local = createSqliteDirectory(sqlite);
    await seedDirectory(local, configFor(dataDir, false).authorizationServer);
    assert.ok(await local.users.get('bob@example.com'), 'the file seeds bob');
    await local.users.remove('bob@example.com');
    await local.seeds.markRemoved('user', 'bob@example.com');
    await local.clients.setDisabled('a-disabled-client', true);
    closeDatabase(sqlite);

    const server = await startOn(dataDir);
    await server.close();
    const users = (await query('SELECT email FROM directory_users ORDER BY email')).map((row) => row.email);
    assert.ok(users.includes('alice@example.com'));
    assert.ok(!users.includes('bob@example.com'), 'a user an administrator removed is not seeded back');
    assert.deepEqual(
      (await query('SELECT client_id FROM client_states')).map((row) => row.client_id),
      ['a-disabled-client'],
      'a disabled client stays disabled',
    );
    assert.ok(logs.some((line) => line.includes('was copied into PostgreSQL (an upgrade)')));
  });

  test('a second instance with its own data directory imports nothing over the shared directory', async () => {
    const other = fresh();
    const sqlite = openDatabase(other);
    const local = createSqliteDirectory(sqlite);
    await local.clients.setDisabled('another-client', true);
    closeDatabase(sqlite);
    const server = await startOn(other);
    await server.close();
    assert.deepEqual(
      (await query('SELECT client_id FROM client_states')).map((row) => row.client_id),
      ['a-disabled-client'],
      'only what was imported first',
    );
  });
});
