import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  buildUpstreamRequest,
  callUpstream,
  describeUpstreamFailure,
  MAX_RESULT_BYTES,
  pathParameters,
  UpstreamRequestError,
} from './upstream-call.ts';

const BASE = 'http://127.0.0.1:8002/stocks';

describe('path templates', () => {
  test('name the arguments they use', () => {
    assert.deepEqual(pathParameters('/{symbol}'), ['symbol']);
    assert.deepEqual(pathParameters('/accounts/{account}/orders/{order_id}'), ['account', 'order_id']);
    assert.deepEqual(pathParameters('/'), []);
  });

  test('put URL-encoded arguments in the path', () => {
    const request = buildUpstreamRequest({ method: 'GET', path: '/{symbol}' }, BASE, { symbol: 'ACME' });
    assert.equal(request.url, `${BASE}/ACME`);
    assert.equal(request.body, undefined);
  });

  test('encode every character that would change the path or the query', () => {
    const request = buildUpstreamRequest({ method: 'GET', path: '/{name}/x' }, BASE, {
      name: 'a/b?c=d#e f%g&ü',
    });
    assert.equal(request.url, `${BASE}/a%2Fb%3Fc%3Dd%23e%20f%25g%26%C3%BC/x`);
  });

  test('refuse dot segments and empty values, which would walk out of the API', () => {
    for (const value of ['..', '.', '']) {
      assert.throws(
        () => buildUpstreamRequest({ method: 'GET', path: '/{symbol}' }, BASE, { symbol: value }),
        UpstreamRequestError,
      );
    }
    // Dots inside a segment are harmless.
    assert.equal(
      buildUpstreamRequest({ method: 'GET', path: '/{symbol}' }, BASE, { symbol: '...x' }).url,
      `${BASE}/...x`,
    );
  });

  test('refuse objects, arrays and missing values in the path', () => {
    for (const value of [{ a: 1 }, ['a'], undefined, null]) {
      assert.throws(
        () => buildUpstreamRequest({ method: 'GET', path: '/{symbol}' }, BASE, { symbol: value }),
        /must be a string, number or boolean/,
      );
    }
  });

  test('numbers and booleans are written as text', () => {
    const request = buildUpstreamRequest({ method: 'DELETE', path: '/orders/{id}' }, BASE, { id: 42 });
    assert.equal(request.url, `${BASE}/orders/42`);
  });

  test('the root path keeps the base URL', () => {
    assert.equal(buildUpstreamRequest({ method: 'GET', path: '/' }, BASE, {}).url, `${BASE}/`);
  });
});

describe('other arguments', () => {
  test('go in the query string for GET, arrays repeated, objects as JSON', () => {
    const request = buildUpstreamRequest({ method: 'GET', path: '/{symbol}' }, BASE, {
      symbol: 'ACME',
      from: '2026-01-01',
      fields: ['price', 'name'],
      filter: { region: 'eu' },
      skip: undefined,
    });
    const url = new URL(request.url);
    assert.equal(url.pathname, '/stocks/ACME');
    assert.equal(url.searchParams.get('from'), '2026-01-01');
    assert.deepEqual(url.searchParams.getAll('fields'), ['price', 'name']);
    assert.equal(url.searchParams.get('filter'), '{"region":"eu"}');
    assert.equal(url.searchParams.has('skip'), false);
    assert.equal(url.searchParams.has('symbol'), false, 'used in the path, not repeated');
  });

  test('go in a JSON body for POST, PUT and PATCH', () => {
    for (const method of ['POST', 'PUT', 'PATCH'] as const) {
      const request = buildUpstreamRequest({ method, path: '/orders' }, BASE, {
        symbol: 'ACME',
        side: 'buy',
        quantity: 3,
      });
      assert.equal(request.url, `${BASE}/orders`);
      assert.deepEqual(JSON.parse(request.body ?? ''), { symbol: 'ACME', side: 'buy', quantity: 3 });
    }
    assert.equal(buildUpstreamRequest({ method: 'POST', path: '/x' }, BASE, {}).body, '{}');
  });
});

