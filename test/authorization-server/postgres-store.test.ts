/**
 * The authorization server on PostgreSQL (issue 10): two instances behind a round-robin balancer
 * share one database, so a token issued by one is known, and revoked, at the other; the rows are in
 * PostgreSQL, not in the local SQLite file; and a database that cannot answer makes requests fail
 * closed with 503 and Retry-After, then recover by themselves.
 *
 * Each instance has a data directory of its own, as on two hosts: the signing keys, the generated
 * secrets and the subject key come from the database (sealed with storage.encryptionKey), so both
 * publish the same JWKS, accept each other's cookies and tokens, and follow each other's rotations.
 * The directory is PostgreSQL's too: a client disabled, a user or a client added through the admin
 * API of one instance holds at the other at its next request.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, before, describe, test } from 'node:test';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import pg from 'pg';
import {
  type RunningAuthorizationServer,
  startAuthorizationServer,
} from '../../src/authorization-server/server.ts';
import { connectPostgres } from '../../src/authorization-server/store/postgres/connection.ts';
import { migrate } from '../../src/authorization-server/store/postgres/migrations.ts';
import { POSTGRES_MIGRATIONS } from '../../src/authorization-server/store/postgres/schema.ts';
import { DATABASE_FILE } from '../../src/authorization-server/store/sqlite-store.ts';
import { parseConfig } from '../../src/shared/config/load.ts';
import { tokenHash } from '../../src/shared/jwt.ts';
import { createLogger } from '../../src/shared/logging.ts';
import { type Balancer, freePort, startBalancer } from '../helpers/balancer.ts';
import { Browser, basic, postForm, userToken } from '../helpers/oauth.ts';
import {
  createTestDatabase,
  skipWithoutPostgres,
  TEST_POSTGRES_URL,
  type TestDatabase,
} from '../helpers/postgres.ts';
import { JWT_BEARER, WORKLOAD, workloadAssertion, workloadTokenRequest } from '../helpers/workload.ts';

const GATEWAY = 'gatehouse-gateway';
const AGENT = 'test-agent';
/** The environment variable the instances read storage.encryptionKey from. */
const ENCRYPTION_KEY_VARIABLE = 'GATEHOUSE_TEST_STORAGE_ENCRYPTION_KEY';
const ADMIN = 'gatehouse-admin';
const REDIRECT = 'http://127.0.0.1/callback';

