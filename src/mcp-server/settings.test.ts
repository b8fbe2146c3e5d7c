import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { ConfigError, parseConfig } from '../shared/config/load.ts';
import { buildProtectedResourceMetadata } from './protected-resource-metadata.ts';
import { originHostname, resolveMcpServerSettings } from './settings.ts';

const dataDir = mkdtempSync(path.join(tmpdir(), 'gatehouse-mcp-settings-'));
mkdirSync(path.join(dataDir, 'secrets'));
writeFileSync(path.join(dataDir, 'secrets/gatehouse-mcp-server.secret'), `${'s'.repeat(43)}\n`);
after(() => rmSync(dataDir, { recursive: true, force: true }));

const load = (input: Record<string, unknown> = {}) => ({
  config: parseConfig(input),
  dataDir,
  file: undefined,
});

describe('MCP server settings', () => {
  test('derive every public URL from the canonical resource URI, not the listen address', () => {
    const settings = resolveMcpServerSettings(load());
    assert.equal(settings.resource.href, 'http://localhost:8000/mcp');
    assert.equal(
      settings.resourceMetadataUrl,
      'http://localhost:8000/.well-known/oauth-protected-resource/mcp',
    );
    assert.equal(settings.issuer, 'http://localhost:9000');
    assert.equal(settings.tokenEndpoint, 'http://localhost:9000/token');
    assert.equal(settings.jwksUri, 'http://localhost:9000/jwks');
    assert.deepEqual(settings.baseScopes, ['stocks:read', 'customers:read']);
    assert.deepEqual(settings.scopesSupported, ['stocks:read', 'stocks:trade', 'customers:read']);
    assert.equal(settings.client.secret, 's'.repeat(43));
    assert.deepEqual(settings.allowedOriginHostnames, ['localhost', '127.0.0.1']);
  });

  test('reach the authorization server where configured, but expect its issuer in tokens', () => {
    const settings = resolveMcpServerSettings(
      load({
        mcpServer: { authorizationServerUrl: 'http://10.0.0.5:9000/' },
        authorizationServer: { issuer: 'https://auth.example.com' },
      }),
    );
    assert.equal(settings.issuer, 'https://auth.example.com');
    assert.equal(settings.tokenEndpoint, 'http://10.0.0.5:9000/token');
    assert.deepEqual(buildProtectedResourceMetadata(settings).authorization_servers, [
      'https://auth.example.com',
    ]);
  });

  test('a tool needing a scope the authorization server does not define is a configuration error', () => {
    const tools = parseConfig({}).mcpServer.tools.map((tool) =>
      tool.name === 'place_order' ? { ...tool, scopes: ['stocks:admin'] } : tool,
    );
    assert.throws(
      () => resolveMcpServerSettings(load({ mcpServer: { tools } })),
      (error: unknown) =>
        error instanceof ConfigError && /mcpServer\.tools\.2\.scopes: "stocks:admin"/.test(error.message),
    );
  });

  test("each tool's API scopes default to what its own scopes map to, never to all the user's", () => {
    const scopes = Object.fromEntries(
      resolveMcpServerSettings(load()).tools.map((t) => [t.name, t.apiScopes]),
    );
    assert.deepEqual(scopes, {
      list_stocks: ['stocks.read'],
      get_stock: ['stocks.read'],
      place_order: ['stocks.trade'],
      get_my_customer_record: ['customers.read'],
    });
  });

  test('API scopes outside what the exchange policy maps to are a configuration error', () => {
    const tools = parseConfig({}).mcpServer.tools.map((tool) =>
      tool.name === 'list_stocks' ? { ...tool, apiScopes: ['stocks.trade'] } : tool,
    );
    assert.throws(
      () => resolveMcpServerSettings(load({ mcpServer: { tools } })),
      (error: unknown) =>
        error instanceof ConfigError && /mcpServer\.tools\.0\.apiScopes: stocks\.trade/.test(error.message),
    );
    const narrower = parseConfig({}).mcpServer.tools.map((tool) =>
      tool.name === 'list_stocks'
        ? { ...tool, scopes: ['stocks:read', 'stocks:trade'], apiScopes: ['stocks.read'] }
        : tool,
    );
    assert.deepEqual(resolveMcpServerSettings(load({ mcpServer: { tools: narrower } })).tools[0]!.apiScopes, [
      'stocks.read',
    ]);
  });

  test('a tool whose scopes map to nothing at its API says to add the mapping or set apiScopes', () => {
    assert.throws(
      () =>
        resolveMcpServerSettings(
          load({
            mcpServer: {
              apis: {
                stocks: { baseUrl: 'http://127.0.0.1:8002/stocks', audience: 'http://elsewhere/api/stocks' },
                customers: {
                  baseUrl: 'http://127.0.0.1:8002/customers',
                  audience: 'http://localhost:8000/api/customers',
                },
              },
            },
          }),
        ),
      (error: unknown) =>
        error instanceof ConfigError && /map to no scope of its API.*set apiScopes/.test(error.message),
    );
  });

  test('a missing client secret says to start the authorization server first', () => {
    const empty = mkdtempSync(path.join(tmpdir(), 'gatehouse-mcp-nosecret-'));
    try {
      assert.throws(
        () => resolveMcpServerSettings({ config: parseConfig({}), dataDir: empty, file: undefined }),
        /start the authorization server first/,
      );
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });

  test('allowed origins are compared by hostname', () => {
    assert.equal(originHostname('http://localhost'), 'localhost');
    assert.equal(originHostname('https://app.example.com:8443'), 'app.example.com');
    assert.equal(originHostname('http://[::1]:3000'), '[::1]');
    assert.equal(originHostname('claude.ai'), 'claude.ai');
  });
});
