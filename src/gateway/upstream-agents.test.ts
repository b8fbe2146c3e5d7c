import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { createUpstreamAgents, IDLE_TIMEOUT_MS } from './upstream-agents.ts';

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

function post(agent: http.Agent, to = port): Promise<{ reused: boolean; keepAlive: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port: to, method: 'POST', agent, headers: { 'content-length': 2 } },
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
  // An agent idle timeout longer than the upstream's: the upstream's hint is what retires the socket.
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

test('by default an idle connection is kept at most IDLE_TIMEOUT_MS, whatever the upstream allows', async () => {
  const agents = createUpstreamAgents();
  const patient = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => res.end('ok'));
  });
  patient.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => patient.listen(0, '127.0.0.1', resolve));
  const patientPort = (patient.address() as AddressInfo).port;
  try {
    await post(agents.http, patientPort);
    assert.equal((await post(agents.http, patientPort)).reused, true);
    await new Promise((resolve) => setTimeout(resolve, IDLE_TIMEOUT_MS + 500));
    assert.equal((await post(agents.http, patientPort)).reused, false, 'retired after its idle timeout');
  } finally {
    agents.http.destroy();
    agents.https.destroy();
    patient.closeAllConnections();
    await new Promise((resolve) => patient.close(resolve));
  }
});
