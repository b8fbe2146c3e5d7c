import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import Koa from 'koa';
import { createLogger } from '../../shared/logging.ts';
import { durableWrites } from './middleware.ts';

/** A Koa app on loopback answering `{ok: true}` behind durableWrites with the given durability. */
async function serve(durable: () => Promise<void>, lines: string[], options: { throws?: boolean } = {}) {
  const app = new Koa();
  app.silent = true;
  app.use(
    durableWrites(createLogger('test', { write: (line) => lines.push(line) }), {
      run: (fn) => fn(),
      durable,
    }),
  );
  app.use((ctx) => {
    if (options.throws) throw new Error('the handler failed');
    ctx.body = { access_token: 'would-be-a-token' };
  });
  const server = app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/token`;
  return { url, close: () => new Promise((resolve) => server.close(resolve)) };
}

test('durableWrites: the answer goes out only once the writes are committed', async () => {
  let release!: () => void;
  const committed = new Promise<void>((resolve) => {
    release = resolve;
  });
  let answered = false;
  const server = await serve(() => committed, []);
  try {
    const response = fetch(server.url).then((r) => {
      answered = true;
      return r;
    });
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(answered, false, 'nothing is sent while a write is pending');
    release();
    const r = await response;
    assert.equal(r.status, 200);
    assert.deepEqual(await r.json(), { access_token: 'would-be-a-token' });
  } finally {
    await server.close();
  }
});

test('durableWrites: a write that fails turns the answer into server_error, with no token in it', async () => {
  const lines: string[] = [];
  const server = await serve(() => Promise.reject(new Error('database is locked')), lines);
  try {
    const json = await fetch(server.url);
    assert.equal(json.status, 500);
    assert.equal(json.headers.get('cache-control'), 'no-store');
    assert.deepEqual(await json.json(), {
      error: 'server_error',
      error_description: 'the request could not be saved; try again',
    });
    // A person's browser gets a page that says what to do.
    const page = await fetch(server.url, { headers: { accept: 'text/html' } });
    assert.equal(page.status, 500);
    const body = await page.text();
    assert.match(body, /try again/);
    assert.doesNotMatch(body, /would-be-a-token/);
    assert.ok(
      lines.some((line) => line.includes('token store write failed') && line.includes('database is locked')),
    );
  } finally {
    await server.close();
  }
});

test('durableWrites: a handler that throws still waits for its writes before the error answer', async () => {
  let release!: () => void;
  const committed = new Promise<void>((resolve) => {
    release = resolve;
  });
  let answered = false;
  const server = await serve(() => committed, [], { throws: true });
  try {
    const response = fetch(server.url).then((r) => {
      answered = true;
      return r;
    });
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(answered, false, 'the error answer waits too');
    release();
    const r = await response;
    assert.equal(r.status, 500);
    await r.text();
  } finally {
    await server.close();
  }
});
