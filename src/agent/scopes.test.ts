import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { covers, initialScope, scopeList, stepUpScope } from './scopes.ts';

describe('scope selection', () => {
  test('the first authorization asks for an explicit scope, else the challenge’s, else scopes_supported', () => {
    const scopesSupported = ['stocks:read', 'stocks:trade', 'customers:read'];
    assert.equal(initialScope({ requested: 'a  b', challenged: 'c', scopesSupported }), 'a b');
    assert.equal(
      initialScope({ challenged: 'stocks:read customers:read', scopesSupported }),
      'stocks:read customers:read',
    );
    assert.equal(
      initialScope({ challenged: '  ', scopesSupported }),
      'stocks:read stocks:trade customers:read',
    );
    assert.equal(initialScope({}), undefined);
  });

  test('step-up asks for the union of what is held and what the challenge names, each once', () => {
    assert.equal(
      stepUpScope('stocks:read customers:read', 'stocks:trade'),
      'stocks:read customers:read stocks:trade',
    );
    assert.equal(
      stepUpScope('stocks:read customers:read', 'stocks:read customers:read stocks:trade'),
      'stocks:read customers:read stocks:trade',
    );
    assert.equal(stepUpScope(undefined, 'stocks:read'), 'stocks:read');
    assert.equal(stepUpScope(undefined, undefined), undefined);
  });

  test('covers and scopeList', () => {
    assert.deepEqual(scopeList(' a  b '), ['a', 'b']);
    assert.deepEqual(scopeList(undefined), []);
    assert.ok(covers('a b c', 'c a'));
    assert.ok(!covers('a b', 'a c'));
    assert.ok(covers(undefined, ''));
  });
});
