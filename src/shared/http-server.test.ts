/**
 * The hardened listener with real sockets on loopback: slow connections are dropped on time,
 * legitimate requests are served while slow connections fill the caps (from the same address and
 * from others), the per-address cap, eviction order, and the drain on close.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { type IncomingMessage, request, type ServerResponse } from 'node:http';
import { connect, type Socket } from 'node:net';
import path from 'node:path';
import { afterEach, describe, test } from 'node:test';
import { parseConfig } from './config/load.ts';
import { type HttpConfig, httpSchema } from './config/schema.ts';
import { createHttpServer, type HttpServer } from './http-server.ts';
import { createLogger } from './logging.ts';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

interface Listener {
  http: HttpServer;
  port: number;
  logs: string[];
  /** Connections the server has accepted so far (its own 'connection' events). */
  accepted(): number;
}

const open: Listener[] = [];
const sockets: Socket[] = [];

afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy();
  await Promise.all(open.splice(0).map((listener) => listener.http.close({ deadline: Date.now() })));
});

async function start(handler: Handler, settings: Partial<HttpConfig> = {}): Promise<Listener> {
  const logs: string[] = [];
  const logger = createLogger('test', { level: 'debug', write: (line) => logs.push(line) });
  const http = createHttpServer(handler, httpSchema.parse(settings), logger);
  let accepted = 0;
  http.server.on('connection', () => {
    accepted += 1;
  });
  const port = await http.listen('127.0.0.1', 0, 'test.port');
  const listener = { http, port, logs, accepted: () => accepted };
  open.push(listener);
  return listener;
}

/** Answers with a fixed length, so a raw connection's text ends with the body. */
function answer(res: ServerResponse, status: number, body: string) {
  res.writeHead(status, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

const ok: Handler = (_req, res) => answer(res, 200, 'ok');

async function until(predicate: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const started = Date.now();
  while (!predicate()) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

interface RawConnection {
  socket: Socket;
  /** Everything the server sent. */
  received(): string;
  closed: boolean;
  whenClosed: Promise<void>;
}

/** A raw TCP connection from `localAddress` that writes `data` once connected. */
async function rawConnection(port: number, data: string, localAddress = '127.0.0.1'): Promise<RawConnection> {
  const socket = connect({ port, host: '127.0.0.1', localAddress });
  sockets.push(socket);
  let text = '';
  socket.on('data', (chunk) => {
    text += chunk;
  });
  socket.on('error', () => {});
  const connection: RawConnection = {
    socket,
    received: () => text,
    closed: false,
    whenClosed: new Promise<void>((resolve) => {
      socket.once('close', () => {
        connection.closed = true;
        resolve();
      });
    }),
  };
  socket.setTimeout(5000, () => socket.destroy(new Error('not connected within 5 s')));
  await once(socket, 'connect');
  socket.setTimeout(0);
  if (data) socket.write(data);
  return connection;
}

/** A slowloris connection: the request line and one header, never the end of the headers. */
const slowConnection = (port: number, localAddress?: string) =>
  rawConnection(port, 'GET / HTTP/1.1\r\nHost: localhost\r\n', localAddress);

/** Opens slow connections one by one, each accepted by the server before the next. */
async function slowConnections(listener: Listener, count: number, localAddress?: string) {
  const connections: RawConnection[] = [];
  for (let i = 0; i < count; i += 1) {
    const accepted = listener.accepted();
    connections.push(await slowConnection(listener.port, localAddress));
    await until(() => listener.accepted() > accepted, 'the server to accept the connection');
  }
  return connections;
}

interface Answer {
  status: number;
  headers: IncomingMessage['headers'];
  body: string;
}

/** One GET on a fresh connection from `localAddress`, headers sent at once; fails after 10 s. */
function get(port: number, pathname = '/', localAddress = '127.0.0.1'): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: pathname, localAddress, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => {
        body += chunk;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      res.on('error', reject);
    });
    req.setTimeout(10_000, () => req.destroy(new Error('no answer within 10 s')));
    req.on('error', reject);
    req.end();
  });
}

/** Parses the status line of what a raw connection received. */
const statusOf = (text: string) => Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);

