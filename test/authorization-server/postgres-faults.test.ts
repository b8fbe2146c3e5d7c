/**
 * The PostgreSQL store under faults, on a PostgreSQL server of the test's own (it is crashed and
 * restarted; test/helpers/private-postgres.ts):
 *
 * - the database crashes and comes back while tokens are being issued: meanwhile every request
 *   gets 503 with Retry-After (never a token issued without the store, never a 500), readiness says
 *   so, the server recovers by itself, and every token it acknowledged is active afterwards;
 * - the lookup of a token's client cannot answer: introspection says 503, never "inactive" (which a
 *   gateway would cache for a valid token);
 * - every connection of the pool is held up (a lock): a request waits at most
 *   `storage.pool.acquireTimeoutMs`, then gets 503, and the log says which setting to look at.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import {
  type RunningAuthorizationServer,
  startAuthorizationServer,
} from '../../src/authorization-server/server.ts';
import { parseConfig } from '../../src/shared/config/load.ts';
import { createLogger } from '../../src/shared/logging.ts';
import { basic, postForm, registerNativeClient, userToken } from '../helpers/oauth.ts';
import { testEncryptionKey } from '../helpers/postgres.ts';
import {
  type PrivatePostgres,
  skipWithoutPrivatePostgres,
  startPrivatePostgres,
} from '../helpers/private-postgres.ts';
import { until } from '../helpers/revocation.ts';
import { workloadTokenRequest } from '../helpers/workload.ts';

const POOL = { max: 4, acquireTimeoutMs: 300, statementTimeoutMs: 3000 };
const REDIRECT = 'http://127.0.0.1/callback';
const LOAD_CALLERS = 4;

interface Answer {
  status: number;
  json: Record<string, unknown>;
  retryAfter: string | null;
  ms: number;
}

describe('the PostgreSQL store under faults', { skip: skipWithoutPrivatePostgres() }, () => {
  let database: PrivatePostgres;
  let dataDir: string;
  let server: RunningAuthorizationServer;
  const logs: string[] = [];
  const target = () => ({ issuer: server.issuer, dataDir });

  const token = async (): Promise<Answer> => {
    const started = Date.now();
    const answer = await workloadTokenRequest(target());
    return {
      status: answer.status,
      json: answer.json as Record<string, unknown>,
      retryAfter: answer.headers.get('retry-after'),
      ms: Date.now() - started,
    };
  };
  const active = async (accessToken: string) => {
    const secret = readFileSync(path.join(dataDir, 'secrets/gatehouse-gateway.secret'), 'utf8').trim();
    const answer = await postForm(
      `${server.issuer}/introspect`,
      { token: accessToken },
      { authorization: basic('gatehouse-gateway', secret) },
    );
    return answer.status === 200 && (answer.json as { active?: boolean }).active === true;
  };
  const assertUnavailable = (answer: Answer) => {
    assert.equal(answer.status, 503, JSON.stringify(answer.json));
    assert.equal(answer.retryAfter, '1');
    assert.equal(answer.json.error, 'temporarily_unavailable');
    assert.equal(answer.json.access_token, undefined, 'no token without the store');
  };

  before(async () => {
    database = await startPrivatePostgres();
    dataDir = mkdtempSync(path.join(tmpdir(), 'gatehouse-pg-faults-'));
    server = await startAuthorizationServer(
      {
        config: parseConfig({
          dataDir,
          logLevel: 'debug',
          storage: { url: database.url, encryptionKey: testEncryptionKey(), pool: POOL },
          authorizationServer: {
            issuer: 'http://127.0.0.1:9000',
            listen: { host: '127.0.0.1', port: 0 },
            // The load issues more tokens than the workload's default limit allows per minute.
            tokenEndpointRateLimit: {
              perAddress: { max: 100_000, windowSeconds: 60 },
              perClient: { workload: { max: 100_000, windowSeconds: 60 } },
            },
          },
        }),
        dataDir,
        file: undefined,
      },
      { logger: createLogger('authorization-server', { level: 'debug', write: (line) => logs.push(line) }) },
    );
  });

  after(async () => {
    await server?.close();
    await database?.close();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  test('a crash and restart under load: 503 with Retry-After meanwhile, recovery by itself, no acknowledged token lost', async () => {
    const answers: Answer[] = [];
    let loading = true;
    const caller = async () => {
      while (loading)
        answers.push(
          await token().catch((error: Error) => ({
            status: 0,
            json: { error: error.message },
            retryAfter: null,
            ms: 0,
          })),
        );
    };
    const callers = Array.from({ length: LOAD_CALLERS }, caller);
    try {
      await until(
        async () => answers.filter((answer) => answer.status === 200).length >= 20,
        'tokens issued',
        10_000,
      );
      await database.crash();
      const crashedAt = answers.length;
      await until(
        async () => answers.slice(crashedAt).some((answer) => answer.status === 503),
        'a 503 while down',
        10_000,
      );
      const ready = await fetch(`${server.issuer}/readyz`);
      assert.equal(ready.status, 503, 'readiness says the store is down');
      await database.start();
      const restartedAt = answers.length;
      await until(
        async () => answers.slice(restartedAt).some((answer) => answer.status === 200),
        'tokens again once the database is back',
        15_000,
      );
      await new Promise((resolve) => setTimeout(resolve, 300));
    } finally {
      loading = false;
      await Promise.all(callers);
    }
    for (const answer of answers) {
      if (answer.status === 200) continue;
      assertUnavailable(answer);
    }
    const issued = answers
      .filter((answer) => answer.status === 200)
      .map((answer) => String(answer.json.access_token));
    // Every token the server answered with was kept: it is active now.
    for (let i = 0; i < issued.length; i += 8) {
      const batch = await Promise.all(issued.slice(i, i + 8).map(active));
      assert.ok(batch.every(Boolean), 'an acknowledged token is active after the restart');
    }
    assert.equal((await fetch(`${server.issuer}/readyz`)).status, 200);
    assert.deepEqual(
      logs.filter((line) => line.includes('"stack"')),
      [],
      'an unavailable store is not a server error with a stack trace',
    );
  });

  test('introspection when the client lookup cannot answer: 503, never an active token reported inactive', async () => {
    // A user's token for a dynamically registered client: introspecting it loads that client
    // through the store (the gateway's own client is configured, not stored).
    const clientId = await registerNativeClient(server.issuer, [REDIRECT]);
    const { token: issued } = await userToken({
      issuer: server.issuer,
      clientId,
      redirectUri: REDIRECT,
      scope: 'stocks:read',
      resource: 'http://localhost:8000/mcp',
    });
    assert.equal(issued.status, 200, issued.text);
    const accessToken = String((issued.json as { access_token: string }).access_token);
    assert.equal(await active(accessToken), true);
    const blocker = new pg.Client({ connectionString: database.url });
    await blocker.connect();
    try {
      // The token's row answers; the lookup of its client waits past statementTimeoutMs.
      await blocker.query('BEGIN');
      await blocker.query('LOCK TABLE registered_clients IN ACCESS EXCLUSIVE MODE');
      const secret = readFileSync(path.join(dataDir, 'secrets/gatehouse-gateway.secret'), 'utf8').trim();
      const answer = await postForm(
        `${server.issuer}/introspect`,
        { token: accessToken },
        { authorization: basic('gatehouse-gateway', secret) },
      );
      assert.equal(
        answer.status,
        503,
        `not ${answer.status} ${answer.text}: a gateway would cache "inactive"`,
      );
      assert.equal(answer.headers.get('retry-after'), '1');
    } finally {
      await blocker.query('ROLLBACK').catch(() => {});
      await blocker.end();
    }
    assert.equal(await active(accessToken), true, 'active again once the store answers');
  });

  test('an exhausted pool: a request waits at most acquireTimeoutMs, then 503, and the log names the settings', async () => {
    const blocker = new pg.Client({ connectionString: database.url });
    await blocker.connect();
    const holdMs = 1500;
    let released = 0;
    try {
      // Every statement on the tokens' table waits behind this lock: the pool's connections stay busy.
      await blocker.query('BEGIN');
      await blocker.query('LOCK TABLE oidc_models IN ACCESS EXCLUSIVE MODE');
      const requests = Array.from({ length: POOL.max * 3 }, token);
      setTimeout(() => {
        released = Date.now();
        blocker.query('COMMIT').catch(() => {});
      }, holdMs);
      const answers = await Promise.all(requests);
      const refused = answers.filter((answer) => answer.status !== 200);
      assert.ok(refused.length > 0, 'more requests than connections: some were refused');
      for (const answer of refused) {
        assertUnavailable(answer);
        assert.ok(answer.ms < holdMs, `refused within a bounded wait (${answer.ms} ms), not after the lock`);
      }
      const served = answers.filter((answer) => answer.status === 200);
      assert.ok(served.length > 0, 'those that had a connection were served once the lock went');
      assert.ok(released > 0);
    } finally {
      await blocker.end();
    }
    assert.ok(
      logs.some((line) =>
        /all 4 connections of the pool stayed busy for 300 ms \(storage.pool.max/.test(line),
      ),
      'the log says what happened and which settings bound it',
    );
    assert.equal((await token()).status, 200, 'served again once the connections are free');
  });
});
