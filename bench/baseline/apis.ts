/**
 * The independent baseline's APIs: plain `node:http` handlers answering what the example APIs
 * answer, with no authentication and no authorization. Public parts only: nothing of Gatehouse's
 * code, so the baseline measures what any MCP deployment pays, not what Gatehouse pays twice.
 */
import { createServer } from 'node:http';

const STOCKS = [
  {
    symbol: 'ASML',
    name: 'ASML Holding',
    region: 'eu',
    exchange: 'Euronext Amsterdam',
    currency: 'EUR',
    price: 684.2,
  },
  { symbol: 'SAP', name: 'SAP SE', region: 'eu', exchange: 'Xetra', currency: 'EUR', price: 231.55 },
  {
    symbol: 'NESN',
    name: 'Nestlé',
    region: 'eu',
    exchange: 'SIX Swiss Exchange',
    currency: 'CHF',
    price: 78.9,
  },
  { symbol: 'AAPL', name: 'Apple Inc.', region: 'us', exchange: 'NASDAQ', currency: 'USD', price: 228.1 },
];

function json(res: import('node:http').ServerResponse, status: number, body: unknown) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

export function startBaselineApis(port: number, host = '127.0.0.1') {
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const path = (req.url ?? '/').split('?')[0]!;
      if (req.method === 'GET' && path === '/stocks')
        return json(res, 200, { stocks: STOCKS.filter((s) => s.region === 'eu') });
      if (req.method === 'POST' && path === '/stocks/orders') {
        const order = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as Record<string, unknown>;
        return json(res, 201, { id: `o-${Date.now()}`, status: 'accepted', ...order });
      }
      const stock = /^\/stocks\/([A-Z]+)$/.exec(path);
      if (req.method === 'GET' && stock) {
        const found = STOCKS.find((s) => s.symbol === stock[1] && s.region === 'eu');
        return found ? json(res, 200, found) : json(res, 404, { error: 'not_found' });
      }
      if (req.method === 'GET' && path === '/customers/me') {
        return json(res, 200, { id: 'c-1', name: 'Alice Example', email: 'alice@example.com', region: 'eu' });
      }
      json(res, 404, { error: 'not_found' });
    });
  });
  return new Promise<typeof server>((resolve) => server.listen(port, host, () => resolve(server)));
}