/** A browser whose every request goes to one instance, while the pages and redirects name the issuer. */
class PinnedBrowser extends Browser {
  readonly #issuer: string;
  readonly #instance: string;
  constructor(issuer: string, instance: string) {
    super();
    this.#issuer = issuer;
    this.#instance = instance;
  }
  override async request(url: string, init: Parameters<Browser['request']>[1] = {}) {
    const answer = await super.request(url.replace(this.#issuer, this.#instance), init);
    return { ...answer, location: answer.location?.replace(this.#instance, this.#issuer) };
  }
}

describe('two authorization servers on one PostgreSQL database', {
  skip: await skipWithoutPostgres(),
}, () => {
  let database: TestDatabase;
  /** One data directory per instance. */
  let dataDirs: string[] = [];
  let balancer: Balancer;
  const instances: RunningAuthorizationServer[] = [];
  const logs: string[] = [];
  let gateway: string;
  let ports: number[] = [];

  const server = () => ({ issuer: balancer.url, dataDir: dataDirs[0]! });
  const introspect = (token: string) =>
    postForm(`${balancer.url}/introspect`, { token }, { authorization: gateway });
  const admin = async <T>(fn: (client: pg.Client) => Promise<T>): Promise<T> => {
    const client = new pg.Client({ connectionString: database.url });
    await client.connect();
    try {
      return await fn(client);
    } finally {
      await client.end();
    }
  };

  /** The admin API of one instance (`at`: its own address), with a token of the admin client. */
  const adminCall = async (at: string, method: string, route: string, body?: unknown) => {
    const secret = readFileSync(path.join(dataDirs[0]!, `secrets/${ADMIN}.secret`), 'utf8').trim();
    const issued = await postForm(
      `${balancer.url}/token`,
      { grant_type: 'client_credentials', scope: 'admin' },
      { authorization: basic(ADMIN, secret) },
    );
    assert.equal(issued.status, 200, issued.text);
    const response = await fetch(`${at}/admin/api${route}`, {
      method,
      headers: {
        authorization: `Bearer ${issued.json.access_token}`,
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await response.text();
    return { status: response.status, json: (text ? JSON.parse(text) : {}) as Record<string, unknown> };
  };

  before(async () => {
    database = await createTestDatabase();
    dataDirs = [0, 1].map(() => mkdtempSync(path.join(tmpdir(), 'gatehouse-pg-')));
    process.env[ENCRYPTION_KEY_VARIABLE] = randomBytes(32).toString('base64');
    ports = [await freePort(), await freePort()];
    balancer = await startBalancer(ports);
    const startAt = (port: number, dataDir: string) =>
      startAuthorizationServer(
        {
          config: parseConfig({
            dataDir,
            logLevel: 'debug',
            storage: {
              url: database.url,
              encryptionKey: `env:${ENCRYPTION_KEY_VARIABLE}`,
              pool: { acquireTimeoutMs: 500 },
            },
            authorizationServer: {
              issuer: balancer.url,
              listen: { host: '127.0.0.1', port },
              dynamicRegistration: { rateLimit: { max: 3, windowSeconds: 600 } },
              keys: { publishBeforeUseSeconds: 1 },
              clients: [
                {
                  clientId: 'example-workload',
                  name: 'Example workload agent',
                  role: 'workload',
                  authMethod: 'private_key_jwt',
                  jwksFile: 'secrets/example-workload.jwks.json',
                  generateKeys: true,
                  scopes: ['stocks:read'],
                },
                {
                  clientId: AGENT,
                  name: 'Test agent',
                  role: 'agent',
                  authMethod: 'none',
                  redirectUris: [REDIRECT],
                },
                {
                  clientId: ADMIN,
                  name: 'Gatehouse admin scripts',
                  role: 'admin',
                  authMethod: 'client_secret_basic',
                  secret: `file:secrets/${ADMIN}.secret`,
                  scopes: ['admin'],
                },
              ],
            },
          }),
          dataDir,
          file: undefined,
        },
        {
          logger: createLogger('authorization-server', { level: 'debug', write: (line) => logs.push(line) }),
        },
      );
    // Together, on empty data directories: they must agree on one set of keys and secrets.
    const started = await Promise.all(
      ports.map(async (_, i) => {
        for (let attempt = 1; ; attempt++) {
          try {
            return await startAt(ports[i]!, dataDirs[i]!);
          } catch (error) {
            // The free port was taken meanwhile (an outgoing connection of another suite): another one.
            if (attempt >= 5 || !/already in use/.test((error as Error).message)) throw error;
            ports[i] = await freePort();
          }
        }
      }),
    );
    instances.push(...started);
    const secret = readFileSync(path.join(dataDirs[1]!, `secrets/${GATEWAY}.secret`), 'utf8').trim();
    gateway = basic(GATEWAY, secret);
  });

  after(async () => {
    for (const instance of instances) await instance.close();
    await balancer?.close();
    await database?.drop();
    delete process.env[ENCRYPTION_KEY_VARIABLE];
    for (const dataDir of dataDirs) rmSync(dataDir, { recursive: true, force: true });
  });

  test('a token issued by one instance is active at the other, and revoked at both', async () => {
    const before = [...balancer.served];
    const tokens: string[] = [];
    for (let i = 0; i < 4; i++) {
      const issued = await workloadTokenRequest(server());
      assert.equal(issued.status, 200, issued.text);
      tokens.push(String(issued.json.access_token));
    }
    // Each token is introspected by the instance that did not issue it (the balancer alternates).
    for (const token of tokens) {
      const answer = await introspect(token);
      assert.equal(answer.status, 200, answer.text);
      assert.equal(answer.json.active, true);
      assert.equal(answer.json.client_id, WORKLOAD);
    }
    assert.ok(
      balancer.served.every((count, i) => count - before[i]! >= 4),
      `both instances served requests: ${balancer.served}`,
    );

    const revoked = await postForm(`${balancer.url}/revoke`, {
      token: tokens[0],
      client_assertion_type: JWT_BEARER,
      client_assertion: await workloadAssertion(server()),
    });
    assert.equal(revoked.status, 200, revoked.text);
    // Twice, so that each instance answers once.
    for (let i = 0; i < 2; i++) assert.equal((await introspect(tokens[0]!)).json.active, false);
    assert.equal((await introspect(tokens[1]!)).json.active, true);
  });

  test('one client assertion sent to both instances at once gets one token: its jti is claimed in one statement', async () => {
    const instances = ports.map((port) => `http://127.0.0.1:${port}`);
    for (let round = 0; round < 5; round++) {
      const assertion = await workloadAssertion(server());
      const answers = await Promise.all(
        [...instances, ...instances].map((base) =>
          postForm(`${base}/token`, {
            grant_type: 'client_credentials',
            client_assertion_type: JWT_BEARER,
            client_assertion: assertion,
            scope: 'stocks:read',
          }),
        ),
      );
      const issued = answers.filter((answer) => answer.status === 200);
      assert.equal(issued.length, 1, `round ${round}: ${answers.map((answer) => answer.status)}`);
      for (const answer of answers.filter((other) => other.status !== 200)) {
        assert.equal(answer.status, 401, answer.text);
        assert.equal(answer.json.error, 'invalid_client');
      }
    }
  });

  test('a revocation at one instance reaches the listeners of the other within a second', async () => {
    const [atA, atB] = ports.map((port) => `http://127.0.0.1:${port}`);
    const abort = new AbortController();
    const events = await fetch(`${atA}/events/revocations`, {
      headers: { authorization: gateway, accept: 'text/event-stream' },
      signal: abort.signal,
    });
    assert.equal(events.status, 200);
    const reader = events.body!.pipeThrough(new TextDecoderStream()).getReader();
    let text = '';
    const until = async (pattern: RegExp, ms: number) => {
      const deadline = Date.now() + ms;
      while (!pattern.test(text)) {
        const left = deadline - Date.now();
        if (left <= 0) return false;
        const chunk = await Promise.race([
          reader.read(),
          new Promise<undefined>((resolve) => setTimeout(resolve, left)),
        ]);
        if (chunk === undefined || chunk.done) continue;
        text += chunk.value;
      }
      return true;
    };
    try {
      assert.ok(await until(/event: ready/, 5000), 'the stream of instance A is ready');
      const issued = await workloadTokenRequest(server());
      const token = String(issued.json.access_token);
      const revoked = await fetch(`${atB}/revoke`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          token,
          client_assertion_type: JWT_BEARER,
          client_assertion: await workloadAssertion(server()),
        }),
      });
      assert.equal(revoked.status, 200, 'revoked at instance B');
      assert.ok(!text.includes(tokenHash(token)), 'not announced before it was revoked');
      const started = Date.now();
      assert.ok(
        await until(new RegExp(`"token_hash":"${tokenHash(token)}"`), 1000),
        `the token event reached instance A's listener within 1 s: ${text.slice(-300)}`,
      );
      assert.ok(Date.now() - started <= 1000);
      // One log for both instances: the event is a row of PostgreSQL, so a listener that reconnects
      // to either instance is replayed from the same ids.
      const kept = await admin((client) =>
        client.query("SELECT id FROM revocation_events WHERE payload ->> 'token_hash' = $1", [
          tokenHash(token),
        ]),
      );
      assert.equal(kept.rows.length, 1, 'the revocation is kept once, in PostgreSQL');
      const local = new DatabaseSync(path.join(dataDirs[0]!, DATABASE_FILE), { readOnly: true });
      try {
        const table = local
          .prepare("SELECT count(*) AS n FROM sqlite_master WHERE name = 'revocation_events'")
          .get();
        if (Number(table?.n) > 0)
          assert.equal(Number(local.prepare('SELECT count(*) AS n FROM revocation_events').get()?.n), 0);
      } finally {
        local.close();
      }
    } finally {
      abort.abort();
    }
  });

  test('keys, secrets and the subject key come from the database: same JWKS, sealed, nothing in keys.json', async () => {
    const [atA, atB] = ports.map((port) => `http://127.0.0.1:${port}`);
    const [jwksA, jwksB] = await Promise.all(
      [atA, atB].map((at) => fetch(`${at}/jwks`).then((r) => r.json())),
    );
    assert.ok((jwksA as { keys: unknown[] }).keys.length >= 4);
    assert.deepEqual(jwksB, jwksA, 'both instances publish the same JWKS');
    for (const file of [
      `secrets/${GATEWAY}.secret`,
      'secrets/gatehouse-mcp-server.secret',
      'secrets/example-workload.jwks.json',
      'secrets/example-workload.private-key.json',
    ]) {
      const [a, b] = dataDirs.map((dir) => readFileSync(path.join(dir, file), 'utf8'));
      assert.equal(a, b, `${file} is the same in both data directories`);
    }
    for (const dir of dataDirs) {
      assert.ok(!existsSync(path.join(dir, 'keys.json')), 'no keys.json: the keys are in PostgreSQL');
      assert.ok(!existsSync(path.join(dir, 'secrets/subject.key')), 'no subject key on disk');
    }
    const rows = await admin((client) =>
      client.query<{ sealed: Buffer }>(
        'SELECT sealed FROM signing_keys UNION ALL SELECT sealed FROM generated_secrets',
      ),
    );
    assert.equal(
      rows.rows.length,
      1 + 5,
      'one key set; three client secrets (gateway, MCP server, admin), the workload key pair, the subject key',
    );
    const gatewaySecret = readFileSync(path.join(dataDirs[0]!, `secrets/${GATEWAY}.secret`), 'utf8').trim();
    const kid = (jwksA as { keys: Array<{ kid: string }> }).keys[0]!.kid;
    for (const row of rows.rows) {
      assert.ok(!row.sealed.includes(Buffer.from(gatewaySecret)), 'no secret in the clear');
      assert.ok(!row.sealed.includes(Buffer.from(kid)), 'no key in the clear');
    }
    assert.ok(
      !logs.some(
        (line) => line.includes(gatewaySecret) || line.includes(process.env[ENCRYPTION_KEY_VARIABLE]!),
      ),
      'neither a secret nor the encryption key is logged',
    );
  });

  test('a phantom token signed at one instance verifies with the JWKS of the other', async () => {
    const [atA, atB] = ports.map((port) => `http://127.0.0.1:${port}`);
    const issued = await postForm(`${atA}/token`, {
      grant_type: 'client_credentials',
      client_assertion_type: JWT_BEARER,
      client_assertion: await workloadAssertion(server()),
      scope: 'stocks:read',
    });
    assert.equal(issued.status, 200, issued.text);
    const phantom = await postForm(
      `${atB}/introspect`,
      { token: String(issued.json.access_token) },
      { authorization: gateway, accept: 'application/jwt' },
    );
    assert.equal(phantom.status, 200, phantom.text);
    const jwksOfA = (await (await fetch(`${atA}/jwks`)).json()) as { keys: [] };
    const { payload } = await jwtVerify(phantom.text, createLocalJWKSet(jwksOfA), { issuer: balancer.url });
    assert.equal(payload.client_id, WORKLOAD);
  });

  test('a sign-in started at one instance completes at the other (cookies, codes, ID token)', async () => {
    const before = [...balancer.served];
    // Through the balancer, which alternates: each step of the sign-in lands on the other instance.
    const { token } = await userToken({
      issuer: balancer.url,
      clientId: AGENT,
      redirectUri: REDIRECT,
      scope: 'openid',
      browser: new Browser(),
    });
    assert.equal(token.status, 200, token.text);
    assert.ok(
      balancer.served.every((count, i) => count - before[i]! >= 3),
      `alternated: ${balancer.served}`,
    );
    const idToken = String(token.json.id_token);
    for (const port of ports) {
      const jwks = (await (await fetch(`http://127.0.0.1:${port}/jwks`)).json()) as { keys: [] };
      await jwtVerify(idToken, createLocalJWKSet(jwks), { issuer: balancer.url, audience: AGENT });
    }
    const introspected = await introspect(String(token.json.access_token));
    assert.equal(introspected.json.active, true);
  });

  test('a rotation at one instance is published and signed with by the other within seconds', async () => {
    const [atA, atB] = ports.map((port) => `http://127.0.0.1:${port}`) as [string, string];
    let rotated: Awaited<ReturnType<RunningAuthorizationServer['keys']['rotate']>> | undefined;
    // The next keys may sign 1 s after they were published (keys.publishBeforeUseSeconds).
    for (let attempt = 0; !rotated; attempt++) {
      try {
        rotated = await instances[0]!.keys.rotate('test');
      } catch (error) {
        if (attempt > 20) throw error;
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    }
    const kidsAt = async (at: string) =>
      ((await (await fetch(`${at}/jwks`)).json()) as { keys: Array<{ kid: string }> }).keys.map(
        (key) => key.kid,
      );
    const deadline = Date.now() + 3000;
    while (!(await kidsAt(atB)).includes(rotated.next) && Date.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 50));
    assert.deepEqual(await kidsAt(atB), await kidsAt(atA), 'B publishes what A published');
    assert.equal(instances[1]!.keys.list().find((key) => key.state === 'current')?.kid, rotated.current);
    // A phantom token minted at B is signed with the new current key.
    const token = await postForm(`${atA}/token`, {
      grant_type: 'client_credentials',
      client_assertion_type: JWT_BEARER,
      client_assertion: await workloadAssertion(server()),
      scope: 'stocks:read',
    });
    const phantom = await postForm(
      `${atB}/introspect`,
      { token: String(token.json.access_token) },
      { authorization: gateway, accept: 'application/jwt' },
    );
    assert.equal(decodeProtectedHeader(phantom.text).kid, rotated.current);
  });

  test('a rate limit holds across instances: N per window in total, not per instance', async () => {
    const before = [...balancer.served];
    const register = () =>
      fetch(`${balancer.url}/register`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          redirect_uris: ['http://127.0.0.1/callback'],
          application_type: 'native',
          token_endpoint_auth_method: 'none',
        }),
      });
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) statuses.push((await register()).status);
    // Per instance, two each would all have passed; counted together, the fourth is refused.
    assert.deepEqual(statuses, [201, 201, 201, 429]);
    assert.ok(
      balancer.served.every((count, i) => count - before[i]! === 2),
      `alternated: ${balancer.served}`,
    );
    const refused = await register();
    assert.equal(refused.status, 429);
    assert.ok(Number(refused.headers.get('retry-after')) > 0);
    const rows = await admin((client) =>
      client.query("SELECT count FROM rate_limit_windows WHERE scope = 'registration'"),
    );
    assert.equal(rows.rows[0].count, 5);
  });

  test('the tokens are rows of PostgreSQL, not of the local SQLite file', async () => {
    const rows = await admin((client) =>
      client.query("SELECT count(*)::int AS n FROM oidc_models WHERE model = 'ClientCredentials'"),
    );
    assert.ok(Number(rows.rows[0].n) >= 3, `ClientCredentials rows in PostgreSQL: ${rows.rows[0].n}`);
    const local = new DatabaseSync(path.join(dataDirs[0]!, DATABASE_FILE), { readOnly: true });
    try {
      const row = local.prepare('SELECT count(*) AS n FROM oidc_models').get();
      assert.equal(Number(row?.n), 0, 'nothing of oidc-provider in SQLite');
    } finally {
      local.close();
    }
    const migrations = await admin((client) =>
      client.query('SELECT id FROM gatehouse_migrations ORDER BY id'),
    );
    assert.ok(migrations.rows.some((row) => row.id === 'oidc-models-1'));
  });

  test('a client disabled through the admin API of one instance is refused at the other at once', async () => {
    const [atA, atB] = ports.map((port) => `http://127.0.0.1:${port}`);
    const issued = await workloadTokenRequest(server());
    assert.equal(issued.status, 200, issued.text);
    const token = String(issued.json.access_token);
    const disabled = await adminCall(atA!, 'POST', '/clients/example-workload/disable');
    assert.equal(disabled.status, 200, JSON.stringify(disabled.json));
    try {
      // At B, the very next request: no cache of A's answer to wait out.
      const refused = await postForm(`${atB}/token`, {
        grant_type: 'client_credentials',
        client_assertion_type: JWT_BEARER,
        client_assertion: await workloadAssertion(server()),
        scope: 'stocks:read',
      });
      assert.equal(refused.status, 401, refused.text);
      assert.equal(refused.json.error, 'invalid_client');
      const answer = await postForm(`${atB}/introspect`, { token }, { authorization: gateway });
      assert.equal(answer.json.active, false, 'its tokens are inactive at B too');
      const listed = await adminCall(atB!, 'GET', '/clients/example-workload');
      assert.equal(listed.json.disabled, true, "B's admin API shows it disabled");
    } finally {
      const enabled = await adminCall(atB!, 'POST', '/clients/example-workload/enable');
      assert.equal(enabled.status, 200, JSON.stringify(enabled.json));
    }
    // Enabled at B: A lets it in again at once.
    const again = await postForm(`${atA}/token`, {
      grant_type: 'client_credentials',
      client_assertion_type: JWT_BEARER,
      client_assertion: await workloadAssertion(server()),
      scope: 'stocks:read',
    });
    assert.equal(again.status, 200, again.text);
  });

  test('a user and a client an administrator adds at one instance sign in at the other', async () => {
    const [atA, atB] = ports.map((port) => `http://127.0.0.1:${port}`);
    const email = 'dana@newco.example';
    const client = await adminCall(atA!, 'POST', '/clients', {
      client_id: 'shared-agent',
      name: 'Shared agent',
      role: 'agent',
      redirect_uris: [REDIRECT],
      scopes: ['stocks:read'],
    });
    assert.equal(client.status, 201, JSON.stringify(client.json));
    const user = await adminCall(atA!, 'POST', '/users', { email, name: 'Dana' });
    assert.equal(user.status, 201, JSON.stringify(user.json));
    // Every page of the sign-in at B: the code is sent there, so B found the user A added.
    const { token, result } = await userToken({
      issuer: balancer.url,
      clientId: 'shared-agent',
      redirectUri: REDIRECT,
      scope: 'stocks:read',
      email,
      browser: new PinnedBrowser(balancer.url, atB!),
    });
    assert.deepEqual(result.pages, ['email', 'code', 'consent']);
    assert.equal(token.status, 200, token.text);
    const accessToken = String(token.json.access_token);
    const active = await postForm(`${atA}/introspect`, { token: accessToken }, { authorization: gateway });
    assert.equal(active.json.active, true);
    assert.equal(active.json.email, email);

    // Removed at B: the token stops at A.
    const removed = await adminCall(atB!, 'DELETE', `/users/${encodeURIComponent(email)}`);
    assert.equal(removed.status, 204);
    const inactive = await postForm(`${atA}/introspect`, { token: accessToken }, { authorization: gateway });
    assert.equal(inactive.json.active, false);

    // The directory is PostgreSQL's: the local SQLite file has none of it.
    const rows = await admin((client) =>
      client.query(
        'SELECT client_id FROM registered_clients UNION ALL SELECT key FROM directory_removed_seeds',
      ),
    );
    assert.deepEqual(rows.rows.map((row) => row.client_id).sort(), [email, 'shared-agent']);
    for (const dataDir of dataDirs) {
      const local = new DatabaseSync(path.join(dataDir, DATABASE_FILE), { readOnly: true });
      try {
        const table = local
          .prepare("SELECT count(*) AS n FROM sqlite_master WHERE name = 'directory_users'")
          .get();
        assert.equal(Number(table?.n), 0, 'no directory table in SQLite');
      } finally {
        local.close();
      }
    }
  });

  test('a database that cannot answer: 503 with Retry-After, no token, then recovery by itself', async () => {
    // The admin connection goes to the server's own database (it is not the test database).
    const superuser = async (allow: boolean) => {
      const client = new pg.Client({ connectionString: TEST_POSTGRES_URL });
      await client.connect();
      try {
        await client.query(`ALTER DATABASE ${database.name} WITH ALLOW_CONNECTIONS ${allow}`);
        if (!allow) {
          await client.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1', [
            database.name,
          ]);
        }
      } finally {
        await client.end();
      }
    };
    await superuser(false);
    try {
      for (let i = 0; i < 2; i++) {
        const refused = await workloadTokenRequest(server());
        assert.equal(refused.status, 503, refused.text);
        assert.equal(refused.headers.get('retry-after'), '1');
        assert.equal(refused.json.error, 'temporarily_unavailable');
        assert.equal(refused.json.access_token, undefined);
        const ready = await fetch(`${balancer.url}/readyz`);
        assert.equal(ready.status, 503);
      }
    } finally {
      await superuser(true);
    }
    let status = 0;
    for (let attempt = 0; attempt < 20 && status !== 200; attempt++) {
      status = (await workloadTokenRequest(server())).status;
      if (status !== 200) await new Promise((resolve) => setTimeout(resolve, 250));
    }
    assert.equal(status, 200, 'the instances recover once the database answers again');
    const stacks = logs.filter((line) => line.includes('"stack"'));
    assert.deepEqual(stacks, [], 'an unavailable store is not a server error with a stack trace');
  });
});

