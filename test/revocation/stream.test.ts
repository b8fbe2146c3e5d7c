/**
 * The authorization server's revocation stream (`/events/revocations`): who may listen, what a
 * listener hears (reset and every revocation kept, or a replay of what it missed, then ready, then
 * each revocation as it happens) and that a
 * listener reconnecting with Last-Event-ID gets what it missed, across a restart too.
 */
import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import {
  startTestAuthorizationServer,
  type TestAuthorizationServer,
} from '../helpers/authorization-server.ts';
import { basic, postForm, userToken } from '../helpers/oauth.ts';
import { workloadTokenRequest } from '../helpers/workload.ts';

const secret = (as: TestAuthorizationServer, id: string) =>
  readFileSync(path.join(as.dataDir, `secrets/${id}.secret`), 'utf8').trim();

/** Opens the stream and collects its messages until closed. */
async function listen(as: TestAuthorizationServer, headers: Record<string, string>) {
  const controller = new AbortController();
  const response = await fetch(`${as.issuer}/events/revocations`, { headers, signal: controller.signal });
  const messages: EventSourceMessage[] = [];
  const waiters: Array<() => void> = [];
  if (response.status === 200 && response.body) {
    const parser = createParser({
      onEvent: (message) => {
        messages.push(message);
        for (const waiter of waiters.splice(0)) waiter();
      },
    });
    const decoder = new TextDecoder();
    void (async () => {
      try {
        for await (const chunk of response.body!)
          parser.feed(decoder.decode(chunk as Uint8Array, { stream: true }));
      } catch {}
    })();
  }
  return {
    response,
    messages,
    /** Waits (at most `ms`) until a message satisfies `match`. */
    async next(match: (message: EventSourceMessage) => boolean, ms = 2000) {
      const deadline = Date.now() + ms;
      for (;;) {
        const found = messages.find(match);
        if (found) return found;
        if (Date.now() > deadline) assert.fail(`no such message; got ${JSON.stringify(messages)}`);
        await new Promise<void>((resolve) => {
          waiters.push(resolve);
          setTimeout(resolve, 50);
        });
      }
    },
    close: () => controller.abort(),
  };
}

async function workloadToken(as: TestAuthorizationServer) {
  return String((await workloadTokenRequest(as)).json.access_token);
}

