import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isRoute, isUnderRoute } from './route-match.ts';

test('a route matches in any case and with one trailing slash, as oidc-provider routes it', () => {
  for (const path of ['/token', '/TOKEN', '/Token', '/token/', '/ToKeN/'])
    assert.equal(isRoute(path, '/token'), true, path);
  for (const path of ['/token//', '/tokens', '/token/x', '/tok', '/'])
    assert.equal(isRoute(path, '/token'), false, path);
});

test('non-ASCII letters that upper-case into ASCII are not folded (Turkish dotless i)', () => {
  assert.equal(isRoute('/regıster', '/register'), false);
});

test('under a route: the route itself and its sub-paths', () => {
  assert.equal(isUnderRoute('/REGISTER/abc', '/register'), true);
  assert.equal(isUnderRoute('/register', '/register'), true);
  assert.equal(isUnderRoute('/registered', '/register'), false);
});
