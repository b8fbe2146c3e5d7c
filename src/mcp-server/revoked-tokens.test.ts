import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createRevokedTokens } from './revoked-tokens.ts';

test('a revoked grant is refused whatever the token; subjects and clients as of the event', () => {
  const revoked = createRevokedTokens({ maxEntries: 10, retentionSeconds: 60 });
  revoked.record({ type: 'grant', grant_id: 'g1', at: 1000 });
  revoked.record({ type: 'subject', sub: 'alice', at: 1000 });
  revoked.record({ type: 'client', client_id: 'wl', at: 2000 });
  revoked.record({ type: 'token', token_hash: 'h', at: 1000 });
  assert.equal(revoked.isRevoked({ grant_id: 'g1', sub: 'bob', client_id: 'a', iat: 5000 }), true);
  assert.equal(revoked.isRevoked({ grant_id: 'g2', sub: 'alice', client_id: 'a', iat: 999 }), true);
  assert.equal(
    revoked.isRevoked({ grant_id: 'g2', sub: 'alice', client_id: 'a', iat: 1001 }),
    false,
    'a later sign-in',
  );
  assert.equal(revoked.isRevoked({ sub: 'wl', client_id: 'wl', iat: 1500 }), true);
  assert.equal(revoked.isRevoked({ sub: 'wl', client_id: 'wl', iat: 2500 }), false);
  assert.equal(revoked.isRevoked({ sub: 'alice', client_id: 'a' }), true, 'no iat: assume the worst');
  assert.equal(revoked.isRevoked({ grant_id: 'g3', sub: 'carol', client_id: 'b', iat: 1 }), false);
});

test("a revoked token is refused by its hash (a workload's phantom token has no grant), whatever its iat", () => {
  const revoked = createRevokedTokens({ maxEntries: 10, retentionSeconds: 60 });
  revoked.record({ type: 'token', token_hash: 'h', client_id: 'wl', at: 1000 });
  assert.equal(revoked.isRevoked({ token_hash: 'h', sub: 'wl', client_id: 'wl', iat: 5000 }), true);
  assert.equal(revoked.isRevoked({ token_hash: 'other', sub: 'wl', client_id: 'wl', iat: 900 }), false);
  assert.equal(revoked.isRevoked({ token_hash: 7, sub: 'wl', client_id: 'wl', iat: 900 }), false);
});
