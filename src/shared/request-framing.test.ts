import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { test } from 'node:test';
import { framingProblem } from './request-framing.ts';

const request = (raw: string[], options: { url?: string; method?: string; httpVersion?: string } = {}) => {
  const headers: Record<string, string> = {};
  for (let i = 0; i < raw.length; i += 2) headers[raw[i]!.toLowerCase()] ??= raw[i + 1]!;
  return {
    rawHeaders: raw,
    headers,
    url: options.url ?? '/mcp',
    method: options.method ?? 'POST',
    httpVersion: options.httpVersion ?? '1.1',
  } as unknown as IncomingMessage;
};

test('an ordinary request has no framing problem', () => {
  assert.equal(framingProblem(request(['Host', 'a', 'Authorization', 'Bearer x'])), undefined);
  assert.equal(framingProblem(request(['Host', 'a'], { method: 'OPTIONS', url: '*' })), undefined);
});

test('two Host or two Authorization fields, in any case, are refused', () => {
  assert.match(framingProblem(request(['Host', 'a', 'host', 'b']))!, /one Host/);
  assert.match(
    framingProblem(request(['Host', 'a', 'Authorization', 'Bearer x', 'AUTHORIZATION', 'Bearer y']))!,
    /one Authorization/,
  );
});

test('HTTP/1.0 with Transfer-Encoding is faulty framing (RFC 9112 §6.1)', () => {
  assert.match(
    framingProblem(request(['Transfer-Encoding', 'chunked'], { httpVersion: '1.0' }))!,
    /HTTP\/1.0/,
  );
  assert.equal(framingProblem(request(['Transfer-Encoding', 'chunked'])), undefined);
});

test('a target that is not a path is refused', () => {
  assert.match(framingProblem(request([], { url: 'http://evil.example/mcp' }))!, /path/);
  assert.match(framingProblem(request([], { url: '*' }))!, /path/);
});
