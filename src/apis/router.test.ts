import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ApiError } from './api-error.ts';
import { matchRoute, type Route } from './router.ts';

const route = (method: Route['method'], path: string): Route => ({
  method,
  path,
  scope: 's',
  handle: () => ({ status: 200, body: path }),
});
const routes = [route('GET', '/'), route('POST', '/orders'), route('GET', '/{symbol}')];

function fails(method: string, segments: string[], status: number): ApiError {
  try {
    matchRoute(routes, method, segments);
  } catch (error) {
    assert.ok(error instanceof ApiError);
    assert.equal(error.status, status);
    return error;
  }
  assert.fail('expected a refusal');
}

describe('matchRoute', () => {
  test('matches literal paths and templates in order', () => {
    assert.equal(matchRoute(routes, 'GET', []).route.path, '/');
    assert.equal(matchRoute(routes, 'POST', ['orders']).route.path, '/orders');
    assert.deepEqual(matchRoute(routes, 'GET', ['ACME']).params, { symbol: 'ACME' });
  });

  test('unknown path: 404', () => {
    fails('GET', ['ACME', 'history'], 404);
  });

  test('known path, other method: 405 with Allow', () => {
    assert.equal(fails('DELETE', [], 405).headers.allow, 'GET');
    assert.equal(fails('PUT', ['orders'], 405).headers.allow, 'POST, GET');
    assert.equal(fails('POST', ['ACME'], 405).headers.allow, 'GET');
  });
});
