import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parseConfig } from '../../shared/config/load.ts';
import { createLogger } from '../../shared/logging.ts';
import { type RunningAuthorizationServer, startAuthorizationServer } from '../server.ts';
import { createMemoryAdapterFactory } from './memory-store.ts';
import { openDatabase } from './sqlite-store.ts';

describe('createMemoryAdapterFactory', () => {
  test('stores, consumes and destroys rows, one store per factory', async () => {
    const first = await createMemoryAdapterFactory(15);
    const second = await createMemoryAdapterFactory(15);
    const codes = first('AuthorizationCode');
    await codes.upsert('c1', { grantId: 'g1', clientId: 'agent' }, 60);
    assert.equal((await codes.find('c1'))?.clientId, 'agent');
    assert.equal(await second('AuthorizationCode').find('c1'), undefined, 'factories do not share rows');
    assert.equal(await first('AccessToken').find('c1'), undefined, 'models do not share rows');

    await codes.consume('c1');
    assert.equal(typeof (await codes.find('c1'))?.consumed, 'number');
    await codes.revokeByGrantId('g1');
    assert.equal(await codes.find('c1'), undefined);

    const sessions = first('Session');
    await sessions.upsert('s1', { uid: 'u1', accountId: 'alice' }, 60);
    assert.equal((await sessions.findByUid('u1'))?.accountId, 'alice');
    await sessions.destroy('s1');
    assert.equal(await sessions.find('s1'), undefined);
  });
});

describe("startAuthorizationServer({ storage: 'memory' })", () => {
  const workload = { clientId: 'memory-workload', secret: 'memory-store-test-secret-0123456789abcdef' };
  let dataDir: string;
  let as: RunningAuthorizationServer;

  before(async () => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-memory-store-'));
    const config = parseConfig({
      dataDir,
      authorizationServer: {
        issuer: 'http://127.0.0.1:9000',
        listen: { host: '127.0.0.1', port: 0 },
        clients: [
          ...parseConfig({}).authorizationServer.clients,
          {
            clientId: workload.clientId,
            name: 'Memory store workload',
            role: 'workload',
            authMethod: 'client_secret_basic',
            secret: workload.secret,
            scopes: ['stocks:read'],
          },
        ],
      },
    });
    as = await startAuthorizationServer(
      { config, dataDir, file: undefined },
      { logger: createLogger('authorization-server', { write: () => {} }), storage: 'memory' },
    );
  });

  after(async () => {
    await as.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  test('issues tokens without writing them to the SQLite database', async () => {
    const response = await fetch(`${as.issuer}/token`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        authorization: `Basic ${Buffer.from(`${workload.clientId}:${workload.secret}`).toString('base64')}`,
      },
      body: new URLSearchParams({ grant_type: 'client_credentials', scope: 'stocks:read' }),
    });
    assert.equal(response.status, 200);
    const body = (await response.json()) as { access_token?: string };
    assert.equal(typeof body.access_token, 'string');

    const db = openDatabase(dataDir);
    try {
      const rows = db.prepare('SELECT count(*) AS n FROM oidc_models').get();
      assert.equal(Number(rows?.n), 0, 'no oidc-provider row in SQLite');
    } finally {
      db.close();
    }
  });
});
