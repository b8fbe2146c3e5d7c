/**
 * deploy/librechat/ (docs/librechat.md) cannot run LibreChat here, so this keeps its files in step
 * with each other, with the nginx recipe and with what Gatehouse accepts: the configuration loads;
 * the issuer, the MCP server's URI and the gateway are https on the two names LibreChat's container
 * is told about, with the ports and trustProxy of deploy/nginx/gatehouse.conf; librechat.yaml points
 * at that MCP URI, allows both names, and its oauth: block names the pre-registered client, a
 * redirect URI that client has, and Gatehouse's endpoints; the override maps both names, trusts
 * the local authority and passes the secret; make-certs.sh makes certificates nginx can use for
 * both names, signed by that authority.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { parse } from 'yaml';
import { loadConfig } from '../../src/shared/config/load.ts';

const DIR = path.resolve(import.meta.dirname, '../../deploy/librechat');
const read = (name: string) => parse(readFileSync(path.join(DIR, name), 'utf8')) as Record<string, unknown>;

test('deploy/librechat: https names for the browser and the container, and files that agree', () => {
  const { config } = loadConfig(path.join(DIR, 'gatehouse.yaml'));
  const as = config.authorizationServer;
  const auth = new URL(as.issuer);
  const mcp = new URL(config.gateway.publicUrl);
  assert.deepEqual([auth.protocol, auth.hostname], ['https:', 'auth.gatehouse.local']);
  assert.deepEqual([mcp.protocol, mcp.hostname], ['https:', 'mcp.gatehouse.local']);
  assert.equal(as.resources.mcp.uri, `${config.gateway.publicUrl}/mcp`);
  // As deploy/nginx/gatehouse.conf expects: 9000 and 8000 on loopback, behind a trusted proxy.
  assert.deepEqual([as.listen.host, as.listen.port, as.trustProxy], ['127.0.0.1', 9000, true]);
  assert.deepEqual(
    [config.gateway.listen.host, config.gateway.listen.port, config.gateway.trustProxy],
    ['127.0.0.1', 8000, true],
  );
  const recipe = readFileSync(path.resolve(DIR, '../nginx/gatehouse.conf'), 'utf8').replaceAll(
    'example.com',
    'gatehouse.local',
  );
  assert.match(recipe, /server_name auth\.gatehouse\.local;[\s\S]*?proxy_pass http:\/\/127\.0\.0\.1:9000;/);
  assert.match(recipe, /server_name mcp\.gatehouse\.local;[\s\S]*?proxy_pass http:\/\/127\.0\.0\.1:8000;/);

  const librechat = read('librechat.yaml') as {
    mcpServers: Record<string, { type: string; url: string; oauth?: Record<string, string> }>;
    mcpSettings: { allowedDomains: string[] };
  };
  const [[name, server]] = Object.entries(librechat.mcpServers) as [
    [string, (typeof librechat.mcpServers)[string]],
  ];
  assert.equal(server.type, 'streamable-http');
  assert.equal(server.url, as.resources.mcp.uri);
  for (const host of [auth.hostname, mcp.hostname])
    assert.ok(librechat.mcpSettings.allowedDomains.includes(host), host);
  const oauth = server.oauth!;
  const client = as.clients.find((c) => c.clientId === oauth.client_id);
  assert.ok(client, 'the oauth: block names the pre-registered client');
  assert.equal(client.authMethod, 'client_secret_basic');
  assert.equal(client.secret, 'env:LIBRECHAT_CLIENT_SECRET');
  // LibreChat's own placeholder (it reads its environment), not a template string here.
  assert.equal(oauth.client_secret, ['${', 'LIBRECHAT_CLIENT_SECRET', '}'].join(''));
  assert.ok(client.redirectUris.includes(oauth.redirect_uri!));
  assert.match(
    oauth.redirect_uri!,
    new RegExp(`/api/mcp/${name}/oauth/callback$`),
    "LibreChat's callback for that server name",
  );
  assert.equal(oauth.authorization_url, `${as.issuer}/authorize`);
  assert.equal(oauth.token_url, `${as.issuer}/token`);
  const mcpScopes = [...Object.keys(as.resources.mcp.scopes)];
  for (const scope of oauth.scope!.split(' ')) assert.ok(mcpScopes.includes(scope), scope);

  const override = read('docker-compose.override.yml') as {
    services: {
      api: {
        extra_hosts: string[];
        environment: string[];
        volumes: Array<{ source: string; target: string }>;
      };
    };
  };
  const api = override.services.api;
  for (const host of [auth.hostname, mcp.hostname])
    assert.ok(api.extra_hosts.includes(`${host}:host-gateway`), host);
  assert.ok(api.environment.some((entry) => entry.startsWith('LIBRECHAT_CLIENT_SECRET=')));
  const ca = api.environment.find((entry) => entry.startsWith('NODE_EXTRA_CA_CERTS='))?.split('=')[1];
  assert.ok(
    api.volumes.some((v) => v.source === '/etc/gatehouse/tls/ca.crt' && v.target === ca),
    'the authority is mounted where Node reads it',
  );
  assert.ok(api.volumes.some((v) => v.source === './librechat.yaml' && v.target === '/app/librechat.yaml'));
});

test('deploy/librechat/make-certs.sh: a certificate for each name, signed by its authority', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'gatehouse-librechat-tls-'));
  try {
    execFileSync('sh', [path.join(DIR, 'make-certs.sh'), dir], { stdio: 'pipe' });
    for (const name of ['auth.gatehouse.local', 'mcp.gatehouse.local']) {
      const cert = new X509Certificate(readFileSync(path.join(dir, `${name}.crt`)));
      assert.equal(cert.checkHost(name), name);
      assert.ok(
        cert.verify(new X509Certificate(readFileSync(path.join(dir, 'ca.crt'))).publicKey),
        'signed by ca.crt',
      );
      assert.ok(createPrivateKey(readFileSync(path.join(dir, `${name}.key`))), 'with its key');
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
