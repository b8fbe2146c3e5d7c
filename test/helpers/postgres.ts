/**
 * A PostgreSQL database of its own for each test that needs one: created on the server at
 * GATEHOUSE_TEST_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/postgres, the machines'
 * trust-auth server) and dropped afterwards.
 *
 * Without a reachable server the PostgreSQL tests are skipped, saying why, except in CI (`CI=true`),
 * where a missing database is a failure: CI must prove the PostgreSQL store.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';

export const TEST_POSTGRES_URL =
  process.env.GATEHOUSE_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

let reachable: Promise<boolean> | undefined;

async function probe(): Promise<boolean> {
  const client = new pg.Client({ connectionString: TEST_POSTGRES_URL, connectionTimeoutMillis: 2000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => {});
  }
}

/**
 * `skip` for a test or suite that needs PostgreSQL: false when it can run, else the reason.
 * In CI an unreachable server is not a reason to skip.
 */
export async function skipWithoutPostgres(): Promise<false | string> {
  reachable ??= probe();
  if (await reachable) return false;
  if (process.env.CI === 'true') return false;
  return `PostgreSQL is not reachable at ${TEST_POSTGRES_URL} (set GATEHOUSE_TEST_POSTGRES_URL)`;
}

export interface TestDatabase {
  /** postgres:// URL of the new, empty database. */
  url: string;
  name: string;
  /** Drops it (ending any connection still open to it). */
  drop(): Promise<void>;
}

async function admin<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: TEST_POSTGRES_URL, connectionTimeoutMillis: 5000 });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** Creates an empty database with a random name. */
export async function createTestDatabase(): Promise<TestDatabase> {
  const name = `gatehouse_test_${randomBytes(6).toString('hex')}`;
  // The name is ours (hex): CREATE DATABASE takes no bound parameter.
  await admin((client) => client.query(`CREATE DATABASE ${name}`));
  const url = new URL(TEST_POSTGRES_URL);
  url.pathname = `/${name}`;
  return {
    url: url.href,
    name,
    drop: () =>
      admin((client) => client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)).then(() => {}),
  };
}

/** The environment variable the test servers read `storage.encryptionKey` from. */
export const TEST_ENCRYPTION_KEY_VARIABLE = 'GATEHOUSE_TEST_STORAGE_ENCRYPTION_KEY';

/**
 * `storage.encryptionKey` for a test on PostgreSQL (required there): an `env:` reference to a key
 * made once per test process, also given to the processes it spawns (they inherit the environment).
 */
export function testEncryptionKey(): string {
  process.env[TEST_ENCRYPTION_KEY_VARIABLE] ??= randomBytes(32).toString('base64');
  return `env:${TEST_ENCRYPTION_KEY_VARIABLE}`;
}
