/**
 * More than one accept queue per listening port, so that new connections are accepted as fast as
 * they arrive while the server is busy.
 *
 * libuv accepts one connection per listening socket per turn of the event loop (an `strace` of the
 * authorization server under test:load showed one `accept4` per turn, never one that found the
 * queue empty). A server whose turns take 10 to 40 ms under load therefore accepts 25 to 100
 * connections a second however idle its CPU is, and `ss -ltn` showed up to 190 connections waiting
 * in its queue: a client's new connection waited 1 to 3 s before the server read a byte (the
 * gateway's 3 s introspection timeout then fired with the authorization server at 60 % of a core).
 *
 * Here the port is bound by ACCEPT_QUEUES sockets with SO_REUSEPORT (the kernel spreads incoming
 * connections over them by their address hash), each accepting one per turn, and every connection
 * they accept is handed to the one HTTP server, which treats it like its own. Where SO_REUSEPORT is
 * missing (not Linux or FreeBSD), the port is bound once, as before.
 *
 * SO_REUSEPORT would also let a second process bind the same port silently (on Linux only one of
 * the same user). A plain probe bind first keeps the old behaviour: a port that anything holds,
 * with SO_REUSEPORT or without, is refused with EADDRINUSE.
 */
import type { Server as HttpServer } from 'node:http';
import net from 'node:net';

/** Sockets per port: eight accepts per turn is well above what the test:load scenarios need. */
export const ACCEPT_QUEUES = 8;

const REUSE_PORT = process.platform === 'linux' || process.platform === 'freebsd';

function bind(server: net.Server, host: string, port: number, reusePort: boolean): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port, reusePort }, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/** Throws EADDRINUSE when anything already holds host:port. */
async function probe(host: string, port: number): Promise<void> {
  const probeServer = net.createServer();
  await bind(probeServer, host, port, false);
  await new Promise<void>((resolve) => probeServer.close(() => resolve()));
}

export interface AcceptQueues {
  /** Stops accepting on the extra sockets (the HTTP server closes its own). */
  close(): void;
}

/**
 * Binds `server` to host:port, with ACCEPT_QUEUES - 1 more sockets feeding it where the platform
 * allows; resolves once all are listening. Rejects with the bind error (EADDRINUSE and others).
 */
export async function listenWithAcceptQueues(
  server: HttpServer,
  host: string,
  port: number,
): Promise<AcceptQueues> {
  if (!REUSE_PORT) {
    await bind(server, host, port, false);
    return { close: () => {} };
  }
  // Port 0 asks the kernel for a free port: nothing else can hold it yet.
  if (port !== 0) await probe(host, port);
  await bind(server, host, port, true);
  const bound = (server.address() as net.AddressInfo).port;
  const extras: net.Server[] = [];
  try {
    for (let i = 1; i < ACCEPT_QUEUES; i++) {
      // noDelay as node:http sets it for its own connections (http.createServer's default).
      const extra = net.createServer({ noDelay: true }, (socket) => server.emit('connection', socket));
      await bind(extra, host, bound, true);
      extras.push(extra);
    }
  } catch (error) {
    for (const extra of extras) extra.close();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    throw error;
  }
  return {
    close() {
      for (const extra of extras) extra.close();
    },
  };
}
