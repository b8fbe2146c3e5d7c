/**
 * Generated secrets and the subject key on PostgreSQL (generated-secrets.ts,
 * shared-generated-files.ts, login/subject-key.ts): the first instance's files are imported, the
 * others get the database's value (written to their data directory when it has readers there), a
 * data directory whose file differs is refused, instances generating at once agree, and a lost
 * subject key is not replaced silently.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  createTestDatabase,
  skipWithoutPostgres,
  type TestDatabase,
} from '../../../test/helpers/postgres.ts';
import { ConfigError } from '../../shared/config/load.ts';
import { postgresAccounts } from '../login/postgres-accounts.ts';
import { loadSubjectKey, SUBJECT_KEY_FILE } from '../login/subject-key.ts';
import { type GeneratedSecrets, postgresGeneratedSecrets } from './generated-secrets.ts';
import { connectPostgres, type Postgres } from './postgres/connection.ts';
import { migrate } from './postgres/migrations.ts';
import { POSTGRES_MIGRATIONS } from './postgres/schema.ts';
import { SealedBoxError, sealedBox } from './sealed-box.ts';
import { shareGeneratedFiles } from './shared-generated-files.ts';
import { closeDatabase, openDatabase } from './sqlite-store.ts';

// Before any test is declared: the runner starts the file's tests once its first ones are in.
const skipPostgres = await skipWithoutPostgres();
const POOL = { max: 4, acquireTimeoutMs: 2000, statementTimeoutMs: 5000 };
const NAME = 'secrets/gatehouse-gateway.secret';

describe('generated secrets on PostgreSQL', { skip: skipPostgres }, () => {
  let database: TestDatabase;
  const pools: Postgres[] = [];
  const root = mkdtempSync(path.join(tmpdir(), 'gatehouse-generated-'));
  let dirs = 0;
  const freshDir = () => path.join(root, `d${++dirs}`);
  const box = sealedBox(randomBytes(32));
  const secretsOn = (): GeneratedSecrets => {
    const pool = connectPostgres(database.url, POOL);
    pools.push(pool);
    return postgresGeneratedSecrets(pool, box);
  };
  const share = (secrets: GeneratedSecrets, dataDir: string, name = NAME) =>
    shareGeneratedFiles(secrets, dataDir, {
      name,
      files: [{ path: name, mode: 0o600 }],
      generate: async () => [randomBytes(32).toString('base64url')],
      mirror: true,
    });
  const writeLocal = (dataDir: string, name: string, value: string) => {
    mkdirSync(path.dirname(path.join(dataDir, name)), { recursive: true });
    writeFileSync(path.join(dataDir, name), `${value}\n`);
  };

  before(async () => {
    database = await createTestDatabase();
    const first = connectPostgres(database.url, POOL);
    pools.push(first);
    await migrate(first, POSTGRES_MIGRATIONS);
  });
  after(async () => {
    for (const pool of pools) await pool.close();
    await database?.drop();
    rmSync(root, { recursive: true, force: true });
  });

  test("the first instance's file is imported; the others get it in their data directory, 0600", async () => {
    const a = freshDir();
    writeLocal(a, NAME, 'the-secret-of-the-first-instance-0123456789');
    assert.deepEqual(await share(secretsOn(), a), ['the-secret-of-the-first-instance-0123456789']);
    const b = freshDir();
    assert.deepEqual(await share(secretsOn(), b), ['the-secret-of-the-first-instance-0123456789']);
    assert.equal(readFileSync(path.join(b, NAME), 'utf8'), 'the-secret-of-the-first-instance-0123456789\n');
    assert.equal(statSync(path.join(b, NAME)).mode & 0o777, 0o600);
    const [row] = await pools[0]!.query<{ sealed: Buffer }>(
      'SELECT sealed FROM generated_secrets WHERE name = $1',
      [NAME],
    );
    assert.ok(!row!.sealed.includes(Buffer.from('the-secret-of-the-first')), 'sealed, not in the clear');
  });

  test('a data directory whose file differs from the database is refused (two deployments mixed)', async () => {
    const c = freshDir();
    writeLocal(c, NAME, 'a-secret-of-another-deployment-0123456789');
    await assert.rejects(share(secretsOn(), c), (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.match(error.message, /differs from the secrets\/gatehouse-gateway\.secret kept in PostgreSQL/);
      assert.ok(!error.message.includes('another-deployment'), 'the values are not in the message');
      return true;
    });
    assert.equal(readFileSync(path.join(c, NAME), 'utf8'), 'a-secret-of-another-deployment-0123456789\n');
  });

  test('instances generating at once agree on one value', async () => {
    const values = await Promise.all(
      Array.from({ length: 4 }, () => share(secretsOn(), freshDir(), 'secrets/new.secret')),
    );
    assert.equal(new Set(values.map(([value]) => value)).size, 1);
  });

  test('instances starting at once on one data directory both start, with one file', async () => {
    const shared = freshDir();
    const values = await Promise.all(
      Array.from({ length: 3 }, () => share(secretsOn(), shared, 'secrets/together.secret')),
    );
    assert.equal(new Set(values.map(([value]) => value)).size, 1);
    assert.equal(readFileSync(path.join(shared, 'secrets/together.secret'), 'utf8').trim(), values[0]![0]);
  });

  test('a value moved to another row does not open', async () => {
    await pools[0]!.query(
      "INSERT INTO generated_secrets (name, sealed, created_at) SELECT 'secrets/swapped.secret', sealed, 0 FROM generated_secrets WHERE name = $1",
      [NAME],
    );
    await assert.rejects(secretsOn().get('secrets/swapped.secret'), SealedBoxError);
  });

  test('the subject key: imported from the file, kept off other disks, a lost one refused', async () => {
    const sqliteDir = freshDir();
    mkdirSync(sqliteDir, { recursive: true });
    const sqlite = openDatabase(sqliteDir);
    try {
      const accounts = postgresAccounts(pools[0]!);
      const a = freshDir();
      writeLocal(a, SUBJECT_KEY_FILE, 'the-subject-key-of-this-installation-012345');
      const first = await loadSubjectKey(a, { sqlite, accounts, shared: secretsOn() });
      assert.equal(first, 'the-subject-key-of-this-installation-012345');
      const b = freshDir();
      assert.equal(await loadSubjectKey(b, { sqlite, accounts, shared: secretsOn() }), first);
      assert.ok(!existsSync(path.join(b, SUBJECT_KEY_FILE)), 'not written to disk');
      const c = freshDir();
      writeLocal(c, SUBJECT_KEY_FILE, 'another-subject-key-0123456789-0123456789');
      await assert.rejects(loadSubjectKey(c, { sqlite, accounts, shared: secretsOn() }), ConfigError);

      // The key gone from the database (a restore without it), no file, and accounts: refused.
      await pools[0]!.query('DELETE FROM generated_secrets WHERE name = $1', [SUBJECT_KEY_FILE]);
      await accounts.remember('user_x', 'x@example.com');
      await assert.rejects(
        loadSubjectKey(freshDir(), { sqlite, accounts, shared: secretsOn() }),
        /subject key .* is missing, but the store holds 1 accounts.*GATEHOUSE_NEW_SUBJECT_KEY=1/s,
      );
      process.env.GATEHOUSE_NEW_SUBJECT_KEY = '1';
      try {
        const renewed = await loadSubjectKey(freshDir(), { sqlite, accounts, shared: secretsOn() });
        assert.notEqual(renewed, first);
        assert.ok(renewed.length >= 32);
      } finally {
        delete process.env.GATEHOUSE_NEW_SUBJECT_KEY;
      }
    } finally {
      closeDatabase(sqlite);
    }
  });
});
