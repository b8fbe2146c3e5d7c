import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseConfig } from '../../shared/config/load.ts';
import {
  accessTokenTtlWithinSignIn,
  anyRefreshTokens,
  mayHoldRefreshTokens,
  refreshTokenTtl,
} from './refresh-token-policy.ts';

const policyOf = (refreshTokens: Record<string, unknown> = {}) =>
  parseConfig({ authorizationServer: { refreshTokens } }).authorizationServer.refreshTokens;

test('by default: confidential pre-registered and self-registered clients, no public client, no CIMD', () => {
  const policy = policyOf();
  assert.equal(mayHoldRefreshTokens(policy, 'pre-registered', 'client_secret_basic'), true);
  assert.equal(mayHoldRefreshTokens(policy, 'dynamic', 'client_secret_basic'), true);
  assert.equal(mayHoldRefreshTokens(policy, 'dynamic', 'private_key_jwt'), true);
  assert.equal(mayHoldRefreshTokens(policy, 'dynamic', 'none'), false);
  assert.equal(mayHoldRefreshTokens(policy, 'pre-registered', 'none'), false);
  assert.equal(mayHoldRefreshTokens(policy, 'cimd', 'private_key_jwt'), false);
  assert.equal(anyRefreshTokens(policy), true);
  assert.equal(policy.absoluteLifetimeSeconds, 8 * 3600);
});

test('publicClients opens public clients of the allowed kinds only; enabled: false closes everything', () => {
  const open = policyOf({ clients: { publicClients: true } });
  assert.equal(mayHoldRefreshTokens(open, 'dynamic', 'none'), true);
  assert.equal(mayHoldRefreshTokens(open, 'cimd', 'none'), false, 'cimd is still off');
  const off = policyOf({ enabled: false, clients: { cimd: true, publicClients: true } });
  for (const kind of ['pre-registered', 'dynamic', 'cimd'] as const)
    assert.equal(mayHoldRefreshTokens(off, kind, 'client_secret_basic'), false);
  assert.equal(anyRefreshTokens(off), false);
  assert.equal(anyRefreshTokens(policyOf({ clients: { preRegistered: false, dynamic: false } })), false);
});

test('a refresh token never outlives the absolute lifetime counted from the first one, and lives at least 1 s', () => {
  const policy = policyOf({ absoluteLifetimeSeconds: 3600, ttlSeconds: 600 });
  assert.equal(refreshTokenTtl(policy, 1000, 1000), 600, 'ttlSeconds while far from the end');
  assert.equal(refreshTokenTtl(policy, 1000, 1000 + 3300), 300, 'cut at iiat + absolute');
  assert.equal(refreshTokenTtl(policy, 1000, 1000 + 4000), 1);
  assert.equal(refreshTokenTtl(policy, undefined, 5000), 600, 'no iiat: counted from now');
});

test("an access token issued with a refresh token's grant ends with the sign-in", () => {
  const policy = policyOf({ absoluteLifetimeSeconds: 3600 });
  assert.equal(accessTokenTtlWithinSignIn(policy, 900, 1000, 1000), 900);
  assert.equal(accessTokenTtlWithinSignIn(policy, 900, 1000, 1000 + 3000), 600);
  assert.equal(
    accessTokenTtlWithinSignIn(policy, 900, undefined, 5000),
    900,
    'no refresh token: its own lifetime',
  );
});

test('the old dynamicRegistration.allowRefreshTokens is refused with where it went', () => {
  assert.throws(
    () => parseConfig({ authorizationServer: { dynamicRegistration: { allowRefreshTokens: true } } }),
    /refreshTokens\.clients/,
  );
});
