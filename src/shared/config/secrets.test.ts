import assert from 'node:assert/strict';
import { mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { resolveSecret } from './secrets.ts';

test('file references are generated once, owner-only, and stable', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'gatehouse-secrets-'));
  assert.throws(() => resolveSecret('file:secrets/a.secret', dir), /does not exist/);
  const first = resolveSecret('file:secrets/a.secret', dir, { generate: true });
  assert.ok(first.length >= 32);
  assert.equal(statSync(path.join(dir, 'secrets/a.secret')).mode & 0o777, 0o600);
  assert.equal(resolveSecret('file:secrets/a.secret', dir, { generate: true }), first);
});

test('env references read the environment and fail clearly when unset', () => {
  process.env.GATEHOUSE_TEST_SECRET = 'x'.repeat(40);
  assert.equal(resolveSecret('env:GATEHOUSE_TEST_SECRET', '/tmp'), 'x'.repeat(40));
  assert.throws(
    () => resolveSecret('env:GATEHOUSE_UNSET_SECRET', '/tmp'),
    /GATEHOUSE_UNSET_SECRET is not set/,
  );
});
