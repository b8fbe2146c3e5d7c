/**
 * The nginx recipe of docs/deployment.md, as it is in deploy/nginx/gatehouse.conf: Debian's nginx,
 * started by the test, terminates TLS (a certificate made by openssl) in front of the authorization
 * server and the gateway of a real stack (`gatehouse start`), with `trustProxy` on. Only the ports,
 * host names and certificate paths of the recipe are swapped.
 *
 * Through the proxy: the published URLs are the configured https ones whatever Host a client
 * sends; session cookies are Secure; the address in the audit trail is the one nginx saw, not the
 * X-Forwarded-For a client made up; the 401 challenge points at the https metadata; and a workload
 * agent calls a tool over https end to end (the tool call's event stream passes unbuffered).
 *
 * Without nginx it is skipped, saying why, except in CI, where `npm test`'s pretest installs it.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { checkServerIdentity, type PeerCertificate } from 'node:tls';
import { promisify } from 'node:util';
import { loopbackStackSections } from '../../src/launcher/loopback-config.ts';
import { makeCertificate } from '../helpers/certificate.ts';
import { pkce } from '../helpers/oauth.ts';
import { freePort } from '../helpers/ports.ts';
import { until } from '../helpers/revocation.ts';

const NGINX = '/usr/sbin/nginx';
const CLI = path.resolve(import.meta.dirname, '../../bin/gatehouse.js');
const RECIPE = path.resolve(import.meta.dirname, '../../deploy/nginx/gatehouse.conf');
const runFile = promisify(execFile);

const skip =
  process.env.GATEHOUSE_NGINX_TESTS === '0'
    ? 'GATEHOUSE_NGINX_TESTS=0'
    : existsSync(NGINX) || process.env.CI === 'true'
      ? false
      : `no nginx at ${NGINX} (apt-get install nginx-light; npm test installs it as root)`;

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

/** An https request trusting only the run's certificate, with the headers given (Host included). */
function https(
  url: string,
  ca: Buffer,
  init: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        ca,
        agent: false,
        method: init.method ?? 'GET',
        headers: init.headers,
        // Checked against the URL's address, not against a Host header the test sends.
        checkServerIdentity: (_host: string, cert: PeerCertificate) =>
          checkServerIdentity(new URL(url).hostname, cert),
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          text += chunk;
        });
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, text }));
      },
    );
    req.on('error', reject);
    req.end(init.body);
  });
}

/** The recipe with this run's ports and files in place of the example's. */
function renderRecipe(
  ports: { auth: number; gateway: number; nginxAuth: number; nginxGateway: number },
  tls: string,
) {
  let recipe = readFileSync(RECIPE, 'utf8');
  const listens = [ports.nginxAuth, ports.nginxGateway];
  recipe = recipe.replace(/listen 443 ssl;/g, () => `listen 127.0.0.1:${listens.shift()} ssl;`);
  assert.equal(listens.length, 0, 'the recipe has one server for each component');
  return recipe
    .replaceAll('proxy_pass http://127.0.0.1:9000;', `proxy_pass http://127.0.0.1:${ports.auth};`)
    .replaceAll('proxy_pass http://127.0.0.1:8000;', `proxy_pass http://127.0.0.1:${ports.gateway};`)
    .replace(/\/etc\/gatehouse\/tls\/[a-z.]+\.crt/g, path.join(tls, 'server.crt'))
    .replace(/\/etc\/gatehouse\/tls\/[a-z.]+\.key/g, path.join(tls, 'server.key'))
    .replace(/server_name [a-z.]+;/g, 'server_name 127.0.0.1;');
}

