import assert from 'node:assert/strict';
import { test } from 'node:test';
import { browserCommand } from './browser.ts';

test('the system browser is opened with open, start or xdg-open', () => {
  const url = 'https://auth.example.com/authorize?a=1&b=2';
  assert.deepEqual(browserCommand(url, 'darwin'), ['open', [url]]);
  assert.deepEqual(browserCommand(url, 'linux'), ['xdg-open', [url]]);
  assert.deepEqual(browserCommand(url, 'win32'), [
    'cmd',
    ['/c', 'start', '""', 'https://auth.example.com/authorize?a=1^&b=2'],
  ]);
});
