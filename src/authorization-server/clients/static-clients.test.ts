import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { ConfigError, parseConfig } from '../../shared/config/load.ts';
import { MIN_CLIENT_SECRET_LENGTH, prepareClients } from './static-clients.ts';

const dataDir = mkdtempSync(path.join(tmpdir(), 'gatehouse-static-clients-'));
after(() => rmSync(dataDir, { recursive: true, force: true }));

/** The configuration's client list with one more workload (the defaults stay: the exchange policy names them). */
function workloadWithSecret(secret: string) {
  const defaults = parseConfig({}).authorizationServer.clients;
  const clients = parseConfig({
    authorizationServer: {
      clients: [
        ...defaults,
        {
          clientId: 'short-secret-workload',
          name: 'A workload',
          role: 'workload',
          authMethod: 'client_secret_basic',
          secret,
        },
      ],
    },
  }).authorizationServer.clients;
  return clients.filter((client) => client.clientId === 'short-secret-workload');
}

test('a client secret from the environment shorter than 32 characters is refused at start', async () => {
  process.env.GATEHOUSE_TEST_SHORT_SECRET = 'hunter2';
  try {
    await assert.rejects(
      prepareClients(workloadWithSecret('env:GATEHOUSE_TEST_SHORT_SECRET'), dataDir),
      (error: unknown) =>
        error instanceof ConfigError &&
        error.message.includes('short-secret-workload') &&
        error.message.includes(`fewer than ${MIN_CLIENT_SECRET_LENGTH} characters`),
    );
  } finally {
    delete process.env.GATEHOUSE_TEST_SHORT_SECRET;
  }
});

test('a long secret from the environment is accepted as the client secret', async () => {
  process.env.GATEHOUSE_TEST_LONG_SECRET = 'x'.repeat(MIN_CLIENT_SECRET_LENGTH);
  try {
    const [client] = await prepareClients(workloadWithSecret('env:GATEHOUSE_TEST_LONG_SECRET'), dataDir);
    assert.equal(client?.metadata.client_secret, 'x'.repeat(MIN_CLIENT_SECRET_LENGTH));
  } finally {
    delete process.env.GATEHOUSE_TEST_LONG_SECRET;
  }
});
