/**
 * A small round-robin HTTP balancer for multi-instance tests: each request goes to the next
 * backend in turn, passed on with its Host header, as a load balancer in front of several
 * instances of one component does. Counts what each backend served.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Balancer {
  url: string;
  port: number;
  /** Requests each backend answered, in the order of `backends`. */
  served: number[];
  close(): Promise<void>;
}

/** A free loopback port now (it may be taken again before use; tests take it at once). */
export async function freePort(): Promise<number> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** `backends` is read at each request: a test may change a port it had to pick again. */
export async function startBalancer(backends: number[], port = 0): Promise<Balancer> {
  let next = 0;
  const served = backends.map(() => 0);
  const server = http.createServer((req, res) => {
    const index = next;
    next = (next + 1) % backends.length;
    const upstream = http.request(
      { host: '127.0.0.1', port: backends[index], method: req.method, path: req.url, headers: req.headers },
      (answer) => {
        served[index]! += 1;
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on('error', () => {
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
      res.end('backend unreachable');
    });
    req.pipe(upstream);
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
