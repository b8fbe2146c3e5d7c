import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { devInboxPage } from './dev-inbox-page.ts';

describe('devInboxPage', () => {
  it('is clearly marked as development only', () => {
    const page = devInboxPage([]);
    assert.match(page, /<h1>Development inbox<\/h1>/);
    assert.match(page, /Development only: messages that would have been emailed/);
    assert.match(page, /Development mode/);
  });

  it('has an empty state', () => {
    const page = devInboxPage([]);
    assert.match(page, /No messages yet/);
    assert.doesNotMatch(page, /<pre>/);
  });

  it('lists messages in the order given, each text in a <pre>', () => {
    const page = devInboxPage([
      {
        to: 'new@example.com',
        subject: 'Newest',
        text: 'Code 111111\nline 2',
        time: new Date('2026-02-02T10:00:00Z'),
      },
      { to: 'old@example.com', subject: 'Oldest', text: 'Code 222222', time: '2026-01-01T00:00:00Z' },
    ]);
    assert.ok(page.indexOf('Newest') < page.indexOf('Oldest'));
    assert.match(page, /<pre>Code 111111\nline 2<\/pre>/);
    assert.match(page, /<pre>Code 222222<\/pre>/);
    assert.match(page, /<time datetime="2026-02-02T10:00:00\.000Z">/);
    assert.match(page, /new@example\.com/);
    assert.match(page, /2 messages/);
    assert.doesNotMatch(page, /No messages yet/);
  });

  it('copes with an unparseable time', () => {
    const page = devInboxPage([{ to: 'a@b', subject: 's', text: 't', time: 'not a date' }]);
    assert.match(page, /<time datetime="not a date">not a date<\/time>/);
    assert.match(page, /1 message,/);
  });
});
