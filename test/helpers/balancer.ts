/**
 * A small round-robin HTTP balancer for multi-instance tests: each request goes to the next
 * backend in turn, passed on with its Host header, as a load balancer in front of several
 * instances of one component does. Counts what each backend served. With `failover`, a backend
 * that refuses connections (killed) is skipped, as a balancer's health checks would skip it.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { freePort } from './ports.ts';

export interface Balancer {
  url: string;
  port: number;
  /** Requests each backend answered, in the order of `backends`. */
  served: number[];
  close(): Promise<void>;
}

export { freePort };

export interface BalancerOptions {
  /**
   * Send a request whose connection is refused to the next backend, as a load balancer's health
   * checks would (the backend never saw it, so this is safe for any method). Off: a 502.
   */
  failover?: boolean;
}

/** `backends` is read at each request: a test may change a port it had to pick again. */
export async function startBalancer(
  backends: number[],
  port = 0,
  options: BalancerOptions = {},
): Promise<Balancer> {
  let next = 0;
  const served = backends.map(() => 0);
  const server = http.createServer(async (req, res) => {
    // The body is read first, so that a request refused by one backend can be sent to another.
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    const attempt = (tries: number) => {
      const index = next;
      next = (next + 1) % backends.length;
      const upstream = http.request(
        { host: '127.0.0.1', port: backends[index], method: req.method, path: req.url, headers: req.headers },
        (answer) => {
          served[index]! += 1;
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
          // A backend that dies mid-answer (kill -9): the client sees the connection end, as it would.
          answer.on('error', () => res.destroy());
          answer.on('aborted', () => res.destroy());
        },
      );
      upstream.on('error', (error: NodeJS.ErrnoException) => {
        // Refused: the backend is down. Reset on a kept-alive connection before any answer: the
        // connection died with its backend while idle (Node's documented retry case for
        // `reusedSocket`), as load balancers retry a stale upstream keep-alive connection.
        const neverServed =
          error.code === 'ECONNREFUSED' ||
          (error.code === 'ECONNRESET' && upstream.reusedSocket && !res.headersSent);
        if (options.failover && neverServed && tries < backends.length) return attempt(tries + 1);
        if (!res.headersSent) {
          res.writeHead(502, { 'content-type': 'text/plain' });
          res.end('backend unreachable');
        } else res.destroy();
      });
      // The client gone (an aborted stream): the backend's request goes too.
      res.once('close', () => upstream.destroy());
      upstream.end(body);
    };
    attempt(1);
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const actual = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${actual}`,
    port: actual,
    served,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
