import assert from 'node:assert/strict';
import { test } from 'node:test';
import { waitInWords } from './duration.ts';

test('waits are said in the unit a person plans with', () => {
  const cases: Array<[number, string]> = [
    [0, 'less than a minute'],
    [1, 'less than a minute'],
    [59.2, 'about a minute'],
    [60, 'about a minute'],
    [89, 'about a minute'],
    [90, 'about 2 minutes'],
    [812, 'about 14 minutes'],
    [900, 'about 15 minutes'],
    [3509, 'about 58 minutes'],
    [3510, 'about an hour'],
    [5399, 'about an hour'],
    [5400, 'about 2 hours'],
    [86_400, 'about 24 hours'],
  ];
  for (const [seconds, words] of cases) assert.equal(waitInWords(seconds), words, String(seconds));
});
