import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, beforeEach, test } from 'node:test';
import { createLogger } from './logging.ts';
import { createRevocationListener } from './revocation-listener.ts';

// A revocation stream at position `s:5` that says `ready` and then, unless told, nothing; and the
// quiet stream's question, answered as `latest` says (or never, when it is undefined).
const state = { latest: 5 as number | undefined, heartbeat: false };
const streams: ServerResponse[] = [];
const streamRequests: IncomingMessage[] = [];
const server = createServer((req, res) => {
  if (req.url === '/events/revocations/latest') {
    if (state.latest === undefined) return; // never answered
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ stream: 's', latest: state.latest }));
    return;
  }
  streamRequests.push(req);
  res.writeHead(200, { 'content-type': 'text/event-stream' });
  res.write('id: s:5\nevent: reset\ndata: {}\n\nevent: ready\ndata: {}\n\n');
  streams.push(res);
});
const heartbeat = setInterval(() => {
  if (state.heartbeat) for (const res of streams) res.write(': keep-alive\n\n');
}, 40);
let url = '';
before(async () => {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
beforeEach(() => {
  state.latest = 5;
  state.heartbeat = false;
  streamRequests.length = 0;
});
after(async () => {
  clearInterval(heartbeat);
  for (const res of streams) res.destroy();
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const until = async (check: () => boolean, ms: number) => {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) assert.fail('timed out');
    await sleep(10);
  }
};

function listen(overrides: { silenceMs?: number } = {}) {
  const lines: Array<Record<string, unknown>> = [];
  const statuses: boolean[] = [];
  const listener = createRevocationListener({
    authorizationServerUrl: url,
    clientId: 'gatehouse-gateway',
    clientSecret: 'not-checked-by-this-server-000000000',
    logger: createLogger('test', { write: (line) => lines.push(JSON.parse(line)) }),
    onEvent: () => {},
    onReset: () => {},
    onStatus: (connected) => statuses.push(connected),
    freshMs: 150,
    askAfterMs: 100,
    askGraceMs: 300,
    silenceMs: overrides.silenceMs ?? 60_000,
    maxBackoffMs: 200,
  });
  listener.start();
  return { listener, lines, statuses };
}

test('heartbeats keep a stream heard; quiet but confirmed up to date, it stays heard', async () => {
  const { listener } = listen();
  try {
    state.heartbeat = true;
    await until(() => listener.hearing(), 2000);
    await sleep(400);
    assert.equal(listener.hearing(), true, 'heartbeats');
    state.heartbeat = false;
    // Quiet for much longer than freshMs: the authorization server says nothing newer exists.
    for (let i = 0; i < 8; i += 1) {
      await sleep(100);
      assert.equal(listener.hearing(), true, `confirmed at ${i * 100} ms`);
    }
  } finally {
    await listener.stop();
  }
});

test('a quiet stream behind the authorization server is distrusted at once and reconnected with Last-Event-ID', async () => {
  const { listener, lines } = listen();
  try {
    await until(() => listener.hearing(), 2000);
    state.latest = 6; // a revocation the stream holds back
    const held = Date.now();
    await until(() => !listener.hearing(), 1000);
    assert.ok(Date.now() - held < 500, 'noticed at the next question');
    await until(() => streamRequests.length >= 2, 2000);
    assert.equal(streamRequests.at(-1)!.headers['last-event-id'], 's:5', 'replay asked from where it was');
    assert.ok(lines.some((line) => String(line.message).includes('behind the authorization server')));
  } finally {
    await listener.stop();
  }
});

test('an unanswered question keeps the trust only for its grace; a long silence disconnects, logged as silent', async () => {
  const { listener, lines, statuses } = listen({ silenceMs: 1200 });
  try {
    await until(() => listener.hearing(), 2000);
    state.latest = undefined;
    const quietSince = Date.now();
    await until(() => !listener.hearing(), 2000);
    const trusted = Date.now() - quietSince;
    assert.ok(trusted >= 150 && trusted < 700, `trusted ${trusted} ms: freshMs + grace at most`);
    assert.equal(listener.status().connected, true, 'still connected: only the caches distrust it');
    await until(() => !listener.status().connected, 3000);
    const warning = lines.find((line) => String(line.message).startsWith('revocation events unavailable'));
    assert.equal(warning?.reason, 'silent');
    assert.deepEqual(statuses.slice(0, 3), [false, true, false]);
  } finally {
    await listener.stop();
  }
});
