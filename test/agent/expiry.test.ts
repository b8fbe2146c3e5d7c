/**
 * An expired access token: the gateway finds it inactive and the MCP server answers 401 (the gateway
 * adds error="invalid_token"), and the agent refreshes when it
 * holds a refresh token, else signs in again; either way the call goes through.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createAgent } from '../../src/agent/index.ts';
import { startTestStack, type TestStack } from '../helpers/stack.ts';
import { parseResult, readStore, storeFile, userAt } from './support.ts';

/** Short enough to wait for, long enough that a busy machine still uses each token before it expires. */
const TTL_SECONDS = 3;

for (const refresh of [true, false]) {
  describe(`an expired token, ${refresh ? 'with' : 'without'} a refresh token`, () => {
    let stack: TestStack;
    before(async () => {
      stack = await startTestStack({
        authorizationServer: {
          // The console agent is a public client: it gets refresh tokens only when they are allowed.
          refreshTokens: { enabled: refresh, clients: { cimd: true, publicClients: true } },
          dynamicRegistration: { maxAccessTokenTtlSeconds: TTL_SECONDS },
        },
      });
    });
    after(() => stack.close());

    test(refresh ? 'is refreshed, without the user' : 'is replaced by signing in again', async () => {
      const store = storeFile();
      const user = userAt();
      const trace: string[] = [];
      const agent = createAgent({
        serverUrl: stack.mcpUrl,
        storePath: store,
        openUrl: user.openUrl,
        trace: (line) => trace.push(line),
      });
      try {
        parseResult(await agent.callTool('list_stocks'));
        const tokens = () => Object.values(readStore(store).authorizationServers[stack.issuer]!.tokens)[0]!;
        const first = tokens();
        assert.equal(Boolean(first.refresh_token), refresh);
        const unauthorized = () => trace.filter((line) => line.startsWith('HTTP ← 401')).length;
        const before = { unauthorized: unauthorized(), plays: user.plays.length, trace: trace.length };
        await sleep(TTL_SECONDS * 1000 + 1000);

        parseResult(await agent.callTool('list_stocks'));
        // (Through the phantom-token gateway an inactive token is dropped: the 401 is the no-token one.)
        assert.equal(unauthorized(), before.unauthorized + 1, 'the expired token was refused once');
        assert.notEqual(tokens().access_token, first.access_token, 'a new access token');
        const after = trace.slice(before.trace).join('\n');
        if (refresh) {
          assert.equal(user.plays.length, before.plays, 'no sign-in');
          assert.match(after, /grant_type=refresh_token/);
        } else {
          assert.equal(user.plays.length, before.plays + 1, 'a new authorization');
          assert.doesNotMatch(after, /grant_type=refresh_token/);
        }
      } finally {
        await agent.close();
      }
    });
  });
}
