/**
 * The independent baseline's MCP server: the MCP SDK v2's own stateless server
 * (`createMcpHandler` + `toNodeHandler`, a server built per request as the SDK shows it) with the
 * same four tools as Gatehouse's default catalogue, each a plain `fetch` of the baseline APIs.
 * No authentication, no token exchange, no audit: what an unsecured MCP server costs.
 */
import { createServer } from 'node:http';
import { toNodeHandler } from '@modelcontextprotocol/node';
import { type CallToolResult, createMcpHandler, McpServer } from '@modelcontextprotocol/server';
import { z } from 'zod';

async function call(url: string, init?: RequestInit): Promise<CallToolResult> {
  const response = await fetch(url, { ...init, headers: { accept: 'application/json', ...init?.headers } });
  const text = await response.text();
  return response.ok
    ? { content: [{ type: 'text', text: JSON.stringify(JSON.parse(text), null, 2) }] }
    : { content: [{ type: 'text', text: `HTTP ${response.status}` }], isError: true };
}

function serverFor(apis: string) {
  const server = new McpServer({ name: 'baseline', version: '1.0.0' }, { capabilities: { tools: {} } });
  server.registerTool(
    'list_stocks',
    { description: 'Lists the stocks you can see.', inputSchema: z.object({}).strict() },
    () => call(`${apis}/stocks`),
  );
  server.registerTool(
    'get_stock',
    {
      description: 'Gets one stock by its ticker symbol.',
      inputSchema: z.object({ symbol: z.string().regex(/^[A-Z]{1,8}$/) }).strict(),
    },
    ({ symbol }) => call(`${apis}/stocks/${encodeURIComponent(symbol)}`),
  );
  server.registerTool(
    'place_order',
    {
      description: 'Places an order.',
      inputSchema: z
        .object({
          symbol: z.string().regex(/^[A-Z]{1,8}$/),
          side: z.enum(['buy', 'sell']),
          quantity: z.number().int().min(1).max(10000),
        })
        .strict(),
    },
    (args) =>
      call(`${apis}/stocks/orders`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(args),
      }),
  );
  server.registerTool(
    'get_my_customer_record',
    { description: 'Gets the customer record of the signed-in user.', inputSchema: z.object({}).strict() },
    () => call(`${apis}/customers/me`),
  );
  return server;
}

export function startBaselineMcpServer(port: number, apis: string, host = '127.0.0.1') {
  const handler = createMcpHandler(() => serverFor(apis));
  const node = toNodeHandler(handler);
  const server = createServer((req, res) => {
    void node(req, res);
  });
  return new Promise<typeof server>((resolve) => server.listen(port, host, () => resolve(server)));
}
