import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PassThrough, Writable } from 'node:stream';
import { test } from 'node:test';
import type { Agent } from '../index.ts';
import { runChatShell } from './chat-shell.ts';
import type { ChatModel } from './model.ts';
import { chatModel, modelSettingsFrom } from './model-settings.ts';

/** An agent with one tool that places orders, counting the calls it gets. */
function fakeAgent() {
  const calls: string[] = [];
  const agent = {
    listTools: async () => [
      {
        name: 'place_order',
        inputSchema: { type: 'object' },
        annotations: { readOnlyHint: false, destructiveHint: false },
      },
    ],
    callTool: async (name: string) => {
      calls.push(name);
      return { content: [{ type: 'text', text: '{"status":"filled"}' }] };
    },
    onApproval: () => {},
  } as unknown as Agent;
  return { agent, calls };
}

/** A model that asks for place_order once per message, then answers in words. */
const orderingModel: ChatModel = {
  description: 'scripted',
  async complete(_system, messages) {
    const last = messages.at(-1);
    if (last?.role === 'user')
      return { text: '', toolCalls: [{ id: 'c1', name: 'place_order', arguments: {} }] };
    return { text: 'done', toolCalls: [] };
  },
};

test('at a terminal, a line typed before the question does not answer it', async () => {
  const { agent, calls } = fakeAgent();
  const input = new PassThrough();
  const errors: string[] = [];
  const prompt = new Writable({ write: (_chunk, _encoding, done) => done() });
  const running = runChatShell(agent, orderingModel, {
    input,
    prompt,
    output: { out: () => {}, err: (text) => errors.push(text) },
  });
  // Typed ahead, while the model is still working: "buy" and then "y".
  input.write('buy something\ny\n');
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.ok(
    errors.some((line) => /1 line typed meanwhile dropped/.test(line)),
    errors.join('\n'),
  );
  assert.equal(calls.length, 0, 'not run on the typed-ahead y');
  input.end('n\n');
  await running;
  assert.equal(calls.length, 0, 'declined after the question: not run');
});

test('piped input is a script: the line after the message answers the question', async () => {
  const { agent, calls } = fakeAgent();
  const input = new PassThrough();
  input.end('buy something\ny\n');
  await runChatShell(agent, orderingModel, { input, output: { out: () => {}, err: () => {} } });
  assert.deepEqual(calls, ['place_order'], 'an additive change is asked for too, and runs on yes');
});

test('the key stays out of errors, even when the API repeats it; a redirect is not followed with the key', async () => {
  const key = 'sk-proj-secret-0123456789abcdef';
  const elsewhere: string[] = [];
  const other = createServer((req, res) => {
    elsewhere.push(String(req.headers.authorization));
    res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
  });
  await new Promise<void>((resolve) => other.listen(0, '127.0.0.1', resolve));
  const otherUrl = `http://127.0.0.1:${(other.address() as AddressInfo).port}`;
  const server = createServer((req, res) => {
    if (req.url?.startsWith('/redirect/')) {
      res.writeHead(307, { location: `${otherUrl}/v1/chat/completions` }).end();
      return;
    }
    res.writeHead(401, { 'content-type': 'application/json' }).end(
      JSON.stringify({
        error: { message: `Incorrect API key provided: ${key.slice(0, 12)}****cdef; also ${key}` },
      }),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  try {
    const ask = (url: string) =>
      chatModel(
        modelSettingsFrom({ url, name: 'm' }, undefined, { GATEHOUSE_AGENT_MODEL_KEY: key }),
      ).complete('system', [{ role: 'user', text: 'hi' }], []);
    await assert.rejects(ask(`${base}/v1`), (error: Error) => {
      assert.match(error.message, /answered 401 \(is the API key set/);
      assert.ok(!error.message.includes(key.slice(0, 8)), error.message);
      return true;
    });
    await assert.rejects(ask(`${base}/redirect/v1`), /cannot be reached/);
    assert.deepEqual(elsewhere, [], 'the redirect target never saw a request');
  } finally {
    server.close();
    other.close();
  }
});
