/**
 * Journey 5: the stack restarts between two runs of the agent. The second run reuses the stored
 * registration and tokens (no registration, no sign-in, no consent); a run that must sign in again
 * (its tokens gone) is asked for no consent either: the consent is remembered across the restart.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createAgent } from '../../src/agent/index.ts';
import { openTokenStore } from '../../src/agent/token-store.ts';
import { Browser } from '../helpers/oauth.ts';
import { startTestStack, type TestStack } from '../helpers/stack.ts';
import { parseResult, readStore, storeFile, userAt } from './support.ts';

describe('the agent across a restart of the stack', () => {
  let stack: TestStack;
  before(async () => {
    stack = await startTestStack();
  });
  after(() => stack.close());

  test('the second run reuses the stored registration, tokens and consent', async () => {
    const store = storeFile();
    const user = userAt(new Browser());
    const run = async (openUrl: (url: string) => Promise<void>, trade = true) => {
      const agent = createAgent({ serverUrl: stack.mcpUrl, storePath: store, openUrl });
      try {
        parseResult(await agent.callTool('list_stocks'));
        if (!trade) return agent.identity()!;
        const order = parseResult<{ status: string }>(
          await agent.callTool('place_order', { symbol: 'ASML', side: 'sell', quantity: 1 }),
        );
        assert.equal(order.status, 'accepted');
        return agent.identity()!;
      } finally {
        await agent.close();
      }
    };

    const first = await run(user.openUrl);
    assert.equal(first.clientKind, 'dynamic');
    assert.equal(user.plays.length, 2, 'sign-in, then step-up');
    const registered = stack.audit('client.registered').length;
    assert.equal(registered, 1);

    await stack.restart();

    // Same store, same browser: nothing to register, nobody to ask.
    const second = await run(user.openUrl);
    assert.equal(second.clientId, first.clientId);
    assert.equal(user.plays.length, 2, 'no sign-in and no consent page in the second run');
    assert.equal(stack.audit('client.registered').length, registered, 'no new registration');

    // Without tokens (say they expired), a new sign-in in a new browser: the consent is remembered.
    openTokenStore(store).forgetTokens(first.issuer, first.clientId, first.resource);
    const stranger = userAt(new Browser());
    const third = await run(stranger.openUrl, false);
    assert.equal(third.clientId, first.clientId);
    assert.equal(stranger.plays.length, 1);
    assert.deepEqual(stranger.plays[0]!.pages, ['email', 'code'], 'signed in, and asked no consent');
    assert.equal(stack.audit('client.registered').length, registered);
    const entry = readStore(store).authorizationServers[stack.issuer]!;
    assert.equal(entry.registration?.client_id, first.clientId);
    assert.equal(Object.keys(entry.tokens).length, 1, 'one token set, for this client and resource');
  });
});
