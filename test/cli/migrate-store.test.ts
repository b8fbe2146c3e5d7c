/**
 * `gatehouse migrate-store`: an instance that ran on SQLite moves to PostgreSQL and keeps what its
 * users and clients rely on. A real server on SQLite issues tokens, remembers a user and a consent,
 * revokes a token and writes its audit trail; the command (a real process) copies the store into a
 * new database; the same data directory then serves on PostgreSQL: the token is active, the refresh
 * token refreshes, the revoked token stays revoked, the user and the audit trail are there. A second
 * run refuses a database that holds data; a missing source says what to give.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import {
  type RunningAuthorizationServer,
  startAuthorizationServer,
} from '../../src/authorization-server/server.ts';
import { parseConfig } from '../../src/shared/config/load.ts';
import { createLogger } from '../../src/shared/logging.ts';
import { basic, postForm, registerNativeClient, userToken } from '../helpers/oauth.ts';
import {
  createTestDatabase,
  skipWithoutPostgres,
  type TestDatabase,
  testEncryptionKey,
} from '../helpers/postgres.ts';

const skipPostgres = await skipWithoutPostgres();

const CLI = path.resolve(import.meta.dirname, '../../bin/gatehouse.js');
const REDIRECT = 'http://127.0.0.1/callback';
const RESOURCE = 'http://localhost:8000/mcp';
const EMAIL = 'alice@example.com';

function migrateStore(args: string[]) {
  const result = spawnSync(process.execPath, [CLI, 'migrate-store', ...args], { encoding: 'utf8' });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe('gatehouse migrate-store', { skip: skipPostgres }, () => {
  let dataDir: string;
  let configFile: string;
  let database: TestDatabase;
  let server: RunningAuthorizationServer | undefined;
  const logs: string[] = [];
  let tokens: { access: string; refresh: string; revoked: string; clientId: string };
  let sqliteCounts: Record<string, number>;
  let streamId: string;

  const start = (storage: Record<string, unknown>) =>
    startAuthorizationServer(
      {
        config: parseConfig({
          dataDir,
          logLevel: 'debug',
          storage,
          authorizationServer: {
            issuer: 'http://127.0.0.1:9000',
            listen: { host: '127.0.0.1', port: 0 },
            refreshTokens: { clients: { cimd: true, publicClients: true } },
          },
        }),
        dataDir,
        file: undefined,
      },
      { logger: createLogger('authorization-server', { level: 'debug', write: (line) => logs.push(line) }) },
    );
  const gateway = () =>
    basic(
      'gatehouse-gateway',
      readFileSync(path.join(dataDir, 'secrets/gatehouse-gateway.secret'), 'utf8').trim(),
    );
  const active = async (issuer: string, token: string) => {
    const answer = await postForm(`${issuer}/introspect`, { token }, { authorization: gateway() });
    assert.equal(answer.status, 200);
    return (answer.json as { active: boolean }).active;
  };

  before(async () => {
    dataDir = mkdtempSync(path.join(tmpdir(), 'gatehouse-migrate-'));
    database = await createTestDatabase();
    configFile = path.join(dataDir, 'gatehouse.json');
    writeFileSync(configFile, JSON.stringify({ dataDir, storage: { url: database.url } }));

    // On SQLite: a user signs in and consents twice; one of the two tokens is revoked.
    server = await start({});
    const issuer = server.issuer;
    const register = () =>
      registerNativeClient(issuer, [REDIRECT], { grant_types: ['authorization_code', 'refresh_token'] });
    const grant = async (clientId: string) => {
      const { token } = await userToken({
        issuer,
        clientId,
        redirectUri: REDIRECT,
        scope: 'stocks:read',
        resource: RESOURCE,
        email: EMAIL,
      });
      assert.equal(token.status, 200, token.text);
      return token.json as { access_token: string; refresh_token: string };
    };
    // Two clients: revoking a token revokes its whole grant.
    const [clientId, otherClient] = [await register(), await register()];
    const kept = await grant(clientId);
    const other = await grant(otherClient);
    assert.ok(kept.refresh_token, 'a refresh token');
    const revoked = await postForm(`${issuer}/revoke`, { token: other.access_token, client_id: otherClient });
    assert.equal(revoked.status, 200);
    assert.equal(await active(issuer, other.access_token), false);
    assert.equal(await active(issuer, kept.access_token), true);
    tokens = {
      access: kept.access_token,
      refresh: kept.refresh_token,
      revoked: other.access_token,
      clientId,
    };
    await server.close();
    server = undefined;

    const sqlite = new DatabaseSync(path.join(dataDir, 'gatehouse.db'), { readOnly: true });
    sqliteCounts = Object.fromEntries(
      [
        'oidc_models',
        'accounts',
        'consent_grants',
        'audit_records',
        'revocation_events',
        'directory_users',
      ].map((table) => [
        table,
        Number((sqlite.prepare(`SELECT count(*) AS n FROM ${table}`).get() as { n: number }).n),
      ]),
    );
    streamId = String(
      (
        sqlite.prepare("SELECT value FROM gatehouse_meta WHERE key = 'revocation_stream'").get() as {
          value: string;
        }
      ).value,
    );
    sqlite.close();
  });

  after(async () => {
    await server?.close();
    await database?.drop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  const count = async (table: string) => {
    const client = new pg.Client({ connectionString: database.url });
    await client.connect();
    try {
      return Number((await client.query(`SELECT count(*) AS n FROM ${table}`)).rows[0].n);
    } finally {
      await client.end();
    }
  };

  test('copies every table into the empty database and says what it copied', async () => {
    const run = migrateStore(['--config', configFile]);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /Copying the SQLite store in .* to PostgreSQL at postgres:\/\//);
    for (const [table, rows] of Object.entries(sqliteCounts)) {
      assert.ok(rows > 0, `${table} has rows in SQLite`);
      assert.match(run.stdout, new RegExp(`${table}\\s+${rows}\\n`), `${table} reported`);
      assert.equal(await count(table), rows, `${table} copied whole`);
    }
    assert.doesNotMatch(run.stdout + run.stderr, new RegExp(tokens.access), 'no token printed');
    // The revocation stream goes on: same id, same last event, so listeners resume without a reset.
    const client = new pg.Client({ connectionString: database.url });
    await client.connect();
    try {
      const state = (await client.query('SELECT stream_id, latest FROM revocation_log_state')).rows[0];
      assert.equal(state.stream_id, streamId);
      assert.equal(Number(state.latest), sqliteCounts.revocation_events);
    } finally {
      await client.end();
    }
  });

  test('the same data directory on PostgreSQL: tokens, refresh, revocation, user and audit trail hold', async () => {
    server = await start({ url: database.url, encryptionKey: testEncryptionKey() });
    const issuer = server.issuer;
    assert.equal(await active(issuer, tokens.access), true, 'the access token is active');
    assert.equal(await active(issuer, tokens.revoked), false, 'the revoked token stays revoked');
    const refreshed = await postForm(`${issuer}/token`, {
      grant_type: 'refresh_token',
      refresh_token: tokens.refresh,
      client_id: tokens.clientId,
      resource: RESOURCE,
    });
    assert.equal(refreshed.status, 200, refreshed.text);
    assert.equal(
      await active(issuer, String((refreshed.json as { access_token: string }).access_token)),
      true,
    );
    // New audit records follow the copied ones (the identity goes on past the largest id).
    assert.ok((await count('audit_records')) > sqliteCounts.audit_records!);
    const client = new pg.Client({ connectionString: database.url });
    await client.connect();
    try {
      const accounts = await client.query('SELECT email FROM accounts');
      assert.deepEqual(
        accounts.rows.map((row) => row.email),
        [EMAIL],
      );
    } finally {
      await client.end();
    }
    await server.close();
    server = undefined;
  });

  test('a pg_dump of the database, restored into a new one, serves the same tokens (docs: backup and restore)', async () => {
    const dump = path.join(dataDir, 'gatehouse.dump');
    execFileSync('pg_dump', ['--format=custom', '--file', dump, database.url]);
    const restored = await createTestDatabase();
    try {
      execFileSync('pg_restore', ['--no-owner', '--exit-on-error', '--dbname', restored.url, dump]);
      server = await start({ url: restored.url, encryptionKey: testEncryptionKey() });
      assert.equal(await active(server.issuer, tokens.access), true, 'the restored database knows the token');
      assert.equal(await active(server.issuer, tokens.revoked), false);
      await server.close();
      server = undefined;
    } finally {
      await restored.drop();
    }
  });

  test('a database that holds data already is refused, and nothing is written', async () => {
    const before = await count('oidc_models');
    const run = migrateStore(['--config', configFile]);
    assert.equal(run.code, 1);
    assert.match(run.stderr, /already holds Gatehouse data .* migrate into a new, empty database/);
    assert.equal(await count('oidc_models'), before);
  });

  test('a missing source, or no target, says what to give', async () => {
    const missing = migrateStore(['--from', path.join(dataDir, 'nowhere'), '--to', database.url]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /no SQLite store at .*give --from the data directory/);
    const bare = path.join(dataDir, 'sqlite-only.json');
    writeFileSync(bare, JSON.stringify({ dataDir }));
    const noTarget = migrateStore(['--config', bare]);
    assert.equal(noTarget.code, 1);
    assert.match(noTarget.stderr, /no PostgreSQL database to copy into: set storage.url/);
    const notPostgres = migrateStore(['--config', bare, '--to', 'mysql://x@127.0.0.1/db']);
    assert.equal(notPostgres.code, 1);
    assert.match(notPostgres.stderr, /must be a postgres:\/\/ URL/);
  });
});
