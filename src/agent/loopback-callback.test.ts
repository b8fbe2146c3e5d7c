import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { AgentError } from './errors.ts';
import { startLoopbackCallback } from './loopback-callback.ts';

describe('the loopback callback', () => {
  test('listens on 127.0.0.1 at a free port, takes only the expected state, answers a page, and closes', async () => {
    const callback = await startLoopbackCallback({ state: 'expected', timeoutMs: 5000 });
    assert.match(callback.redirectUri, /^http:\/\/127\.0\.0\.1:\d+\/callback$/);

    const elsewhere = await fetch(new URL('/other', callback.redirectUri));
    assert.equal(elsewhere.status, 404);
    await elsewhere.text();

    const forged = await fetch(`${callback.redirectUri}?code=forged&state=wrong`);
    assert.equal(forged.status, 400);
    assert.match(await forged.text(), /ignored/);

    const real = await fetch(`${callback.redirectUri}?code=real&state=expected&iss=https%3A%2F%2Fa`);
    assert.equal(real.status, 200);
    assert.equal(real.headers.get('referrer-policy'), 'no-referrer');
    const page = await real.text();
    assert.match(page, /close this tab/);
    assert.doesNotMatch(page, /real/, 'the code is not echoed');

    const params = await callback.response;
    assert.equal(params.get('code'), 'real');
    await callback.close();
    await assert.rejects(fetch(callback.redirectUri), 'closed after the answer');
  });

  test('an error response is taken too, without repeating what the server said', async () => {
    const callback = await startLoopbackCallback({ state: 's', timeoutMs: 5000 });
    const answer = await fetch(
      `${callback.redirectUri}?error=access_denied&error_description=%3Cscript%3E&state=s`,
    );
    assert.equal(answer.status, 400);
    assert.doesNotMatch(await answer.text(), /script|access_denied/);
    assert.equal((await callback.response).get('error'), 'access_denied');
    await callback.close();
  });

  test('gives up after the timeout with what to do next', async () => {
    const callback = await startLoopbackCallback({ state: 's', timeoutMs: 50 });
    await assert.rejects(
      callback.response,
      (error: unknown) => error instanceof AgentError && /--timeout/.test(error.hint ?? ''),
    );
    await callback.close();
  });

  test('a new expected state replaces the old one: the old state is refused as replaced, the new one taken', async () => {
    const callback = await startLoopbackCallback({ timeoutMs: 5000 });
    const early = await fetch(`${callback.redirectUri}?code=c&state=anything`);
    assert.equal(early.status, 400, 'no state is taken before one is expected');
    await early.text();

    callback.expect('first');
    callback.expect('second');
    const late = await fetch(`${callback.redirectUri}?code=stale-code-9&state=first&iss=https%3A%2F%2Fa`);
    assert.equal(late.status, 400);
    const page = await late.text();
    assert.match(page, /replaced/);
    assert.match(page, /newest link/);
    assert.doesNotMatch(page, /stale-code/, 'the code is not echoed');

    const current = await fetch(`${callback.redirectUri}?code=new&state=second`);
    assert.equal(current.status, 200);
    await current.text();
    assert.equal((await callback.response).get('code'), 'new');
    await callback.close();
  });
});
