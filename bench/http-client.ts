/**
 * A minimal HTTP/1.1 client on node:http with a keep-alive agent: the load generator's own cost
 * stays small and predictable (no fetch/undici machinery between the timer and the socket).
 */
import http from 'node:http';

/**
 * Idle sockets are retired after this long, as the gateway's upstream agents do
 * (src/gateway/upstream-agents.ts): the servers close an idle keep-alive connection after 5 s, and
 * a request written onto one just as the server closes it fails with ECONNRESET. Without a
 * `timeout` of its own, Node's agent ignores the server's `Keep-Alive: timeout=5` hint and keeps
 * idle sockets until the server closes them; between the bench's windows a chain's callers sit idle
 * for longer than that.
 */
export const IDLE_SOCKET_TIMEOUT_MS = 2000;

export interface HttpAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

export function createKeepAliveAgent(maxSockets: number): http.Agent {
  return new http.Agent({
    keepAlive: true,
    maxSockets,
    maxFreeSockets: maxSockets,
    timeout: IDLE_SOCKET_TIMEOUT_MS,
  });
}

export function request(
  agent: http.Agent,
  url: URL,
  init: { method: string; headers: Record<string, string>; body?: string },
): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const headers = { ...init.headers };
    if (init.body !== undefined) headers['content-length'] = String(Buffer.byteLength(init.body));
    const req = http.request(
      {
        host: url.hostname,
        port: url.port,
        path: `${url.pathname}${url.search}`,
        method: init.method,
        headers,
        agent,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString('utf8'),
          }),
        );
        res.on('error', reject);
      },
    );
    req.setTimeout(30_000, () => req.destroy(new Error(`no answer from ${url.href} in 30 s`)));
    req.on('error', reject);
    req.end(init.body);
  });
}
