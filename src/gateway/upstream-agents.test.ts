import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { createUpstreamAgents } from './upstream-agents.ts';

// An upstream that closes idle keep-alive connections after 3 s and says so (Keep-Alive: timeout=3).
const upstream = http.createServer((req, res) => {
  req.resume();
  req.on('end', () => res.end('ok'));
});
upstream.keepAliveTimeout = 3000;
let port = 0;

before(async () => {
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  port = (upstream.address() as AddressInfo).port;
});
after(() => new Promise((resolve) => upstream.close(resolve)));

function post(agent: http.Agent): Promise<{ reused: boolean; keepAlive: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, method: 'POST', agent, headers: { 'content-length': 2 } },
      (res) => {
        res.resume();
        res.on('end', () =>
          resolve({ reused: req.reusedSocket, keepAlive: String(res.headers['keep-alive']) }),
        );
      },
    );
    req.on('error', reject);
    req.end('{}');
  });
}

test('an idle upstream connection is retired before the timeout the upstream announced', async () => {
  const agents = createUpstreamAgents(30_000);
  try {
    const first = await post(agents.http);
    assert.equal(first.keepAlive, 'timeout=3', 'the upstream announces its idle timeout');
    assert.equal((await post(agents.http)).reused, true, 'a connection is reused while it is fresh');
    // 2.5 s idle: within the upstream's 3 s, but past the agent's 2 s (3 s less Node's 1 s margin).
    await new Promise((resolve) => setTimeout(resolve, 2500));
    assert.equal(
      (await post(agents.http)).reused,
      false,
      'a connection the upstream is about to close is not written to (it would be reset: a 502)',
    );
  } finally {
    agents.http.destroy();
    agents.https.destroy();
  }
});
