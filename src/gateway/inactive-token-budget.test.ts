import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createInactiveTokenBudget } from './inactive-token-budget.ts';

test('an address may have max tokens found inactive per window, then waits for the window to end', () => {
  let now = 1_000_000;
  const budget = createInactiveTokenBudget({ max: 3, windowSeconds: 60 }, { now: () => now });
  for (let i = 0; i < 3; i += 1) {
    assert.equal(budget.exhaustedFor('203.0.113.7'), 0, `within the budget before token ${i + 1}`);
    budget.spend('203.0.113.7');
  }
  assert.equal(budget.exhaustedFor('203.0.113.7'), 60, 'exhausted: the whole window is left');
  assert.equal(budget.exhaustedFor('203.0.113.8'), 0, 'another address has its own budget');
  now += 45_500;
  assert.equal(budget.exhaustedFor('203.0.113.7'), 15, 'Retry-After rounds up');
  now += 14_500;
  assert.equal(budget.exhaustedFor('203.0.113.7'), 0, 'a new window, a new budget');
  budget.spend('203.0.113.7');
  assert.equal(budget.exhaustedFor('203.0.113.7'), 0);
});

test('an IPv6 client counts by its /64, as the connection caps count it; IPv4-mapped as IPv4', () => {
  const budget = createInactiveTokenBudget({ max: 2, windowSeconds: 60 });
  budget.spend('2001:db8:1:2::1');
  budget.spend('2001:db8:1:2:ffff::9');
  assert.ok(budget.exhaustedFor('2001:db8:1:2::42') > 0, 'another address of the same /64');
  assert.equal(budget.exhaustedFor('2001:db8:1:3::1'), 0, 'another /64');
  budget.spend('::ffff:192.0.2.1');
  budget.spend('192.0.2.1');
  assert.ok(budget.exhaustedFor('192.0.2.1') > 0);
});