describe('failure messages', () => {
  test('say the status and what to do', () => {
    assert.match(
      describeUpstreamFailure('stocks', 500, ''),
      /The stocks API failed \(HTTP 500\)\. Try again later/,
    );
    assert.match(describeUpstreamFailure('stocks', 503, ''), /HTTP 503/);
    assert.match(
      describeUpstreamFailure('stocks', 400, ''),
      /rejected the request \(HTTP 400\)\. Check the arguments/,
    );
    assert.match(describeUpstreamFailure('stocks', 429, ''), /Wait a little/);
    assert.match(describeUpstreamFailure('stocks', 401, ''), /configuration problem/);
    assert.match(describeUpstreamFailure('stocks', 403, ''), /not allowed/);
  });

  test('carry the API’s error description for a 4xx, shortened', () => {
    const body = JSON.stringify({ error: 'invalid_request', error_description: 'quantity must be positive' });
    assert.match(describeUpstreamFailure('stocks', 400, body), /\(HTTP 400\): quantity must be positive\./);
    const long = JSON.stringify({ error_description: 'x'.repeat(1000) });
    assert.ok(describeUpstreamFailure('stocks', 400, long).length < 500);
  });

  test('never repeat a 5xx body or a non-JSON body', () => {
    const body = JSON.stringify({ error: 'Error: boom\n    at handler (/srv/api.ts:12:3)' });
    assert.doesNotMatch(describeUpstreamFailure('stocks', 500, body), /boom|api\.ts/);
    assert.doesNotMatch(describeUpstreamFailure('stocks', 400, '<html>stack</html>'), /stack/);
  });
});

describe('calling the API', () => {
  const request = buildUpstreamRequest({ method: 'GET', path: '/{symbol}' }, BASE, { symbol: 'ACME' });

  test('sends the exchanged token and returns the JSON answer', async () => {
    let seen: { url: string; authorization: string | null } | undefined;
    const outcome = await callUpstream({
      apiName: 'stocks',
      request,
      accessToken: 'exchanged.jwt.value',
      timeoutMs: 1000,
      fetch: async (input, init) => {
        seen = { url: String(input), authorization: new Headers(init?.headers).get('authorization') };
        return Response.json({ symbol: 'ACME', price: 1 });
      },
    });
    assert.deepEqual(seen, { url: `${BASE}/ACME`, authorization: 'Bearer exchanged.jwt.value' });
    assert.equal(outcome.status, 200);
    assert.equal(outcome.failure, undefined);
    assert.equal(outcome.result.isError, undefined);
    assert.deepEqual(JSON.parse((outcome.result.content[0] as { text: string }).text), {
      symbol: 'ACME',
      price: 1,
    });
  });

  test('an error status is a tool error with the status', async () => {
    const outcome = await callUpstream({
      apiName: 'stocks',
      request,
      accessToken: 't',
      timeoutMs: 1000,
      fetch: async () => new Response('Error\n    at x.ts:1', { status: 502 }),
    });
    assert.equal(outcome.status, 502);
    assert.equal(outcome.failure, 'status');
    assert.equal(outcome.result.isError, true);
    assert.match((outcome.result.content[0] as { text: string }).text, /HTTP 502/);
  });

  test('an API that does not answer in time is a tool error naming the timeout', async () => {
    const outcome = await callUpstream({
      apiName: 'stocks',
      request,
      accessToken: 't',
      timeoutMs: 50,
      fetch: (_input, init) =>
        new Promise((_resolve, reject) => {
          init?.signal?.addEventListener('abort', () => reject(init.signal?.reason));
        }),
    });
    assert.equal(outcome.failure, 'timeout');
    assert.equal(outcome.status, undefined);
    assert.match((outcome.result.content[0] as { text: string }).text, /did not answer within 50 ms/);
  });

  test('an API that cannot be reached is a tool error, without the network error', async () => {
    const outcome = await callUpstream({
      apiName: 'stocks',
      request,
      accessToken: 't',
      timeoutMs: 1000,
      fetch: async () => {
        throw new TypeError('fetch failed: connect ECONNREFUSED 127.0.0.1:8002');
      },
    });
    assert.equal(outcome.failure, 'unreachable');
    const text = (outcome.result.content[0] as { text: string }).text;
    assert.match(text, /could not be reached/);
    assert.doesNotMatch(text, /ECONNREFUSED/);
  });

  test('a very long answer is cut', async () => {
    const outcome = await callUpstream({
      apiName: 'stocks',
      request,
      accessToken: 't',
      timeoutMs: 1000,
      fetch: async () => new Response('x'.repeat(MAX_RESULT_BYTES + 10), { status: 200 }),
    });
    const text = (outcome.result.content[0] as { text: string }).text;
    assert.ok(text.length < MAX_RESULT_BYTES + 200);
    assert.match(text, /\[cut:/);
  });
});