describe('an upgrade started in the wrong order', { skip: await skipWithoutPostgres() }, () => {
  test('a new data directory on a database with accounts but no keys is refused, and adds nothing', async () => {
    const database = await createTestDatabase();
    const dataDir = mkdtempSync(path.join(tmpdir(), 'gatehouse-pg-fresh-'));
    process.env[ENCRYPTION_KEY_VARIABLE] = randomBytes(32).toString('base64');
    try {
      // A deployment from before keys moved to PostgreSQL: accounts there, keys in its data directory.
      const migrated = connectPostgres(database.url, {
        max: 1,
        acquireTimeoutMs: 2000,
        statementTimeoutMs: 5000,
      });
      await migrate(migrated, POSTGRES_MIGRATIONS);
      await migrated.query(
        "INSERT INTO accounts (sub, email, last_login_at) VALUES ('user_a', 'a@example.com', 0)",
      );
      await migrated.close();
      await assert.rejects(
        startAuthorizationServer(
          {
            config: parseConfig({
              dataDir,
              storage: { url: database.url, encryptionKey: `env:${ENCRYPTION_KEY_VARIABLE}` },
              authorizationServer: {
                issuer: 'http://127.0.0.1:9000',
                listen: { host: '127.0.0.1', port: 0 },
              },
            }),
            dataDir,
            file: undefined,
          },
          { logger: createLogger('authorization-server', { level: 'error', write: () => {} }) },
        ),
        /subject key .* is missing, but the store holds 1 accounts/s,
      );
      const rows = await (async () => {
        const client = new pg.Client({ connectionString: database.url });
        await client.connect();
        try {
          return (
            await client.query(
              'SELECT (SELECT count(*) FROM signing_keys)::int AS keys, (SELECT count(*) FROM generated_secrets)::int AS secrets',
            )
          ).rows[0];
        } finally {
          await client.end();
        }
      })();
      assert.deepEqual(rows, { keys: 0, secrets: 0 }, 'no new keys or secrets in place of the deployment’s');
    } finally {
      delete process.env[ENCRYPTION_KEY_VARIABLE];
      rmSync(dataDir, { recursive: true, force: true });
      await database.drop();
    }
  });
});
