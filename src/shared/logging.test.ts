import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createLogger, isSensitiveKey, redact } from './logging.ts';

test('values of sensitive keys never reach a log line', () => {
  const lines: string[] = [];
  const logger = createLogger('test', { level: 'debug', write: (line) => lines.push(line) });
  logger.info('request', {
    access_token: 'AT-secret',
    subject_token: 'ST-secret',
    client_secret: 'CS-secret',
    code: '123456',
    headers: { authorization: 'Bearer xyz', cookie: 'a=b' },
    nested: [{ refresh_token: 'RT-secret' }],
    accessToken: 'camel-secret',
    clientSecret: 'camel-client-secret',
    client_id: 'kept',
    scope: 'stocks:read',
  });
  assert.equal(lines.length, 1);
  for (const secret of [
    'camel-secret',
    'camel-client-secret',
    'AT-secret',
    'ST-secret',
    'CS-secret',
    '123456',
    'Bearer xyz',
    'a=b',
    'RT-secret',
  ]) {
    assert.ok(!lines[0]!.includes(secret), secret);
  }
  const record = JSON.parse(lines[0]!);
  assert.equal(record.client_id, 'kept');
  assert.equal(record.scope, 'stocks:read');
  assert.equal(record.component, 'test');
});

test('levels filter and audit lines carry event and outcome', () => {
  const lines: string[] = [];
  const logger = createLogger('test', { level: 'warn', write: (line) => lines.push(line) });
  logger.info('hidden');
  logger.audit('login', { outcome: 'failure', sub: 'user_1' });
  logger.audit('login', { outcome: 'success', sub: 'user_1' });
  assert.equal(lines.length, 1, 'success audits are info, failures warn');
  const record = JSON.parse(lines[0]!);
  assert.equal(record.event, 'login');
  assert.equal(record.outcome, 'failure');
});

test('lines are redacted at any depth; arrays stay arrays; URLs lose their user info and query', () => {
  const lines: string[] = [];
  const logger = createLogger('test', { write: (line) => lines.push(line) });
  logger.info('deep', {
    routes: ['/mcp -> a', '/api -> b'],
    url: new URL('http://127.0.0.1:9000/x'),
    callback: new URL('https://svc:hunter2@app.example/cb?code=abc123&access_token=tok-secret'),
    l1: { l2: { l3: { l4: { l5: { l6: { l7: { id_token: 'deep-secret' } } } } } } },
  });
  assert.ok(!lines[0]!.includes('deep-secret'));
  const record = JSON.parse(lines[0]!);
  assert.deepEqual(record.routes, ['/mcp -> a', '/api -> b']);
  assert.equal(record.url, 'http://127.0.0.1:9000/x');
  // A URL's user info and query can carry secrets: only origin and path are written.
  assert.equal(record.callback, 'https://app.example/cb');
  for (const secret of ['hunter2', 'abc123', 'tok-secret']) assert.ok(!lines[0]!.includes(secret), secret);
  assert.equal(record.l1.l2.l3.l4.l5.l6.l7.id_token, '[redacted]');
});

test('redact leaves plain values alone', () => {
  assert.equal(redact('x'), 'x');
  assert.deepEqual(redact({ a: 1, token: undefined }), { a: 1, token: undefined });
});

test('isSensitiveKey covers the spellings in use', () => {
  for (const key of [
    'access_token',
    'accessToken',
    'refresh-token',
    'client_secret',
    'code',
    'code_verifier',
    'Authorization',
    'subject_token',
    'client_assertion',
    'privateKey',
  ]) {
    assert.equal(isSensitiveKey(key), true, key);
  }
  for (const key of [
    'client_id',
    'scope',
    'status',
    'statusCode',
    'sub',
    'event',
    'token_type_hint_count'.slice(0, 10),
  ]) {
    assert.equal(isSensitiveKey(key), false, key);
  }
});
