/**
 * A registration the authorization server no longer knows is dropped and done again: one deleted at
 * the server (RFC 7592), and one the server never issued (a stale or foreign credentials file).
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createAgent } from '../../src/agent/index.ts';
import { startTestStack, type TestStack } from '../helpers/stack.ts';
import { parseResult, readStore, storeFile, userAt } from './support.ts';

describe('a registration the server no longer knows', () => {
  let stack: TestStack;
  before(async () => {
    // A short introspection cache, so a deleted client's token stops working promptly.
    stack = await startTestStack({ gateway: { introspectionCache: { maxSeconds: 1, maxEntries: 1000 } } });
  });
  after(() => stack.close());

  async function listStocks(store: string, notes: string[] = []) {
    const user = userAt();
    const agent = createAgent({
      serverUrl: stack.mcpUrl,
      storePath: store,
      openUrl: user.openUrl,
      note: (message) => notes.push(message),
    });
    try {
      parseResult(await agent.callTool('list_stocks'));
      return { identity: agent.identity()!, user };
    } finally {
      await agent.close();
    }
  }

  test('deleted at the server (RFC 7592): the agent registers again and signs in', async () => {
    const store = storeFile();
    const first = await listStocks(store);
    const registration = readStore(store).authorizationServers[stack.issuer]?.registration;
    assert.ok(registration?.registration_client_uri && registration.registration_access_token);
    const deleted = await fetch(registration.registration_client_uri, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${registration.registration_access_token}` },
    });
    assert.equal(deleted.status, 204);
    await sleep(1100); // the gateway's cached introspection of the old token lapses

    const registered = stack.audit('client.registered').length;
    const notes: string[] = [];
    const second = await listStocks(store, notes);
    assert.notEqual(second.identity.clientId, first.identity.clientId);
    assert.equal(stack.audit('client.registered').length, registered + 1);
    assert.match(notes.join('\n'), /no longer knows client/);
    assert.equal(second.user.plays.length, 1);
    assert.equal(
      readStore(store).authorizationServers[stack.issuer]?.registration?.client_id,
      second.identity.clientId,
    );
  });

  test('never issued by this server: the agent registers again', async () => {
    const store = storeFile();
    writeFileSync(
      store,
      JSON.stringify({
        version: 1,
        authorizationServers: {
          [stack.issuer]: { registration: { client_id: 'never-issued-here', registered_at: 1 }, tokens: {} },
        },
      }),
      { mode: 0o600 },
    );
    const registered = stack.audit('client.registered').length;
    const notes: string[] = [];
    const { identity } = await listStocks(store, notes);
    assert.notEqual(identity.clientId, 'never-issued-here');
    assert.equal(stack.audit('client.registered').length, registered + 1);
    assert.match(notes.join('\n'), /no longer knows client never-issued-here; registering again/);
  });
});
