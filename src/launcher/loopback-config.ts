/**
 * Configuration input for the whole stack on given loopback ports, every URL pointing at the real
 * ports: the MCP server's canonical URI is the gateway's `/mcp` and the API audiences are the
 * gateway's `/api/...` paths, as an agent sees them. Tests and the benchmark start stacks this way.
 */
export interface StackPorts {
  authorizationServer: number;
  gateway: number;
  mcpServer: number;
  apis: number;
}

export interface LoopbackUrls {
  issuer: string;
  gatewayUrl: string;
  mcpUrl: string;
  apisUrl: string;
  mcpServerUrl: string;
  stocksAudience: string;
  customersAudience: string;
}

export function loopbackUrls(ports: StackPorts): LoopbackUrls {
  const gatewayUrl = `http://127.0.0.1:${ports.gateway}`;
  return {
    issuer: `http://127.0.0.1:${ports.authorizationServer}`,
    gatewayUrl,
    mcpUrl: `${gatewayUrl}/mcp`,
    apisUrl: `http://127.0.0.1:${ports.apis}`,
    mcpServerUrl: `http://127.0.0.1:${ports.mcpServer}`,
    stocksAudience: `${gatewayUrl}/api/stocks`,
    customersAudience: `${gatewayUrl}/api/customers`,
  };
}

/** The four component sections (unparsed input for parseConfig). */
export function loopbackStackSections(ports: StackPorts) {
  const urls = loopbackUrls(ports);
  const stocks = urls.stocksAudience;
  const customers = urls.customersAudience;
  return {
    authorizationServer: {
      issuer: urls.issuer,
      listen: { host: '127.0.0.1', port: ports.authorizationServer },
      resources: {
        mcp: { uri: urls.mcpUrl },
        apis: [
          {
            name: 'Stocks API',
            audience: stocks,
            scopes: { 'stocks.read': 'Read stocks', 'stocks.trade': 'Place orders' },
          },
          {
            name: 'Customers API',
            audience: customers,
            scopes: { 'customers.read': 'Read customer records' },
          },
        ],
      },
      tokenExchange: [
        {
          clientId: 'gatehouse-mcp-server',
          targets: [
            {
              audience: stocks,
              scopeMap: { 'stocks:read': ['stocks.read'], 'stocks:trade': ['stocks.trade'] },
            },
            { audience: customers, scopeMap: { 'customers:read': ['customers.read'] } },
          ],
        },
      ],
    } as Record<string, unknown>,
    gateway: {
      publicUrl: urls.gatewayUrl,
      listen: { host: '127.0.0.1', port: ports.gateway },
      mcpServerUrl: urls.mcpServerUrl,
      routes: [
        { prefix: '/api/stocks', upstream: `${urls.apisUrl}/stocks` },
        { prefix: '/api/customers', upstream: `${urls.apisUrl}/customers` },
      ],
    } as Record<string, unknown>,
    mcpServer: {
      listen: { host: '127.0.0.1', port: ports.mcpServer },
      apis: {
        stocks: { baseUrl: `${urls.apisUrl}/stocks`, audience: stocks },
        customers: { baseUrl: `${urls.apisUrl}/customers`, audience: customers },
      },
    } as Record<string, unknown>,
    apis: {
      listen: { host: '127.0.0.1', port: ports.apis },
      stocks: { audience: stocks },
      customers: { audience: customers },
    } as Record<string, unknown>,
  };
}
