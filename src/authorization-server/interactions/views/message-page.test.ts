import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { messagePage, sanitizeDetails } from './message-page.ts';

describe('messagePage', () => {
  it('shows the title as heading and the message', () => {
    const page = messagePage({
      title: 'This sign-in link has expired',
      message: 'Start again from the application.',
    });
    assert.match(page, /<h1>This sign-in link has expired<\/h1>/);
    assert.match(page, /<p>Start again from the application\.<\/p>/);
    assert.match(page, /<title>This sign-in link has expired - Gatehouse<\/title>/);
    assert.doesNotMatch(page, /<form/);
  });

  it('never shows a stack trace passed as details', () => {
    let stack = '';
    try {
      JSON.parse('{');
    } catch (error) {
      stack = (error as Error).stack ?? '';
    }
    assert.match(stack, /\n\s+at /);
    const page = messagePage({ title: 'Error', message: 'Something went wrong.', details: stack });
    assert.doesNotMatch(page, /\sat\s+\S+\s\(/);
    assert.doesNotMatch(page, /node:internal|\.ts:\d+/);
  });

  it('bounds the length of details', () => {
    assert.ok(sanitizeDetails('x'.repeat(10_000)).length <= 500);
    assert.equal(sanitizeDetails('  Try again later.  '), 'Try again later.');
  });

  it('shows the development banner when asked', () => {
    assert.match(messagePage({ title: 't', message: 'm', devBanner: true }), /Development mode/);
  });
});
