import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { ConfigError, parseConfig } from './config/load.ts';
import { createMetrics, type MetricsSettings } from './metrics.ts';

/** A real listener with the metrics of `settings`, on `host`; every other path answers 204. */
async function serve(settings: MetricsSettings, host = '127.0.0.1') {
  const metrics = createMetrics('test', settings);
  const server = createServer(
    metrics.instrument(
      (_req, res) => {
        res.writeHead(204);
        res.end();
      },
      () => 'everything',
    ),
  );
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const { port } = server.address() as AddressInfo;
  const base = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  return { base, metrics, close: () => new Promise((resolve) => server.close(resolve)) };
}

const loopback = { allowFrom: ['127.0.0.0/8', '::1/128'], token: undefined };

test('metrics: loopback callers read them; the request counter counts what was answered', async () => {
  const server = await serve(loopback);
  try {
    await (await fetch(`${server.base}/anything`)).text();
    await (await fetch(`${server.base}/else?x=1`)).text();
    const scrape = await fetch(`${server.base}/metrics`);
    assert.equal(scrape.status, 200);
    assert.equal(scrape.headers.get('cache-control'), 'no-store');
    const text = await scrape.text();
    assert.match(text, /gatehouse_http_requests_total\{route="everything",status="204",component="test"\} 2/);
    // The scrape itself is not a request of the component's.
    assert.doesNotMatch(text, /route="metrics"/);
    assert.equal((await fetch(`${server.base}/metrics`, { method: 'POST' })).status, 405);
  } finally {
    await server.close();
  }
});

test('metrics: IPv6 loopback is matched by ::1/128, and not by an IPv4 range alone', async () => {
  const both = await serve(loopback, '::1').catch(() => undefined);
  if (!both) return; // no IPv6 loopback on this machine
  const v4only = await serve({ allowFrom: ['127.0.0.0/8'], token: undefined }, '::1');
  try {
    assert.equal((await fetch(`${both.base}/metrics`)).status, 200);
    assert.equal((await fetch(`${v4only.base}/metrics`)).status, 403);
  } finally {
    await both.close();
    await v4only.close();
  }
});

test('metrics: the bearer token is compared whole; a prefix, a longer value or another scheme is refused', async () => {
  const token = 't'.repeat(40);
  const server = await serve({ allowFrom: [], token });
  try {
    const status = async (authorization?: string) =>
      (await fetch(`${server.base}/metrics`, authorization ? { headers: { authorization } } : {})).status;
    assert.equal(await status(), 403);
    assert.equal(await status(`Bearer ${token}`), 200);
    assert.equal(await status(`bearer ${token}`), 200);
    assert.equal(await status(`Bearer ${token.slice(1)}`), 403);
    assert.equal(await status(`Bearer ${token}t`), 403);
    assert.equal(await status(`Basic ${token}`), 403);
  } finally {
    await server.close();
  }
});

test('metrics: behind a reverse proxy (trustProxy) only the token opens them, even from loopback', async () => {
  const token = 'p'.repeat(40);
  const server = await serve({ ...loopback, token, behindProxy: true });
  try {
    assert.equal((await fetch(`${server.base}/metrics`)).status, 403);
    const allowed = await fetch(`${server.base}/metrics`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(allowed.status, 200);
    await allowed.text();
  } finally {
    await server.close();
  }
});

test('configuration: metrics.allowFrom takes CIDR ranges, and says so when given something else', () => {
  assert.deepEqual(parseConfig({}).metrics, { allowFrom: ['127.0.0.0/8', '::1/128'] });
  assert.throws(
    () => parseConfig({ metrics: { allowFrom: ['localhost'] } }),
    (error: unknown) => error instanceof ConfigError && /metrics\.allowFrom\.0.*CIDR/s.test(error.message),
  );
  assert.throws(() => parseConfig({ metrics: { token: 'short' } }), ConfigError);
});
