/**
 * deploy/compose/ cannot run here (no Docker engine), so this keeps it honest and in step with the
 * multi-process setup that is tested (test/scale-out/support/topology.ts): as many instances of
 * each component, every Gatehouse service running a real command of the CLI on a configuration
 * that Gatehouse accepts, a data volume per authorization server (nothing shared but PostgreSQL),
 * health checks on each component's own readiness port, nginx upstreams naming exactly those
 * services and ports, and every `env:` secret of the configuration made by make-secrets.sh.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { parse } from 'yaml';
import { loadConfig } from '../../src/shared/config/load.ts';
import { INSTANCES } from '../scale-out/support/topology.ts';

const DIR = path.resolve(import.meta.dirname, '../../deploy/compose');
const compose = parse(readFileSync(path.join(DIR, 'compose.yaml'), 'utf8'), { merge: true }) as {
  services: Record<
    string,
    {
      command?: string[];
      volumes?: string[];
      healthcheck?: { test: string[] };
      env_file?: string;
    }
  >;
};
const loaded = loadConfig(path.join(DIR, 'gatehouse.yaml'));
const config = loaded.config;
const PORTS: Record<string, number | undefined> = {
  'authorization-server': config.authorizationServer.listen.port,
  gateway: config.gateway.listen.port,
  'mcp-server': config.mcpServer.listen.port,
  apis: config.apis.listen.port,
};
const services = Object.entries(compose.services);
const gatehouse = services.filter(([, service]) => service.command?.[0] === 'serve');
const componentOf = (service: { command?: string[] }) => service.command![1]!;

test('the configuration of the compose file is one Gatehouse accepts, on PostgreSQL with sealed keys', () => {
  assert.equal(config.storage.url, 'env:GATEHOUSE_DATABASE_URL');
  assert.equal(config.storage.encryptionKey, 'env:GATEHOUSE_STORAGE_ENCRYPTION_KEY');
  assert.equal(config.authorizationServer.trustProxy, true);
  assert.ok(config.authorizationServer.issuer.startsWith('https://'));
  assert.ok(config.gateway.publicUrl.startsWith('https://'));
});

test('as many instances of each component as the tested multi-process setup', () => {
  const count = (component: string) =>
    gatehouse.filter(([, service]) => componentOf(service) === component).length;
  for (const component of ['authorization-server', 'gateway', 'mcp-server']) {
    assert.equal(count(component), INSTANCES, component);
  }
  assert.equal(count('apis'), 1);
  assert.ok(compose.services.postgres, 'PostgreSQL');
  assert.ok(compose.services.nginx, 'nginx for TLS');
});

test('every Gatehouse service runs a command of the CLI on the mounted configuration, its health check on its own port', () => {
  const usage = execFileSync(process.execPath, [path.resolve(DIR, '../../bin/gatehouse.js'), 'help'], {
    encoding: 'utf8',
  });
  for (const [name, service] of gatehouse) {
    const component = componentOf(service);
    assert.match(usage, new RegExp(`gatehouse serve ${component} `), `${name}: a component the CLI knows`);
    assert.deepEqual(service.command!.slice(2), ['--config', '/etc/gatehouse/gatehouse.yaml'], name);
    assert.ok(
      service.volumes?.some((volume) => volume.startsWith('./gatehouse.yaml:/etc/gatehouse/gatehouse.yaml')),
      `${name} mounts the configuration`,
    );
    assert.equal(service.env_file, '.env', `${name} gets its secrets from .env`);
    const check = service.healthcheck?.test.join(' ') ?? '';
    assert.match(
      check,
      new RegExp(`http://127\\.0\\.0\\.1:${PORTS[component]}/readyz`),
      `${name} health check`,
    );
  }
});

test('each authorization server has a data volume of its own: nothing shared but the database', () => {
  const servers = gatehouse.filter(([, service]) => componentOf(service) === 'authorization-server');
  const volumes = servers.map(([, service]) =>
    service.volumes!.find((volume) => volume.endsWith(':/var/lib/gatehouse')),
  );
  assert.equal(config.dataDir, '/var/lib/gatehouse');
  assert.ok(volumes.every(Boolean), 'a volume at the data directory');
  assert.equal(new Set(volumes).size, servers.length, 'one each');
});

test('the nginx upstreams name exactly the instances and their ports', () => {
  const upstream = (file: string, name: string) => {
    const text = readFileSync(path.join(DIR, file), 'utf8');
    const block = new RegExp(`upstream ${name} \\{([^}]*)\\}`).exec(text)?.[1] ?? '';
    return [...block.matchAll(/server ([a-z0-9-]+):(\d+)/g)].map((match) => `${match[1]}:${match[2]}`).sort();
  };
  const instances = (component: string) =>
    gatehouse
      .filter(([, service]) => componentOf(service) === component)
      .map(([name]) => `${name}:${PORTS[component]}`)
      .sort();
  assert.deepEqual(upstream('nginx-public.conf', 'authorization_servers'), instances('authorization-server'));
  assert.deepEqual(upstream('nginx-public.conf', 'gateways'), instances('gateway'));
  assert.deepEqual(
    upstream('nginx-internal.conf', 'authorization_servers'),
    instances('authorization-server'),
  );
  assert.deepEqual(upstream('nginx-internal.conf', 'mcp_servers'), instances('mcp-server'));
  assert.equal(config.gateway.authorizationServerUrl, 'http://nginx-internal:9000');
  assert.equal(config.gateway.mcpServerUrl, 'http://nginx-internal:8001');
});

test('make-secrets.sh makes every env: secret the configuration names, and a certificate for both names', () => {
  const work = mkdtempSync(path.join(tmpdir(), 'gatehouse-compose-'));
  try {
    for (const file of ['make-secrets.sh']) {
      execFileSync('cp', [path.join(DIR, file), work]);
    }
    execFileSync('sh', [path.join(work, 'make-secrets.sh')], { encoding: 'utf8' });
    const env = new Map(
      readFileSync(path.join(work, '.env'), 'utf8')
        .trim()
        .split('\n')
        .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)] as const),
    );
    const referenced = [
      ...readFileSync(path.join(DIR, 'gatehouse.yaml'), 'utf8').matchAll(/env:([A-Z_]+)/g),
    ].map((match) => match[1]!);
    for (const name of referenced) assert.ok((env.get(name) ?? '').length >= 32, `${name} in .env`);
    assert.equal(Buffer.from(env.get('GATEHOUSE_STORAGE_ENCRYPTION_KEY')!, 'base64').length, 32);
    assert.match(
      env.get('GATEHOUSE_DATABASE_URL')!,
      /^postgres:\/\/gatehouse:[0-9a-f]+@postgres:5432\/gatehouse$/,
    );
    const names = execFileSync(
      'openssl',
      ['x509', '-in', path.join(work, 'tls/localhost.crt'), '-noout', '-ext', 'subjectAltName'],
      {
        encoding: 'utf8',
      },
    );
    assert.match(names, /DNS:auth\.localhost, DNS:mcp\.localhost/);
    // Run again: nothing is overwritten.
    const before = readFileSync(path.join(work, '.env'), 'utf8');
    execFileSync('sh', [path.join(work, 'make-secrets.sh')]);
    assert.equal(readFileSync(path.join(work, '.env'), 'utf8'), before);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});
