/**
 * Several accept queues on one port, with real sockets on loopback: the port is bound ACCEPT_QUEUES
 * times (Linux), every connection whichever queue took it is served by the one HTTP server under its
 * caps, a port already held is still refused, and closing stops every queue.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { afterEach, test } from 'node:test';
import { ACCEPT_QUEUES } from './accept-queues.ts';
import { httpSchema } from './config/schema.ts';
import { createHttpServer, type HttpServer } from './http-server.ts';
import { createLogger } from './logging.ts';

const linux = process.platform === 'linux';
const open: HttpServer[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((http) => http.close({ deadline: Date.now() })));
});

async function start(): Promise<{ http: HttpServer; port: number; accepted: () => number }> {
  const http = createHttpServer(
    (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '2' });
      res.end('ok');
    },
    httpSchema.parse({}),
    createLogger('test', { level: 'error', write: () => {} }),
  );
  let accepted = 0;
  http.server.on('connection', () => {
    accepted += 1;
  });
  open.push(http);
  const port = await http.listen('127.0.0.1', 0, 'test.port');
  return { http, port, accepted: () => accepted };
}

/** Listening TCP sockets on `port` in this network namespace (/proc/net/tcp, state 0A). */
function listeningSockets(port: number): number {
  const hex = port.toString(16).toUpperCase().padStart(4, '0');
  return readFileSync('/proc/net/tcp', 'utf8')
    .split('\n')
    .filter((line) => {
      const fields = line.trim().split(/\s+/);
      return fields[1]?.endsWith(`:${hex}`) && fields[3] === '0A';
    }).length;
}

/** Sends one request on a new connection and returns the status line. */
function oneRequest(port: number, localAddress: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, localAddress });
    let text = '';
    socket.on('connect', () => socket.write('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'));
    socket.on('data', (chunk) => {
      text += chunk.toString('latin1');
    });
    socket.on('end', () => resolve(text.split('\r\n', 1)[0]!));
    socket.on('error', reject);
  });
}

test('the port is bound once per accept queue', {
  skip: !linux && 'SO_REUSEPORT queues are Linux only',
}, async () => {
  const { port } = await start();
  assert.equal(listeningSockets(port), ACCEPT_QUEUES);
});

test('connections from many addresses, whichever queue took them, are all served by the one server', async () => {
  const { port, accepted } = await start();
  // Different source addresses hash to different queues.
  const statuses = await Promise.all(
    Array.from({ length: 64 }, (_, i) => oneRequest(port, `127.0.${Math.floor(i / 8)}.${(i % 8) + 1}`)),
  );
  assert.deepEqual(new Set(statuses), new Set(['HTTP/1.1 200 OK']));
  // Every one went through the server's own 'connection' handling (the caps count them there).
  assert.equal(accepted(), 64);
});

test('a port already held (by a server that binds with SO_REUSEPORT too) is refused with the setting to change', async () => {
  const { port } = await start();
  const second = createHttpServer(() => {}, httpSchema.parse({}), createLogger('test', { write: () => {} }));
  await assert.rejects(second.listen('127.0.0.1', port, 'test.port'), /already in use.*test\.port/);
});

test('closing stops every queue: no new connection is accepted', async () => {
  const { http, port } = await start();
  await http.close({ deadline: Date.now() });
  open.splice(0);
  const attempts = await Promise.all(
    Array.from({ length: 32 }, (_, i) =>
      oneRequest(port, `127.0.9.${i + 1}`).then(
        () => 'served',
        (error: NodeJS.ErrnoException) => error.code,
      ),
    ),
  );
  assert.deepEqual(new Set(attempts), new Set(['ECONNREFUSED']));
  if (linux) assert.equal(listeningSockets(port), 0);
});