describe('timeouts', () => {
  test('a headers timeout longer than the request timeout is a configuration error', () => {
    assert.throws(
      () => parseConfig({ http: { headersTimeoutSeconds: 40 } }),
      /http\.headersTimeoutSeconds: must not be longer than requestTimeoutSeconds/,
    );
    assert.equal(parseConfig({ http: { headersTimeoutSeconds: 30 } }).http.requestTimeoutSeconds, 30);
  });

  test('a connection that never finishes its headers gets 408 and is closed soon after headersTimeout', async () => {
    const listener = await start(ok, { headersTimeoutSeconds: 1, requestTimeoutSeconds: 5 });
    const slow = await slowConnection(listener.port);
    const silent = await rawConnection(listener.port, '');
    // Node's default check runs every 30 s; the listener checks every second. The wait allows a
    // loaded machine plenty of slack and still fails if only the 30 s check closed them.
    await Promise.race([
      Promise.all([slow.whenClosed, silent.whenClosed]),
      new Promise((resolve) => setTimeout(resolve, 6000)),
    ]);
    assert.equal(slow.closed, true, 'the slow connection is closed');
    assert.equal(silent.closed, true, 'the connection that sent nothing is closed');
    assert.equal(statusOf(slow.received()), 408);
  });

  test('a request whose body does not arrive within requestTimeout gets 408', async () => {
    const listener = await start(
      (req, res) => {
        req.resume();
        req.on('error', () => {});
        req.on('end', () => ok(req, res));
      },
      { headersTimeoutSeconds: 1, requestTimeoutSeconds: 2 },
    );
    const slow = await rawConnection(
      listener.port,
      'POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n0123456789',
    );
    await Promise.race([slow.whenClosed, new Promise((resolve) => setTimeout(resolve, 7000))]);
    assert.equal(slow.closed, true);
    assert.equal(statusOf(slow.received()), 408);
  });
});

