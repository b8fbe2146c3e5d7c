import assert from 'node:assert/strict';
import { test } from 'node:test';
import { openFileLimit, parseOpenFileLimit, processConnectionBudget } from './open-file-limit.ts';

const LIMITS = `Limit                     Soft Limit           Hard Limit           Units
Max cpu time              unlimited            unlimited            seconds
Max open files            4096                 524288               files
Max locked memory         8388608              8388608              bytes
`;

test('the soft "Max open files" limit is read from /proc/<pid>/limits', () => {
  assert.equal(parseOpenFileLimit(LIMITS), 4096);
  assert.equal(parseOpenFileLimit(LIMITS.replace('4096 ', 'unlimited')), undefined);
  assert.equal(parseOpenFileLimit('Max cpu time unlimited unlimited seconds\n'), undefined);
  assert.equal(
    openFileLimit(() => LIMITS),
    4096,
  );
  assert.equal(
    openFileLimit(() => {
      throw Object.assign(new Error('no /proc'), { code: 'ENOENT' });
    }),
    undefined,
  );
});

test('connections may take half the open-file limit; without a known limit only the configured caps apply', () => {
  assert.equal(processConnectionBudget(4096), 2048);
  assert.equal(processConnectionBudget(1), 1);
  assert.equal(processConnectionBudget(undefined), Number.POSITIVE_INFINITY);
});

test('on Linux this process has a limit, and the budget stays below it', {
  skip: process.platform !== 'linux',
}, () => {
  const limit = openFileLimit();
  assert.ok(limit !== undefined && limit > 0);
  assert.ok(processConnectionBudget(limit) < limit);
});