async function register(as: TestAuthorizationServer) {
  const response = await fetch(`${as.issuer}/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ redirect_uris: ['http://127.0.0.1/callback'], application_type: 'native' }),
  });
  return String(((await response.json()) as { client_id: string }).client_id);
}

describe('the revocation stream', () => {
  let as: TestAuthorizationServer;
  let gateway: Record<string, string>;
  before(async () => {
    as = await startTestAuthorizationServer({
      // A listener's client secret must never match another's; a confidential DCR client gets none here.
    });
    gateway = { authorization: basic('gatehouse-gateway', secret(as, 'gatehouse-gateway')) };
  });
  after(() => as.close());

  test('only the gateway and the MCP server may listen: 401 for anyone else, nothing streamed', async () => {
    const attempts: Array<Record<string, string>> = [
      {},
      { authorization: basic('gatehouse-gateway', 'a-wrong-secret-of-sufficient-length') },
      { authorization: basic('example-workload', 'whatever-secret-of-sufficient-length') },
      { authorization: 'Bearer abc' },
    ];
    for (const headers of attempts) {
      const { response, close } = await listen(as, headers);
      assert.equal(response.status, 401, JSON.stringify(headers));
      assert.equal(((await response.json()) as { error: string }).error, 'invalid_client');
      close();
    }
    assert.ok(as.audit('revocation.stream').filter((r) => r.outcome === 'denied').length >= attempts.length);
    const mcp = await listen(as, {
      authorization: basic('gatehouse-mcp-server', secret(as, 'gatehouse-mcp-server')),
    });
    assert.equal(mcp.response.status, 200);
    assert.match(mcp.response.headers.get('content-type') ?? '', /^text\/event-stream/);
    mcp.close();

    // A quiet stream's question (which event is the latest): the same credentials, the same refusal.
    const latest = `${as.issuer}/events/revocations/latest`;
    const refused = await fetch(latest, { headers: { authorization: 'Bearer abc' } });
    assert.equal(refused.status, 401);
    assert.equal(((await refused.json()) as { error: string }).error, 'invalid_client');
    const answered = await fetch(latest, { headers: gateway });
    assert.equal(answered.status, 200);
    assert.equal(answered.headers.get('cache-control'), 'no-store');
    const body = (await answered.json()) as { stream: string; latest: number };
    assert.match(body.stream, /^[0-9a-f-]{36}$/);
    assert.equal(typeof body.latest, 'number');
  });

  test('a new listener hears reset, then ready, then each revocation as it happens', async () => {
    const stream = await listen(as, gateway);
    try {
      const reset = await stream.next((m) => m.event === 'reset');
      assert.match(reset.id ?? '', /^[0-9a-f-]{36}:\d+$/, 'the id names the stream and a position');
      await stream.next((m) => m.event === 'ready');

      // A user's token: revoking it revokes its grant.
      const clientId = await register(as);
      const { token } = await userToken({
        issuer: as.issuer,
        clientId,
        redirectUri: 'http://127.0.0.1/callback',
        scope: 'stocks:read',
      });
      const access = String(token.json.access_token);
      const started = Date.now();
      assert.equal(
        (await postForm(`${as.issuer}/revoke`, { token: access, client_id: clientId })).status,
        200,
      );
      const grant = await stream.next((m) => m.event === 'revoked' && JSON.parse(m.data).type === 'grant');
      assert.ok(Date.now() - started < 1000);
      assert.equal(typeof JSON.parse(grant.data).grant_id, 'string');
      const byHash = await stream.next((m) => m.event === 'revoked' && JSON.parse(m.data).type === 'token');
      assert.equal(
        JSON.parse(byHash.data).token_hash,
        createHash('sha256').update(access).digest('base64url'),
        'the token is named by the hash the gateway keys its cache with',
      );
      assert.ok(!stream.messages.some((m) => m.data.includes(access)), 'never the token itself');

      // A workload's token has no grant: it is named by its hash.
      const workload = await workloadToken(as);
      const revoked = await postForm(
        `${as.issuer}/revoke`,
        { token: workload },
        { authorization: basic('gatehouse-gateway', secret(as, 'gatehouse-gateway')) },
      );
      assert.equal(revoked.status, 400, 'another client may not revoke it');
    } finally {
      stream.close();
    }
  });

  test('a listener that comes back with Last-Event-ID hears what it missed, and no reset; across a restart too', async () => {
    const first = await listen(as, gateway);
    await first.next((m) => m.event === 'ready');
    const position = first.messages.filter((m) => m.id).at(-1)!.id!;
    first.close();

    const clientId = await register(as);
    const { token } = await userToken({
      issuer: as.issuer,
      clientId,
      redirectUri: 'http://127.0.0.1/callback',
      scope: 'stocks:read',
    });
    await postForm(`${as.issuer}/revoke`, { token: String(token.json.access_token), client_id: clientId });
    await as.restart();
    gateway = { authorization: basic('gatehouse-gateway', secret(as, 'gatehouse-gateway')) };

    const back = await listen(as, { ...gateway, 'last-event-id': position });
    try {
      await back.next((m) => m.event === 'ready');
      assert.ok(!back.messages.some((m) => m.event === 'reset'), 'the log kept what was missed');
      assert.ok(back.messages.some((m) => m.event === 'revoked' && JSON.parse(m.data).type === 'grant'));
    } finally {
      back.close();
    }
    // A listener that cannot resume (another stream's id, or none: a restarted instance) drops its
    // caches, then hears again every revocation still kept, before `ready`.
    const stranger = await listen(as, { ...gateway, 'last-event-id': `${randomUUID()}:5` });
    try {
      await stranger.next((m) => m.event === 'ready');
      const kinds = stranger.messages.map((m) => m.event);
      assert.equal(kinds[0], 'reset');
      assert.equal(kinds.at(-1), 'ready');
      const replayed = stranger.messages.filter((m) => m.event === 'revoked');
      assert.ok(
        replayed.some((m) => JSON.parse(m.data).type === 'grant'),
        'the grant revoked before the restart is heard again',
      );
      const ids = replayed.map((m) => Number(m.id!.split(':')[1]));
      assert.deepEqual(
        ids,
        [...ids].sort((a, b) => a - b),
        'oldest first',
      );
      assert.equal(
        stranger.messages.filter((m) => m.id).at(-1)!.id,
        position.replace(/:\d+$/, `:${ids.at(-1)}`),
      );
    } finally {
      stranger.close();
    }
  });
});
