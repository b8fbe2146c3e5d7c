/**
 * The independent baseline's reverse proxy: `node:http` in front of the MCP server, streaming the
 * request and the answer through with keep-alive to the upstream. No token handling, no logs.
 */
import http, { createServer } from 'node:http';

export function startBaselineProxy(port: number, upstream: string, host = '127.0.0.1') {
  const target = new URL(upstream);
  const agent = new http.Agent({ keepAlive: true, timeout: 2000 });
  const server = createServer((req, res) => {
    const headers = { ...req.headers };
    delete headers.host;
    delete headers.connection;
    const forward = http.request(
      { host: target.hostname, port: target.port, path: req.url, method: req.method, headers, agent },
      (answer) => {
        const out = { ...answer.headers };
        delete out.connection;
        delete out['keep-alive'];
        delete out['transfer-encoding'];
        res.writeHead(answer.statusCode ?? 502, out);
        answer.pipe(res);
      },
    );
    forward.on('error', () => {
      if (!res.headersSent) res.writeHead(502);
      res.end();
    });
    req.pipe(forward);
  });
  return new Promise<typeof server>((resolve) => server.listen(port, host, () => resolve(server)));
}
