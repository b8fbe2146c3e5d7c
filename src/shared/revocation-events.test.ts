import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseRevocationEvent } from './revocation-events.ts';

test('events are validated before anything is dropped for them', () => {
  assert.deepEqual(parseRevocationEvent('{"type":"grant","grant_id":"g","at":1}'), {
    type: 'grant',
    grant_id: 'g',
    at: 1,
  });
  assert.deepEqual(parseRevocationEvent('{"type":"token","token_hash":"h","client_id":"c","at":1}'), {
    type: 'token',
    token_hash: 'h',
    client_id: 'c',
    at: 1,
  });
  for (const bad of [
    'not json',
    '[]',
    '{"type":"grant","at":1}',
    '{"type":"grant","grant_id":"","at":1}',
    '{"type":"grant","grant_id":"g"}',
    '{"type":"everything","at":1}',
    `{"type":"subject","sub":"${'x'.repeat(600)}","at":1}`,
  ]) {
    assert.equal(parseRevocationEvent(bad), undefined, bad);
  }
});
