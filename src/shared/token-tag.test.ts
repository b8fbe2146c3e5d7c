import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { hasValidTag, TOKEN_TAG_LENGTH, tagToken, tokenTagKey } from './token-tag.ts';

const key = tokenTagKey(randomBytes(32));
const random = randomBytes(32).toString('base64url');

test('a tagged token verifies with its key, and only with it', () => {
  const token = tagToken(random, key);
  assert.equal(token.length, random.length + TOKEN_TAG_LENGTH);
  assert.match(token, /^[A-Za-z0-9_-]+$/, 'still one opaque base64url string');
  assert.equal(hasValidTag(token, key), true);
  assert.equal(hasValidTag(token, tokenTagKey(randomBytes(32))), false);
});

test('made-up, altered or truncated tokens do not verify', () => {
  const token = tagToken(random, key);
  const flipped = `${token.slice(0, 5)}${token[5] === 'A' ? 'B' : 'A'}${token.slice(6)}`;
  for (const bogus of [
    random,
    flipped,
    token.slice(0, -1),
    `${token}x`,
    'short',
    `${token.slice(0, -2)}.x`,
    '',
  ]) {
    assert.equal(hasValidTag(bogus, key), false, bogus);
  }
});
