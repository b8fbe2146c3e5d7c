import assert from 'node:assert/strict';
import { once } from 'node:events';
import * as net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { createLogger } from '../../shared/logging.ts';
import { createProviderFetch } from './provider-fetch.ts';
import { OutboundRequestError } from './vetted-fetch.ts';

/** A TCP listener that only counts connections: any connection at all is a failure of the vetting. */
let connections = 0;
let port = 0;
const counter = net.createServer((socket) => {
  connections += 1;
  socket.destroy();
});
before(async () => {
  counter.listen(0, '127.0.0.1');
  await once(counter, 'listening');
  port = (counter.address() as net.AddressInfo).port;
});
after(() => counter.close());

const logs: string[] = [];
const logger = createLogger('test', { level: 'debug', write: (line) => logs.push(line) });

function fetcher(lookup?: (host: string) => Promise<Array<{ address: string; family: number }>>) {
  return createProviderFetch({
    allowLoopback: false,
    timeoutMs: 1000,
    maxBytes: 1024,
    logger,
    ...(lookup ? { lookup } : {}),
  });
}

async function refusedReason(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof OutboundRequestError, String(error));
    return error.reason;
  }
  assert.fail('the fetch was not refused');
}

describe('oidc-provider fetches go through the vetted transport', () => {
  test('an http URL is refused before any connection (jwks_uri in cleartext)', async () => {
    const before = connections;
    assert.equal(await refusedReason(fetcher()(`http://127.0.0.1:${port}/jwks`)), 'invalid_url');
    assert.equal(connections, before);
  });

  for (const host of ['127.0.0.1', '10.0.0.1', '169.254.169.254', '[::1]', '[::ffff:127.0.0.1]', '0.0.0.0']) {
    test(`https to the special-use address ${host} is refused before connecting`, async () => {
      const before = connections;
      assert.equal(await refusedReason(fetcher()(`https://${host}:${port}/jwks`)), 'forbidden_address');
      assert.equal(connections, before, 'no connection was opened');
    });
  }

  test('a name that resolves to a private address is refused before connecting (no port-scan oracle)', async () => {
    const before = connections;
    const lookup = async () => [{ address: '127.0.0.1', family: 4 }];
    assert.equal(
      await refusedReason(fetcher(lookup)(`https://jwks.example:${port}/keys`)),
      'forbidden_address',
    );
    const mixed = async () => [
      { address: '93.184.216.34', family: 4 },
      { address: '10.0.0.1', family: 4 },
    ];
    assert.equal(
      await refusedReason(fetcher(mixed)(`https://jwks.example:${port}/keys`)),
      'forbidden_address',
    );
    assert.equal(connections, before);
  });

  test('only GET is made', async () => {
    assert.equal(await refusedReason(fetcher()('https://example.com/x', { method: 'POST' })), 'invalid_url');
  });

  test('refusals are logged with host and reason only', () => {
    const refused = logs
      .map((line) => JSON.parse(line))
      .filter((r) => r.message === 'outbound fetch refused');
    assert.ok(refused.length >= 5);
    for (const record of refused) {
      assert.equal(typeof record.host, 'string');
      assert.equal(typeof record.reason, 'string');
    }
  });
});
