import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createRouter, parseRequestTarget } from './routes.ts';

const router = createRouter({
  mcpServerUrl: 'http://127.0.0.1:8001',
  routes: [
    { prefix: '/api/stocks', upstream: 'http://127.0.0.1:8002/stocks' },
    { prefix: '/api/customers/', upstream: 'http://127.0.0.1:8002/customers/' },
    { prefix: '/api/customers/vip', upstream: 'http://127.0.0.1:8003/' },
  ],
});

const route = (raw: string) => {
  const target = parseRequestTarget(raw);
  return target && router.match(target);
};
const targetOf = (raw: string) => {
  const match = route(raw);
  return match && `${match.route.upstream.origin}${match.target.path}`;
};

describe('routes', () => {
  test('the MCP endpoint and its metadata go to the MCP server with their paths', () => {
    assert.equal(targetOf('/mcp'), 'http://127.0.0.1:8001/mcp');
    assert.equal(targetOf('/mcp/'), 'http://127.0.0.1:8001/mcp/');
    assert.equal(targetOf('/mcp?x=1'), 'http://127.0.0.1:8001/mcp?x=1');
    assert.equal(
      targetOf('/.well-known/oauth-protected-resource'),
      'http://127.0.0.1:8001/.well-known/oauth-protected-resource',
    );
    assert.equal(
      targetOf('/.well-known/oauth-protected-resource/mcp'),
      'http://127.0.0.1:8001/.well-known/oauth-protected-resource/mcp',
    );
    assert.equal(route('/mcp')?.route.kind, 'mcp');
  });

  test("an API prefix is replaced by the upstream's path; the query string is kept", () => {
    assert.equal(targetOf('/api/stocks'), 'http://127.0.0.1:8002/stocks');
    assert.equal(targetOf('/api/stocks/'), 'http://127.0.0.1:8002/stocks/');
    assert.equal(targetOf('/api/stocks/ACME?full=1'), 'http://127.0.0.1:8002/stocks/ACME?full=1');
    assert.equal(targetOf('/api/customers/me'), 'http://127.0.0.1:8002/customers/me');
    assert.equal(route('/api/stocks')?.route.kind, 'api');
  });

  test('the longest prefix wins', () => {
    assert.equal(targetOf('/api/customers/vip/1'), 'http://127.0.0.1:8003/1');
  });

  test('prefixes match whole segments only; unknown paths match nothing', () => {
    assert.equal(route('/api/stocksX'), undefined);
    assert.equal(route('/mcpx'), undefined);
    assert.equal(route('/'), undefined);
    assert.equal(route('/api'), undefined);
    assert.equal(route('/.well-known/oauth-authorization-server'), undefined);
  });

  test('dot segments are resolved before routing, so a prefix cannot be escaped', () => {
    assert.equal(targetOf('/api/stocks/../customers/me'), 'http://127.0.0.1:8002/customers/me');
    assert.equal(targetOf('/api/stocks/%2e%2e/%2E%2E/mcp'), 'http://127.0.0.1:8001/mcp');
    assert.equal(route('/api/stocks/../../etc/passwd'), undefined);
  });

  test('targets that are not plain paths are refused', () => {
    assert.equal(parseRequestTarget('http://evil.example/mcp'), undefined);
    assert.equal(parseRequestTarget('*'), undefined);
    assert.equal(parseRequestTarget(undefined), undefined);
    assert.equal(parseRequestTarget('/api/stocks/..%2f..%2fmcp'), undefined, 'encoded slash');
    assert.equal(parseRequestTarget('/api/stocks/..%5Cmcp'), undefined, 'encoded backslash');
    // A double slash stays a path; it never becomes a host.
    assert.deepEqual(parseRequestTarget('//evil.example/mcp'), {
      pathname: '//evil.example/mcp',
      search: '',
    });
  });

  test('a target taken without URL parsing is exactly what URL parsing makes of it', () => {
    const parsed = (raw: string) => {
      const url = new URL(`http://gateway.invalid${raw}`);
      return { pathname: url.pathname, search: url.search };
    };
    const fixed = [
      '/mcp',
      '/mcp?',
      '/mcp?x=1&y=%20',
      '/.well-known/oauth-protected-resource/mcp',
      '/api/stocks/./ACME',
      '/api/stocks/.',
      '/api/stocks/..',
      '/api/stocks/..?x',
      '/a/.b/..c/c..',
      '/a b',
      '/a?b c',
      '/é',
      '/a#frag',
      '/a?b#c',
      '/a?x/../y',
      "/a!$&'()*+,;=:@~-_",
      "/a?b='c'",
      '//x/../y',
    ];
    // And random ones, from the characters that matter to the parser.
    const alphabet = [
      '/',
      '.',
      '..',
      '?',
      '%',
      '%2e',
      'a',
      'Z',
      '9',
      '#',
      ' ',
      '\\',
      'é',
      '-',
      '~',
      ':',
      '@',
      '"',
      '^',
    ];
    let seed = 7;
    const next = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed;
    };
    const random = Array.from({ length: 20_000 }, () => {
      let raw = '/';
      for (let i = next() % 12; i > 0; i--) raw += alphabet[next() % alphabet.length];
      return raw;
    });
    for (const raw of [...fixed, ...random]) {
      if (/%2f|%5c/i.test(raw)) continue;
      assert.deepEqual(parseRequestTarget(raw), parsed(raw), raw);
    }
  });
});
