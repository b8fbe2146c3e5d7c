/**
 * The built-in TLS listener with real certificates (made by `openssl` for each run) and real
 * connections on loopback: HTTPS is served under the same caps as HTTP, a renewed certificate is
 * served to new connections without a restart, a broken renewal keeps the one in use, and a key that
 * is not the certificate's stops the start with the setting to fix.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import { makeCertificate as makeTestCertificate } from '../../test/helpers/certificate.ts';
import { ConfigError } from './config/load.ts';
import { httpSchema } from './config/schema.ts';
import { createHttpServer, type HttpServer } from './http-server.ts';
import { createLogger } from './logging.ts';
import type { TlsFiles } from './tls-listener.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'gatehouse-tls-'));
const servers: HttpServer[] = [];
after(async () => {
  await Promise.all(servers.map((server) => server.close({ deadline: Date.now() })));
  rmSync(dir, { recursive: true, force: true });
});

const makeCertificate = (name: string) => makeTestCertificate(dir, name);

async function start(files: TlsFiles, logs: string[] = []): Promise<number> {
  const http = createHttpServer(
    (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '2' });
      res.end('ok');
    },
    httpSchema.parse({}),
    createLogger('test', { level: 'debug', write: (line) => logs.push(line) }),
    { tls: files },
  );
  servers.push(http);
  return http.listen('127.0.0.1', 0, 'test.listen.port');
}

/** The fingerprint of the certificate a new connection is served. */
function servedFingerprint(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
      resolve(socket.getPeerX509Certificate()!.fingerprint256);
      socket.destroy();
    });
    socket.on('error', reject);
  });
}

function get(port: number, ca: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/', ca: readFileSync(ca), agent: false }, (res) => {
      let body = '';
      res.on('data', (chunk) => {
        body += chunk;
      });
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function until(predicate: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

test('HTTPS is served with the configured certificate, and requests pass the connection caps', async () => {
  const a = makeCertificate('served');
  const port = await start({ ...a, setting: 'test.listen.tls' });
  // A verified connection: the certificate is the one configured, for 127.0.0.1.
  assert.deepEqual(await get(port, a.cert), { status: 200, body: 'ok' });
  assert.equal(await servedFingerprint(port), a.fingerprint);
});

test('plain HTTP to a TLS listener gets no HTTP answer', async () => {
  const a = makeCertificate('plain');
  const port = await start({ ...a, setting: 'test.listen.tls' });
  const answer = await fetch(`http://127.0.0.1:${port}/`).then(
    (response) => `HTTP ${response.status}`,
    () => 'failed',
  );
  assert.equal(answer, 'failed');
});

test('a renewed certificate is served to new connections without a restart; a broken renewal keeps it', async () => {
  const first = makeCertificate('first');
  const files = {
    cert: path.join(dir, 'live.crt'),
    key: path.join(dir, 'live.key'),
    setting: 'test.listen.tls',
  };
  writeFileSync(files.cert, readFileSync(first.cert));
  writeFileSync(files.key, readFileSync(first.key));
  const logs: string[] = [];
  const port = await start(files, logs);
  assert.equal(await servedFingerprint(port), first.fingerprint);

  // Renewed the way ACME clients write: new files renamed over the old ones.
  const second = makeCertificate('second');
  renameSync(second.key, files.key);
  renameSync(second.cert, files.cert);
  await until(async () => (await servedFingerprint(port)) === second.fingerprint, 'the renewed certificate');
  assert.ok(
    logs.some((line) => line.includes('TLS certificate reloaded') && line.includes(second.fingerprint)),
  );

  // A half-written renewal: the certificate in use stays, and the log says why.
  writeFileSync(files.cert, 'not a certificate');
  await until(
    async () => logs.some((line) => line.includes('TLS certificate not reloaded')),
    'the error line',
  );
  assert.equal(await servedFingerprint(port), second.fingerprint);
  assert.ok(
    logs.some((line) => line.includes('test.listen.tls.cert') && line.includes('not a PEM certificate')),
  );
});

test('a key that is not the certificate’s stops the start, naming the setting', () => {
  const a = makeCertificate('mine');
  const b = makeCertificate('other');
  assert.throws(
    () =>
      createHttpServer(() => {}, httpSchema.parse({}), createLogger('test', { write: () => {} }), {
        tls: { cert: a.cert, key: b.key, setting: 'gateway.listen.tls' },
      }),
    (error: unknown) =>
      error instanceof ConfigError &&
      /gateway\.listen\.tls\.key: .* is not the private key of/.test(error.message),
  );
  assert.throws(
    () =>
      createHttpServer(() => {}, httpSchema.parse({}), createLogger('test', { write: () => {} }), {
        tls: { cert: path.join(dir, 'missing.crt'), key: a.key, setting: 'gateway.listen.tls' },
      }),
    /gateway\.listen\.tls\.cert: .*missing\.crt cannot be read \(ENOENT\)/,
  );
});