describe('the nginx recipe: TLS in front of the authorization server and the gateway', { skip }, () => {
  let dir: string;
  let stack: ChildProcess | undefined;
  let nginx: ChildProcess | undefined;
  const stackOutput: string[] = [];
  let ca: Buffer;
  let issuer: string;
  let publicUrl: string;

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'gatehouse-nginx-'));
    const tls = path.join(dir, 'tls');
    mkdirSync(tls);
    ca = readFileSync(makeCertificate(tls, 'server').cert);
    const ports = {
      auth: await freePort(),
      gateway: await freePort(),
      mcpServer: await freePort(),
      apis: await freePort(),
      nginxAuth: await freePort(),
      nginxGateway: await freePort(),
    };
    issuer = `https://127.0.0.1:${ports.nginxAuth}`;
    publicUrl = `https://127.0.0.1:${ports.nginxGateway}`;

    // Every published URL is nginx's https one; the components listen on loopback behind it.
    const published = JSON.parse(
      JSON.stringify(
        loopbackStackSections({
          authorizationServer: ports.nginxAuth,
          gateway: ports.nginxGateway,
          mcpServer: ports.mcpServer,
          apis: ports.apis,
        }),
      )
        .replaceAll(`http://127.0.0.1:${ports.nginxAuth}`, issuer)
        .replaceAll(`http://127.0.0.1:${ports.nginxGateway}`, publicUrl),
    ) as Record<string, Record<string, unknown>>;
    const internalIssuer = `http://127.0.0.1:${ports.auth}`;
    const config = {
      dataDir: path.join(dir, 'data'),
      authorizationServer: {
        ...published.authorizationServer,
        listen: { host: '127.0.0.1', port: ports.auth },
        trustProxy: true,
      },
      gateway: {
        ...published.gateway,
        listen: { host: '127.0.0.1', port: ports.gateway },
        trustProxy: true,
        authorizationServerUrl: internalIssuer,
      },
      mcpServer: { ...published.mcpServer, authorizationServerUrl: internalIssuer },
      apis: { ...published.apis, jwksUri: `${internalIssuer}/jwks` },
    };
    const configFile = path.join(dir, 'gatehouse.json');
    writeFileSync(configFile, JSON.stringify(config, null, 2));

    stack = spawn(process.execPath, [CLI, 'start', '--config', configFile], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    for (const stream of [stack.stdout!, stack.stderr!])
      stream.on('data', (chunk) => stackOutput.push(String(chunk)));
    await until(
      async () => (await fetch(`http://127.0.0.1:${ports.gateway}/readyz`)).status === 200,
      'the stack is ready',
      30_000,
    ).catch((error: Error) => {
      throw new Error(`${error.message}\n${stackOutput.join('').slice(-3000)}`);
    });

    const prefix = path.join(dir, 'nginx');
    mkdirSync(path.join(prefix, 'temp'), { recursive: true });
    const temp = (name: string) => path.join(prefix, 'temp', name);
    writeFileSync(path.join(prefix, 'gatehouse.conf'), renderRecipe(ports, tls));
    writeFileSync(
      path.join(prefix, 'nginx.conf'),
      `daemon off;
worker_processes 1;
pid ${path.join(prefix, 'nginx.pid')};
error_log ${path.join(prefix, 'error.log')} warn;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path ${temp('body')};
  proxy_temp_path ${temp('proxy')};
  fastcgi_temp_path ${temp('fastcgi')};
  uwsgi_temp_path ${temp('uwsgi')};
  scgi_temp_path ${temp('scgi')};
  include ${path.join(prefix, 'gatehouse.conf')};
}
`,
    );
    await runFile(NGINX, [
      '-t',
      '-p',
      prefix,
      '-c',
      path.join(prefix, 'nginx.conf'),
      '-e',
      path.join(prefix, 'error.log'),
    ]);
    nginx = spawn(
      NGINX,
      ['-p', prefix, '-c', path.join(prefix, 'nginx.conf'), '-e', path.join(prefix, 'error.log')],
      {
        stdio: 'ignore',
      },
    );
    await until(async () => (await https(`${publicUrl}/readyz`, ca)).status === 200, 'nginx answers', 10_000);
  });

  after(async () => {
    for (const child of [nginx, stack]) {
      if (!child || child.exitCode !== null) continue;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('the metadata names only the configured https URLs, whatever Host the client sends', async () => {
    for (const host of [undefined, 'evil.example']) {
      const answer = await https(`${issuer}/.well-known/oauth-authorization-server`, ca, {
        headers: host ? { host, 'x-forwarded-host': host, 'x-forwarded-proto': 'http' } : {},
      });
      assert.equal(answer.status, 200);
      const metadata = JSON.parse(answer.text) as Record<string, unknown>;
      assert.equal(metadata.issuer, issuer);
      for (const key of ['authorization_endpoint', 'token_endpoint', 'registration_endpoint', 'jwks_uri']) {
        assert.ok(String(metadata[key]).startsWith(`${issuer}/`), `${key} is ${metadata[key]}`);
      }
    }
    const resource = JSON.parse(
      (await https(`${publicUrl}/.well-known/oauth-protected-resource/mcp`, ca)).text,
    );
    assert.equal(resource.resource, `${publicUrl}/mcp`);
    assert.deepEqual(resource.authorization_servers, [issuer]);
  });

  test('the 401 challenge points at the https metadata', async () => {
    const answer = await https(`${publicUrl}/mcp`, ca, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
    });
    assert.equal(answer.status, 401);
    assert.match(
      String(answer.headers['www-authenticate']),
      new RegExp(`resource_metadata="${publicUrl}/\\.well-known/oauth-protected-resource/mcp"`),
    );
  });

  test('the audit trail has the address nginx saw, not the X-Forwarded-For a client sent; cookies are Secure', async () => {
    const registered = await https(`${issuer}/register`, ca, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-forwarded-for': '203.0.113.9' },
      body: JSON.stringify({ redirect_uris: ['http://127.0.0.1/callback'], application_type: 'native' }),
    });
    assert.equal(registered.status, 201, registered.text);
    const clientId = String((JSON.parse(registered.text) as { client_id: string }).client_id);
    await until(
      async () => stackOutput.join('').includes(`"client_id":"${clientId}","ip":"127.0.0.1"`),
      'the registration audited with the address nginx saw',
      3000,
    );
    assert.doesNotMatch(stackOutput.join(''), /203\.0\.113\.9/);

    const { challenge } = pkce();
    const authorize = new URL(`${issuer}/authorize`);
    for (const [name, value] of Object.entries({
      response_type: 'code',
      client_id: clientId,
      redirect_uri: 'http://127.0.0.1/callback',
      scope: 'stocks:read',
      resource: `${publicUrl}/mcp`,
      state: 'state-1',
      code_challenge: challenge,
      code_challenge_method: 'S256',
    }))
      authorize.searchParams.set(name, value);
    const started = await https(authorize.href, ca);
    assert.ok([302, 303].includes(started.status), `${started.status}: ${started.text.slice(0, 200)}`);
    const signIn = new URL(String(started.headers.location), issuer);
    assert.equal(
      signIn.origin,
      issuer,
      `the sign-in page is at the https issuer: ${started.headers.location}`,
    );
    const cookies = [started.headers['set-cookie'] ?? []].flat();
    assert.ok(cookies.length > 0, 'an interaction cookie');
    for (const cookie of cookies) assert.match(cookie, /;\s*secure/i, `Secure: ${cookie.split('=')[0]}`);
  });

  test('a workload agent calls a tool over https through nginx, end to end', async () => {
    const home = mkdtempSync(path.join(dir, 'agent-'));
    const privateKey = path.join(dir, 'data', 'secrets', 'example-workload.private-key.json');
    const { stdout } = await runFile(
      process.execPath,
      [
        CLI,
        'agent',
        `${publicUrl}/mcp`,
        'call',
        'list_stocks',
        '--args',
        '{}',
        '--no-browser',
        '--client-id',
        'example-workload',
        '--private-key',
        privateKey,
      ],
      {
        env: {
          ...process.env,
          GATEHOUSE_AGENT_HOME: home,
          NODE_EXTRA_CA_CERTS: path.join(dir, 'tls', 'server.crt'),
        },
      },
    );
    assert.ok(Array.isArray((JSON.parse(stdout) as { stocks: unknown[] }).stocks), stdout);
  });
});