describe('connection caps', () => {
  test('legitimate requests are served while slow connections from several addresses fill the listener', async () => {
    const listener = await start(ok, { maxConnections: 30, maxConnectionsPerAddress: 1000 });
    const addresses = ['127.0.0.1', '127.0.0.2', '127.0.0.3'];
    const slow: RawConnection[] = [];
    for (const address of addresses) slow.push(...(await slowConnections(listener, 15, address)));
    // 45 slow connections against a cap of 30: 15 were evicted to make room, from the busiest
    // address each time, its oldest first, so the three end up holding about a third each.
    await until(() => slow.filter((c) => c.closed).length === 15, 'the oldest slow connections closed');
    const held = addresses.map((_address, a) => slow.slice(a * 15, a * 15 + 15));
    for (const connections of held) {
      const closed = connections.map((c) => c.closed);
      assert.deepEqual(
        closed,
        [...closed].sort((x, y) => Number(y) - Number(x)),
        'the oldest of an address first',
      );
    }
    const counts = held.map((connections) => connections.filter((c) => !c.closed).length);
    assert.ok(Math.max(...counts) - Math.min(...counts) <= 2, `balanced: ${counts.join(', ')}`);
    for (let round = 0; round < 6; round += 1) {
      const address = addresses[round % addresses.length]!;
      slow.push(...(await slowConnections(listener, 5, address)));
      const answer = await get(listener.port, '/', address);
      assert.equal(answer.status, 200, `legitimate request ${round} from ${address}`);
      assert.equal(answer.body, 'ok');
    }
    assert.ok(
      slow.slice(-20).every((c) => !c.closed),
      'the newest slow connections are still held: the cap, not a timeout, made the room',
    );
    assert.ok(listener.logs.some((line) => line.includes('connection limit reached')));
  });

  test('a client with one connection outlives a busy address: the busy address is evicted first, however old the client is', async () => {
    const listener = await start(ok, { maxConnections: 12, maxConnectionsPerAddress: 1000 });
    // The client's connection is the oldest: accepted, its request not read yet (as when the server
    // accepts a batch of connections before reading any).
    const client = await rawConnection(listener.port, '', '127.0.0.12');
    await until(() => listener.accepted() === 1, 'the client connection accepted');
    const slow = await slowConnections(listener, 20, '127.0.0.13');
    // 21 connections against a cap of 12: nine evicted, all of them the busy address's, oldest first.
    await until(() => slow.filter((c) => c.closed).length === 9, 'the busy address held to the cap');
    assert.deepEqual(
      slow.map((c) => c.closed),
      slow.map((_c, i) => i < 9),
    );
    assert.equal(client.closed, false, 'the client with one connection was not evicted');
    client.socket.write('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n');
    await until(() => client.received().endsWith('ok'), 'the client answered');
    assert.equal(statusOf(client.received()), 200);
  });

  test('slow bodies too young to evict do not lock a client out: a busy address loses its own first', async () => {
    const held: ServerResponse[] = [];
    const listener = await start(
      (req, res) => {
        if (req.method === 'POST') held.push(res);
        else ok(req, res);
      },
      {
        headersTimeoutSeconds: 10,
        requestTimeoutSeconds: 60,
        maxConnections: 6,
        maxConnectionsPerAddress: 1000,
      },
    );
    const bodies: RawConnection[] = [];
    for (let i = 0; i < 6; i += 1) {
      bodies.push(
        await rawConnection(
          listener.port,
          'POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000\r\n\r\n{',
          '127.0.0.14',
        ),
      );
      await until(() => held.length === i + 1, 'the slow body to arrive');
    }
    // Six bodies a second old fill the listener; the oldest-first order alone would refuse a newcomer.
    const answer = await get(listener.port, '/', '127.0.0.15');
    assert.equal(answer.status, 200, 'the client is served');
    await until(() => bodies.filter((c) => c.closed).length === 1, 'one slow body evicted');
    assert.equal(bodies[0]!.closed, true, 'the oldest of the busy address');
  });

  test('a legitimate request is served from an address whose own cap slow connections fill', async () => {
    const listener = await start(ok, { maxConnections: 100, maxConnectionsPerAddress: 10 });
    const slow = await slowConnections(listener, 25, '127.0.0.4');
    await until(() => slow.filter((c) => c.closed).length === 15, 'the address held to its cap');
    const answer = await get(listener.port, '/', '127.0.0.4');
    assert.equal(answer.status, 200);
    // Another address is not affected by the first one's cap.
    assert.equal((await get(listener.port, '/', '127.0.0.5')).status, 200);
  });

  test('an address whose every connection is a request being answered is refused with 503; others are served', async () => {
    const held: ServerResponse[] = [];
    const listener = await start(
      (req, res) => {
        if (req.url === '/hold') held.push(res);
        else ok(req, res);
      },
      { maxConnections: 100, maxConnectionsPerAddress: 3 },
    );
    const holding: RawConnection[] = [];
    for (let i = 0; i < 3; i += 1) {
      holding.push(
        await rawConnection(listener.port, 'GET /hold HTTP/1.1\r\nHost: localhost\r\n\r\n', '127.0.0.6'),
      );
      await until(() => held.length === i + 1, 'the request to be held');
    }
    const refused = await rawConnection(listener.port, '', '127.0.0.6');
    await refused.whenClosed;
    assert.equal(statusOf(refused.received()), 503);
    assert.match(refused.received(), /\r\nRetry-After: 1\r\n/);
    assert.match(refused.received(), /"error":"temporarily_unavailable"/);
    assert.equal((await get(listener.port, '/', '127.0.0.7')).status, 200, 'another address is served');
    assert.ok(
      holding.every((c) => !c.closed),
      'requests being answered are never evicted',
    );
    for (const res of held) answer(res, 200, 'done');
    await until(() => holding.every((c) => c.received().endsWith('done')), 'the held requests answered');
    // Now idle keep-alive connections: evictable, so the address is served again.
    assert.equal((await get(listener.port, '/', '127.0.0.6')).status, 200);
  });

  test('eviction order: headers pending first, then idle keep-alive, then a slow body, then refusal', async () => {
    const held: ServerResponse[] = [];
    const listener = await start(
      (req, res) => {
        if (req.url === '/hold') held.push(res);
        else ok(req, res);
      },
      {
        headersTimeoutSeconds: 1,
        requestTimeoutSeconds: 60,
        maxConnections: 100,
        maxConnectionsPerAddress: 3,
      },
    );
    const address = '127.0.0.8';
    const idle = await rawConnection(listener.port, 'GET / HTTP/1.1\r\nHost: localhost\r\n\r\n', address);
    await until(() => idle.received().endsWith('ok'), 'the first response');
    const slowBody = await rawConnection(
      listener.port,
      'POST /hold HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n0123456789',
      address,
    );
    await until(() => held.length === 1, 'the slow-body request to arrive');
    const pending = await rawConnection(listener.port, '', address);
    await until(() => listener.accepted() === 3, 'three connections accepted');

    // The address is at its cap (3). Each newcomer evicts one, cheapest first.
    const second = await rawConnection(
      listener.port,
      'GET /hold HTTP/1.1\r\nHost: localhost\r\n\r\n',
      address,
    );
    await pending.whenClosed;
    assert.equal(idle.closed, false, 'the idle connection outlives the one with headers pending');
    await until(() => held.length === 2, 'the second held request');

    const third = await rawConnection(
      listener.port,
      'GET /hold HTTP/1.1\r\nHost: localhost\r\n\r\n',
      address,
    );
    await idle.whenClosed;
    assert.equal(slowBody.closed, false);
    await until(() => held.length === 3, 'the third held request');

    // The slow body becomes evictable once it is older than headersTimeout (1 s) and still incomplete.
    await new Promise((resolve) => setTimeout(resolve, 1200));
    const fourth = await rawConnection(
      listener.port,
      'GET /hold HTTP/1.1\r\nHost: localhost\r\n\r\n',
      address,
    );
    await slowBody.whenClosed;
    await until(() => held.length === 4, 'the fourth held request');

    const refused = await rawConnection(listener.port, '', address);
    await refused.whenClosed;
    assert.equal(statusOf(refused.received()), 503, 'nothing left to evict: refused');
    assert.ok([second, third, fourth].every((c) => !c.closed));
  });

  test('the listeners of a process never hold more than half its open-file limit, so accept() keeps working', async () => {
    // A child process with 128 file descriptors; the listener's own cap (10000) would exceed them.
    const module = path.join(import.meta.dirname, 'http-server.ts');
    const schema = path.join(import.meta.dirname, 'config/schema.ts');
    const script = `
      import { createHttpServer } from ${JSON.stringify(module)};
      import { httpSchema } from ${JSON.stringify(schema)};
      const logger = { debug() {}, info() {}, warn() {}, error() {}, audit() {}, child() { return logger; } };
      const http = createHttpServer((req, res) => res.end('ok'), httpSchema.parse({}), logger);
      http.server.on('error', (error) => { console.log('server error ' + error.code); process.exit(3); });
      const port = await http.listen('127.0.0.1', 0, 'port');
      console.log('port ' + port);
    `;
    const child = spawn(
      'bash',
      ['-c', 'ulimit -n 128 && exec "$0" --input-type=module -e "$1"', process.execPath, script],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    try {
      let output = '';
      child.stdout.on('data', (chunk) => {
        output += chunk;
      });
      await until(() => /port \d+/.test(output), 'the child to listen');
      const port = Number(/port (\d+)/.exec(output)![1]);
      const slow: RawConnection[] = [];
      for (let i = 0; i < 200; i += 1) slow.push(await slowConnection(port));
      // 64 slots (half of 128): the rest of the 200 were evicted, oldest first.
      await until(() => slow.filter((c) => c.closed).length >= 136, 'evictions down to the budget');
      assert.equal((await get(port, '/')).status, 200);
      assert.equal(child.exitCode, null, 'the child is still running');
      assert.doesNotMatch(output, /server error/);
    } finally {
      child.kill('SIGKILL');
    }
  });
});

describe('drain on close', () => {
  test('requests in flight finish with their status, new connections are refused, keep-alive closes after', async () => {
    const arrived: ServerResponse[] = [];
    const listener = await start((req, res) => {
      if (req.url === '/stream') {
        // Headers go out before the drain begins, advertising keep-alive.
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.write('part one, ');
      }
      arrived.push(res);
    });
    const keepAlive = (pathname: string) =>
      rawConnection(listener.port, `GET ${pathname} HTTP/1.1\r\nHost: localhost\r\n\r\n`);
    const plain = await keepAlive('/slow');
    const streaming = await keepAlive('/stream');
    const idle = await keepAlive('/fast');
    await until(() => arrived.length === 3, 'three requests in flight');
    answer(arrived[2]!, 200, 'fast');
    await until(() => idle.received().endsWith('fast'), 'the fast response');
    await until(() => streaming.received().includes('part one'), 'the streamed headers');

    const closing = listener.http.close();
    await idle.whenClosed;
    assert.equal(plain.closed, false, 'an idle keep-alive connection closes at once, in-flight ones do not');
    await assert.rejects(get(listener.port, '/'), { code: 'ECONNREFUSED' });

    answer(arrived[0]!, 201, 'created');
    arrived[1]!.end('part two');
    await Promise.all([plain.whenClosed, streaming.whenClosed]);
    assert.equal(statusOf(plain.received()), 201);
    assert.match(plain.received(), /\r\nConnection: close\r\n/i);
    assert.ok(plain.received().endsWith('created'));
    assert.equal(statusOf(streaming.received()), 200);
    assert.match(streaming.received(), /part one, .*part two/s);
    await closing;
    assert.ok(listener.logs.some((line) => line.includes('"finished":2') && line.includes('"cut":0')));
  });

  test('requests still in flight at the drain timeout are cut, and close resolves', async () => {
    let arrived = 0;
    const listener = await start(
      () => {
        arrived += 1;
      },
      { drainTimeoutSeconds: 1 },
    );
    const straggler = await rawConnection(listener.port, 'GET /never HTTP/1.1\r\nHost: localhost\r\n\r\n');
    const silent = await rawConnection(listener.port, '');
    await until(() => arrived === 1, 'the request to arrive');
    const started = Date.now();
    await listener.http.close();
    assert.ok(Date.now() - started >= 900, 'close waited for the drain timeout');
    await Promise.all([straggler.whenClosed, silent.whenClosed]);
    assert.equal(straggler.received(), '', 'the straggler got no answer: it was cut');
    assert.ok(listener.logs.some((line) => line.includes('"cut":1')));
  });

  test('without requests in flight, close is immediate and also closes connections that sent nothing', async () => {
    const listener = await start(ok, { drainTimeoutSeconds: 30 });
    const silent = await rawConnection(listener.port, '');
    await until(() => listener.accepted() === 1, 'the connection accepted');
    await listener.http.close();
    await silent.whenClosed;
  });
});
