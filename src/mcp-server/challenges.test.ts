import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  challengeScopes,
  dpopChallenge,
  invalidToken,
  invalidTokenResponse,
  missingScopes,
  missingTokenChallenge,
  scopeChallenge,
} from './challenges.ts';

const settings = {
  resourceMetadataUrl: 'http://localhost:8000/.well-known/oauth-protected-resource/mcp',
  baseScopes: ['stocks:read', 'customers:read'],
  dpopAlgorithms: ['ES256', 'EdDSA'],
};

describe('challenges', () => {
  test('no token: resource_metadata and the base scope, no error code (RFC 6750 §3.1)', () => {
    assert.equal(
      missingTokenChallenge(settings),
      'Bearer resource_metadata="http://localhost:8000/.well-known/oauth-protected-resource/mcp", scope="stocks:read customers:read"',
    );
  });

  test('the second challenge names the DPoP scheme and its algorithms (RFC 9449 §7.1)', () => {
    assert.equal(dpopChallenge(settings), 'DPoP algs="ES256 EdDSA"');
  });

  test('no token and no base scopes: the scope parameter is left out', () => {
    assert.equal(
      missingTokenChallenge({ ...settings, baseScopes: [] }),
      'Bearer resource_metadata="http://localhost:8000/.well-known/oauth-protected-resource/mcp"',
    );
  });

  test('invalid token: 401 invalid_token with a description, the base scope and resource_metadata', async () => {
    const response = invalidTokenResponse(invalidToken('the access token has expired'), settings);
    assert.equal(response.status, 401);
    assert.equal(
      response.headers.get('www-authenticate'),
      'Bearer error="invalid_token", error_description="the access token has expired", ' +
        'scope="stocks:read customers:read", ' +
        'resource_metadata="http://localhost:8000/.well-known/oauth-protected-resource/mcp"',
    );
    assert.deepEqual(await response.json(), {
      error: 'invalid_token',
      error_description: 'the access token has expired',
    });
  });

  test('anything that is not an OAuth error is a plain 500, with nothing of the error in it', async () => {
    const response = invalidTokenResponse(new Error('at secret.ts:12'), settings);
    assert.equal(response.status, 500);
    assert.doesNotMatch(await response.text(), /secret/);
  });

  test('missing scopes keep the order they are needed in', () => {
    assert.deepEqual(missingScopes(['a', 'b', 'c'], ['b']), ['a', 'c']);
    assert.deepEqual(missingScopes(['a'], new Set(['a'])), []);
  });

  test('2026-07-28: the challenge names every scope the operation needs, and only those (SEP-2350)', () => {
    assert.deepEqual(challengeScopes(['stocks:trade'], ['stocks:read', 'customers:read'], 'modern'), [
      'stocks:trade',
    ]);
    assert.deepEqual(challengeScopes(['stocks:read', 'stocks:trade'], ['stocks:read'], 'modern'), [
      'stocks:read',
      'stocks:trade',
    ]);
  });

  test('2025 era: the token’s scopes and the operation’s, so replacing clients keep what they had', () => {
    assert.deepEqual(challengeScopes(['stocks:trade'], ['stocks:read', 'customers:read'], 'legacy'), [
      'stocks:read',
      'customers:read',
      'stocks:trade',
    ]);
    assert.deepEqual(challengeScopes(['stocks:read'], ['stocks:read'], 'legacy'), ['stocks:read']);
  });

  test('no challenge when the token has every scope the operation needs', () => {
    assert.equal(scopeChallenge('the get_stock tool', ['stocks:read'], ['stocks:read'], 'modern'), undefined);
    assert.equal(
      scopeChallenge('the t tool', ['a', 'b'], ['b', 'a', 'c'], 'legacy'),
      undefined,
      'order does not matter',
    );
  });

  test('a challenge says which scope is missing in a description safe for a header', () => {
    const challenge = scopeChallenge('the place_order tool', ['stocks:trade'], ['stocks:read'], 'modern');
    assert.deepEqual(challenge?.scopes, ['stocks:trade']);
    assert.match(challenge?.errorDescription ?? '', /place_order tool needs the scope stocks:trade/);
    // RFC 6750 error-description: printable ASCII without '"' and '\'.
    assert.match(challenge?.errorDescription ?? '', /^[\x20-\x21\x23-\x5B\x5D-\x7E]+$/);
  });
});
