import assert from 'node:assert/strict';
import { test } from 'node:test';
import { rotated, runRounds, usableRounds } from '../../bench/rounds.ts';

test('the order rotates from round to round, so each contender runs in every position', () => {
  const orders = [0, 1, 2, 3].map((round) => rotated(['a', 'b', 'c'], round).join(''));
  assert.deepEqual(orders, ['abc', 'bca', 'cab', 'abc']);
});

test('rounds go on past the minimum while too few are undisturbed, up to the maximum', async () => {
  const plan = { minRounds: 2, maxRounds: 5, minUndisturbed: 2 };
  // Rounds 0 and 1 disturbed (by b), then quiet: it stops once two quiet rounds exist.
  const measured: string[] = [];
  const rounds = await runRounds(['a', 'b'] as const, plan, async (name, round) => {
    measured.push(`${round}${name}`);
    return { disturbed: round < 2 && name === 'b' };
  });
  assert.equal(rounds.length, 4);
  assert.deepEqual(measured, ['0a', '0b', '1b', '1a', '2a', '2b', '3b', '3a']);
  assert.deepEqual(
    rounds.map((round) => round.disturbed),
    [true, true, false, false],
  );
  const { used, reliable, disturbed } = usableRounds(rounds, plan.minUndisturbed);
  assert.equal(reliable, true);
  assert.equal(disturbed, 2);
  assert.deepEqual(
    used.map((round) => round.index),
    [2, 3],
  );
});

test('with too few undisturbed rounds, all are used and the result is not reliable', async () => {
  const plan = { minRounds: 1, maxRounds: 3, minUndisturbed: 2 };
  const rounds = await runRounds(['a'] as const, plan, async () => ({ disturbed: true }));
  assert.equal(rounds.length, 3);
  const { used, reliable } = usableRounds(rounds, plan.minUndisturbed);
  assert.equal(reliable, false);
  assert.equal(used.length, 3);
});
