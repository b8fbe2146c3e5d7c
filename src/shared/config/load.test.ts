import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { ConfigError, loadConfig, parseConfig } from './load.ts';

test('no file means the safe built-in defaults', () => {
  const { config, dataDir, file } = loadConfig(undefined, '/srv/gatehouse');
  assert.equal(file, undefined);
  assert.equal(dataDir, '/srv/gatehouse/data');
  const as = config.authorizationServer;
  assert.equal(as.issuer, 'http://localhost:9000');
  assert.equal(as.resources.mcp.uri, 'http://localhost:8000/mcp');
  assert.equal(as.resources.mcp.accessTokenTtlSeconds, 900);
  assert.equal(
    as.clientIdMetadataDocuments.allowLoopbackHttp,
    false,
    'the development switch is off by default',
  );
  assert.equal(as.refreshTokens.enabled, true);
  assert.deepEqual(
    as.refreshTokens.clients,
    { preRegistered: true, dynamic: true, cimd: false, publicClients: false },
    'refresh tokens for clients that authenticate only, by default',
  );
  assert.deepEqual(
    as.users.approved.map((user) => [user.email, user.claims.region]),
    [
      ['alice@example.com', 'eu'],
      ['bob@example.com', 'us'],
    ],
  );
});

test('a YAML file is read, and dataDir resolves against its folder', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'gatehouse-config-'));
  const file = path.join(dir, 'gatehouse.yaml');
  writeFileSync(file, 'dataDir: state\nauthorizationServer:\n  issuer: https://auth.example.com\n');
  const loaded = loadConfig(file);
  assert.equal(loaded.dataDir, path.join(dir, 'state'));
  assert.equal(loaded.config.authorizationServer.issuer, 'https://auth.example.com');
});

test('errors name the bad key', () => {
  const cases: Array<[unknown, RegExp]> = [
    [{ authorizationServer: { issuer: 'ftp://x' } }, /authorizationServer\.issuer: must be an http/],
    [{ authorizationServer: { isuer: 'http://x' } }, /authorizationServer\.isuer: unknown setting/],
    [
      { authorizationServer: { users: { approved: [{ email: 'nope' }] } } },
      /authorizationServer\.users\.approved\.0\.email/,
    ],
    [
      { authorizationServer: { resources: { mcp: { baseScopes: ['nope'] } } } },
      /resources\.mcp\.baseScopes\.0: "nope" is not one of/,
    ],
    [
      { authorizationServer: { resources: { mcp: { accessTokenTtlSeconds: -1 } } } },
      /resources\.mcp\.accessTokenTtlSeconds/,
    ],
    [
      {
        authorizationServer: {
          tokenExchange: [
            { clientId: 'gatehouse-gateway', targets: [{ audience: 'http://x/api', scopeMap: {} }] },
          ],
        },
      },
      /tokenExchange\.0\.clientId: "gatehouse-gateway" is not a pre-registered client with role mcp-server[\s\S]*tokenExchange\.0\.targets\.0\.audience/,
    ],
    [
      {
        authorizationServer: {
          clients: [{ clientId: 'w', name: 'W', role: 'workload', authMethod: 'client_secret_basic' }],
          tokenExchange: [],
        },
      },
      /clients\.0\.secret: is required/,
    ],
  ];
  for (const [input, message] of cases) {
    assert.throws(
      () => parseConfig(input),
      (error: Error) => error instanceof ConfigError && message.test(error.message),
    );
  }
});

test('a missing or malformed file says what to do', () => {
  assert.throws(() => loadConfig('/nonexistent/gatehouse.yaml'), /does not exist: pass an existing file/);
  const dir = mkdtempSync(path.join(tmpdir(), 'gatehouse-config-'));
  const file = path.join(dir, 'bad.yaml');
  writeFileSync(file, 'authorizationServer: [unclosed');
  assert.throws(() => loadConfig(file), /is not valid YAML\/JSON/);
});

test('gatehouse.example.yaml documents exactly the built-in defaults', () => {
  const example = loadConfig(path.resolve(import.meta.dirname, '../../../gatehouse.example.yaml'));
  const defaults = loadConfig(undefined);
  assert.deepEqual(example.config, defaults.config);
});

test("listing one's own clients keeps the gateway's and the MCP server's, unless a client of that role is listed", () => {
  const partner = {
    clientId: 'partner-agent',
    name: 'Partner agent',
    role: 'agent',
    authMethod: 'none',
    redirectUris: ['https://partner.example/callback'],
  };
  const ids = (input: unknown) =>
    parseConfig({ authorizationServer: { clients: input } }).authorizationServer.clients.map(
      (client) => `${client.clientId}:${client.role}`,
    );
  // The demonstration workload goes with the rest of the default list; the internal clients stay.
  assert.deepEqual(ids([partner]), [
    'gatehouse-gateway:gateway',
    'gatehouse-mcp-server:mcp-server',
    'partner-agent:agent',
  ]);
  // A gateway client of one's own replaces the default one (gateway.client names it).
  const ownGateway = {
    clientId: 'edge',
    name: 'Edge',
    role: 'gateway',
    authMethod: 'client_secret_basic',
    secret: 'env:EDGE_SECRET',
  };
  assert.deepEqual(ids([ownGateway, partner]), [
    'gatehouse-mcp-server:mcp-server',
    'edge:gateway',
    'partner-agent:agent',
  ]);
  // The default is unchanged.
  assert.deepEqual(ids(undefined), [
    'gatehouse-gateway:gateway',
    'gatehouse-mcp-server:mcp-server',
    'example-workload:workload',
    'gatehouse-admin:admin',
  ]);
});
