import assert from 'node:assert/strict';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { createLogger } from './logging.ts';
import { createRevocationListener } from './revocation-listener.ts';

// A stream that says `ready`, then (when told) goes silent with its connection up.
let heartbeat: NodeJS.Timeout | undefined;
const open: ServerResponse[] = [];
const server = createServer((_req, res) => {
  res.writeHead(200, { 'content-type': 'text/event-stream' });
  res.write('event: ready\ndata: {}\n\n');
  open.push(res);
});
let url = '';
before(async () => {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(async () => {
  clearInterval(heartbeat);
  for (const res of open) res.destroy();
  await new Promise((resolve) => server.close(resolve));
});

const until = async (check: () => boolean, ms: number) => {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) assert.fail('timed out');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
};

test('hearing() turns false soon after the stream stalls; a longer silence disconnects, logged as silent', async () => {
  const lines: Array<Record<string, unknown>> = [];
  const statuses: boolean[] = [];
  heartbeat = setInterval(() => {
    for (const res of open) res.write(': keep-alive\n\n');
  }, 50);
  const listener = createRevocationListener({
    authorizationServerUrl: url,
    clientId: 'gatehouse-gateway',
    clientSecret: 'not-checked-by-this-server-000000000',
    logger: createLogger('test', { write: (line) => lines.push(JSON.parse(line)) }),
    onEvent: () => {},
    onReset: () => {},
    onStatus: (connected) => statuses.push(connected),
    freshMs: 150,
    silenceMs: 600,
    maxBackoffMs: 10_000,
  });
  listener.start();
  try {
    await until(() => listener.hearing(), 2000);
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(listener.hearing(), true, 'heartbeats keep it heard');
    clearInterval(heartbeat);
    const stalled = Date.now();
    await until(() => !listener.hearing(), 1000);
    assert.ok(Date.now() - stalled < 400, 'distrusted within about freshMs');
    assert.equal(listener.status().connected, true, 'still connected: only the caches distrust it');
    await until(() => !listener.status().connected, 2000);
    const warning = lines.find((line) =>
      line.message?.toString().startsWith('revocation events unavailable'),
    );
    assert.equal(warning?.reason, 'silent');
    assert.deepEqual(statuses, [false, true, false]);
  } finally {
    await listener.stop();
  }
});
