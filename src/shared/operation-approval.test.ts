import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  argumentsDigest,
  canonicalJson,
  TOOL_CALL_DETAILS_TYPE,
  toolCallDetailsOf,
} from './operation-approval.ts';

test('canonical JSON sorts keys at every level, so the digest is of the arguments, not their order', () => {
  assert.equal(canonicalJson({ b: 1, a: [{ d: true, c: null }] }), '{"a":[{"c":null,"d":true}],"b":1}');
  assert.equal(
    argumentsDigest({ symbol: 'SAP', side: 'buy', quantity: 3 }),
    argumentsDigest({ quantity: 3, side: 'buy', symbol: 'SAP' }),
  );
  assert.notEqual(
    argumentsDigest({ symbol: 'SAP', side: 'buy', quantity: 3 }),
    argumentsDigest({ symbol: 'SAP', side: 'buy', quantity: 30 }),
  );
  assert.notEqual(argumentsDigest({ quantity: 3 }), argumentsDigest({ quantity: '3' }), 'types count');
});

test('authorization_details: exactly one well-formed tool-call entry, or nothing', () => {
  const digest = argumentsDigest({});
  const entry = { type: TOOL_CALL_DETAILS_TYPE, tool: 'place_order', arguments_digest: digest };
  assert.deepEqual(toolCallDetailsOf(JSON.stringify([entry])), entry);
  assert.deepEqual(toolCallDetailsOf([entry]), entry);
  for (const bad of [
    'not json',
    '[]',
    JSON.stringify([entry, entry]),
    JSON.stringify([{ ...entry, type: 'other' }]),
    JSON.stringify([{ ...entry, arguments_digest: 'short' }]),
    JSON.stringify({ ...entry }),
  ])
    assert.equal(toolCallDetailsOf(bad), undefined, bad);
});
