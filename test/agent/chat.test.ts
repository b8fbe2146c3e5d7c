/**
 * `gatehouse agent <url> chat`: a person states an objective, a language model chooses the tools,
 * the agent runs them through the same authorization as any call. The model is a real HTTP server
 * in the test that speaks the protocol (OpenAI-compatible chat completions, and Anthropic's
 * Messages API) and answers from a script; no test needs an internet model.
 *
 * Against the whole stack: "what can I buy in my region?" becomes list_stocks (sign-in on first
 * use) and an answer made from its result; "buy 5 SAP" becomes place_order, asked for confirmation,
 * then a step-up to stocks:trade; a declined call is not run; a tool name the model made up and
 * arguments that are not JSON go back to the model as errors, never to the server; the key reaches
 * the model's API and nothing else.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { runChatShell } from '../../src/agent/chat/chat-shell.ts';
import { chatModel, modelSettingsFrom } from '../../src/agent/chat/model-settings.ts';
import { createAgent } from '../../src/agent/index.ts';
import { parseConfig } from '../../src/shared/config/load.ts';
import { csrfOf } from '../helpers/oauth.ts';
import { startTestStack, type TestStack } from '../helpers/stack.ts';
import { requestedScopes, storeFile, userAt } from './support.ts';

const KEY = 'sk-test-model-key-0123456789abcdef';
const GATEHOUSE = path.resolve(import.meta.dirname, '../../bin/gatehouse.js');

type Json = Record<string, unknown>;
interface Recorded {
  path: string;
  headers: IncomingHttpHeaders;
  body: Json;
}

/** A model API on 127.0.0.1 answering each request with `script(body)`, recording what it got. */
async function scriptedModel(script: (body: Json, path: string) => Json) {
  const requests: Recorded[] = [];
  const server = createServer((req, res) => {
    let text = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => {
      text += chunk;
    });
    req.on('end', () => {
      const body = JSON.parse(text) as Json;
      const path = new URL(req.url ?? '/', 'http://x').pathname;
      requests.push({ path, headers: req.headers, body });
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(script(body, path)));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

// OpenAI-compatible replies.
let callIds = 0;
const openAiToolCall = (name: string, args: unknown) => ({
  choices: [
    {
      message: {
        role: 'assistant',
        content: null,
        tool_calls: [
          {
            id: `call_${++callIds}`,
            type: 'function',
            function: { name, arguments: typeof args === 'string' ? args : JSON.stringify(args) },
          },
        ],
      },
    },
  ],
});
const openAiText = (content: string) => ({ choices: [{ message: { role: 'assistant', content } }] });

type WireMessage = { role: string; content?: string | null; tool_call_id?: string };

/** The script: what the person asked last, and whether a tool has answered since. */
function openAiScript(body: Json): Json {
  const messages = body.messages as WireMessage[];
  const lastUser = [...messages].reverse().find((m) => m.role === 'user')?.content ?? '';
  const sinceUser = messages.slice(messages.findLastIndex((m) => m.role === 'user') + 1);
  const toolResults = sinceUser.filter((m) => m.role === 'tool').map((m) => String(m.content));
  if (/what can I buy/i.test(lastUser)) {
    if (toolResults.length === 0) return openAiToolCall('list_stocks', {});
    const stocks = (JSON.parse(toolResults[0]!) as { stocks: Array<{ symbol: string }> }).stocks;
    return openAiText(`You can buy: ${stocks.map((s) => s.symbol).join(', ')}.`);
  }
  const buy = /buy (\d+) (\w+)/i.exec(lastUser);
  if (buy) {
    if (toolResults.length === 0)
      return openAiToolCall('place_order', { symbol: buy[2], side: 'buy', quantity: Number(buy[1]) });
    return openAiText(`Done: ${toolResults[0]}`);
  }
  if (/transfer/i.test(lastUser)) {
    // Made up: a tool the server does not have, then arguments that are not JSON.
    if (toolResults.length === 0) return openAiToolCall('transfer_money', { amount: 100 });
    if (toolResults.length === 1) return openAiToolCall('get_stock', '{"symbol": SAP');
    return openAiText('Sorry, I cannot do that.');
  }
  return openAiText('I did not understand.');
}

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, output: { out: (t: string) => out.push(t), err: (t: string) => err.push(t) } };
}

describe('chat: a model that calls the tools, OpenAI-compatible', () => {
  let stack: TestStack;
  let model: Awaited<ReturnType<typeof scriptedModel>>;
  const user = userAt();
  const io = capture();
  let toolMessages: string[];

  before(async () => {
    stack = await startTestStack();
    model = await scriptedModel((body) => openAiScript(body));
    const agent = createAgent({ serverUrl: stack.mcpUrl, storePath: storeFile(), openUrl: user.openUrl });
    const settings = modelSettingsFrom({ url: `${model.url}/v1`, name: 'scripted' }, undefined, {
      GATEHOUSE_AGENT_MODEL_KEY: KEY,
    });
    try {
      await runChatShell(agent, chatModel(settings), {
        input: Readable.from(
          [
            'what can I buy in my region?',
            'buy 5 SAP',
            'y',
            'buy 1 SAP',
            'n',
            'transfer money to Bob',
            'quit',
          ]
            .map((line) => `${line}\n`)
            .join(''),
        ),
        output: io.output,
      });
    } finally {
      await agent.close();
    }
    toolMessages = model.requests.flatMap((r) =>
      (r.body.messages as WireMessage[]).filter((m) => m.role === 'tool').map((m) => String(m.content)),
    );
  });
  after(async () => {
    await model.close();
    await stack.close();
  });

  test('the model is offered the MCP server’s tools, with their input schemas, at the chat completions path', () => {
    const first = model.requests[0]!;
    assert.equal(first.path, '/v1/chat/completions');
    assert.equal(first.body.model, 'scripted');
    const tools = first.body.tools as Array<{ type: string; function: { name: string; parameters: Json } }>;
    assert.deepEqual(tools.map((t) => t.function.name).sort(), [
      'get_my_customer_record',
      'get_stock',
      'list_stocks',
      'place_order',
    ]);
    for (const tool of tools) assert.equal(tool.function.parameters.type, 'object', tool.function.name);
    const system = (first.body.messages as WireMessage[])[0]!;
    assert.equal(system.role, 'system');
  });

  test('"what can I buy in my region?": list_stocks after a sign-in, and an answer made of its result', () => {
    assert.ok(io.out.includes('→ list_stocks {}'), io.out.join('\n'));
    const answer = io.out.find((line) => line.startsWith('You can buy: '));
    assert.ok(answer, io.out.join('\n'));
    assert.match(answer, /SAP/);
    assert.ok(user.plays.length >= 1, 'the user signed in on first use');
  });

  test('"buy 5 SAP": confirmed by the person, then a step-up to stocks:trade, then the order', () => {
    assert.ok(
      io.err.some((line) => /place_order changes things\. Run it with .*"quantity":5/.test(line)),
      io.err.join('\n'),
    );
    const stepUp = user.plays.find((play) => requestedScopes(play.consentHtml).includes('stocks:trade'));
    assert.ok(stepUp, 'the consent page asked for stocks:trade');
    const order = toolMessages.find((content) => /"quantity":\s*5/.test(content));
    assert.ok(order, toolMessages.join('\n'));
    assert.match(order, /"status":\s*"(filled|accepted|placed)"/);
    assert.ok(io.out.some((line) => line.startsWith('Done: ')));
  });

  test('a declined call is not run, and the model is told so', () => {
    assert.ok(toolMessages.some((content) => /declined/.test(content)));
    assert.ok(!toolMessages.some((content) => /"quantity":\s*1\b/.test(content)), 'no order of 1 was placed');
  });

  test('a made-up tool and arguments that are not JSON go back to the model as errors, and the chat goes on', () => {
    assert.ok(
      toolMessages.some((content) =>
        /no tool named "transfer_money"; the tools are: .*list_stocks/.test(content),
      ),
    );
    assert.ok(toolMessages.some((content) => /arguments of get_stock are not valid JSON/.test(content)));
    assert.ok(io.out.includes('Sorry, I cannot do that.'));
  });

  test('the key goes to the model in the Authorization header, and nowhere in the output', () => {
    for (const request of model.requests) assert.equal(request.headers.authorization, `Bearer ${KEY}`);
    assert.ok(![...io.out, ...io.err].some((line) => line.includes(KEY)));
  });
});

describe("chat: a call that needs the person's approval (URL elicitation)", () => {
  let stack: TestStack;
  let model: Awaited<ReturnType<typeof scriptedModel>>;
  const user = userAt();
  const io = capture();
  const opened: string[] = [];
  let toolMessages: string[];

  before(async () => {
    const tools = parseConfig({}).mcpServer.tools.map((tool) =>
      tool.name === 'place_order' ? { ...tool, approval: 'required' } : tool,
    );
    stack = await startTestStack({ mcpServer: { tools } });
    model = await scriptedModel((body) => openAiScript(body));
    const agent = createAgent({
      serverUrl: stack.mcpUrl,
      storePath: storeFile(),
      openUrl: user.openUrl,
      note: (message) => io.err.push(message),
      // The person at the browser (signed in already): approves what the page shows.
      openApprovalUrl: async (url) => {
        opened.push(url);
        const page = await user.browser.request(url);
        assert.equal(page.status, 200, page.text.slice(0, 300));
        await user.browser.request(url, { form: { csrf: csrfOf(page.text), decision: 'approve' } });
      },
    });
    const settings = modelSettingsFrom({ url: `${model.url}/v1`, name: 'scripted' }, undefined, {
      GATEHOUSE_AGENT_MODEL_KEY: KEY,
    });
    try {
      await runChatShell(agent, chatModel(settings), {
        // The order: confirmed (it changes things), then the step-up, then approved on the page.
        // Then an order approved on the page whose approval the person does not confirm here: not run.
        input: Readable.from(
          ['buy 2 SAP', 'y', 'y', 'buy 3 SAP', 'y', 'n', 'quit'].map((line) => `${line}\n`).join(''),
        ),
        output: io.output,
      });
    } finally {
      await agent.close();
    }
    toolMessages = model.requests.flatMap((r) =>
      (r.body.messages as WireMessage[]).filter((m) => m.role === 'tool').map((m) => String(m.content)),
    );
  });
  after(async () => {
    await model?.close();
    await stack?.close();
  });

  test('the person answers no at the agent: the order is not run, approved on the page or not', () => {
    const refused = toolMessages.find((content) => /did not confirm/.test(content));
    assert.ok(refused, toolMessages.join('\n'));
    assert.ok(!toolMessages.some((content) => /"quantity":\s*3/.test(content)), 'no order of 3');
  });

  test('the person is shown the approval page, approves, and the order runs once', () => {
    assert.equal(opened.length, 2, io.err.join('\n'));
    assert.ok(opened[0]!.startsWith(`${stack.issuer}/account/approvals/`));
    assert.ok(
      io.err.some((line) => line.startsWith('Approval needed: ')),
      io.err.join('\n'),
    );
    assert.ok(io.err.some((line) => /Approved\? \[y\/N\]/.test(line)));
    const order = toolMessages.find((content) => /"quantity":\s*2/.test(content));
    assert.ok(order, toolMessages.join('\n'));
    assert.match(order, /"status":\s*"accepted"/);
    assert.equal(stack.audit('approval.decided').at(-1)?.decision, 'approved');
  });
});

describe('chat: Anthropic Messages API', () => {
  let stack: TestStack;
  let model: Awaited<ReturnType<typeof scriptedModel>>;
  const io = capture();

  before(async () => {
    stack = await startTestStack();
    model = await scriptedModel((body) => {
      const messages = body.messages as Array<{ role: string; content: Array<Json> }>;
      const results = messages.at(-1)!.content.filter((block) => block.type === 'tool_result');
      if (results.length === 0)
        return {
          content: [{ type: 'tool_use', id: 'toolu_1', name: 'list_stocks', input: {} }],
          stop_reason: 'tool_use',
        };
      const stocks = (JSON.parse(String(results[0]!.content)) as { stocks: Array<{ symbol: string }> })
        .stocks;
      return {
        content: [{ type: 'text', text: `In your region: ${stocks.map((s) => s.symbol).join(', ')}` }],
      };
    });
    const user = userAt();
    const agent = createAgent({ serverUrl: stack.mcpUrl, storePath: storeFile(), openUrl: user.openUrl });
    const settings = modelSettingsFrom(
      { api: 'anthropic', url: model.url, name: 'claude-scripted', keyEnv: 'ANTHROPIC_API_KEY' },
      undefined,
      { ANTHROPIC_API_KEY: KEY },
    );
    try {
      await runChatShell(agent, chatModel(settings), {
        input: Readable.from('what can I buy in my region?\n'),
        output: io.output,
      });
    } finally {
      await agent.close();
    }
  });
  after(async () => {
    await model.close();
    await stack.close();
  });

  test('tools with input_schema, the key in x-api-key, the result as a tool_result of its tool_use', () => {
    const [first, second] = model.requests;
    assert.ok(first && second);
    assert.equal(first.path, '/v1/messages');
    assert.equal(first.headers['x-api-key'], KEY);
    assert.equal(first.headers['anthropic-version'], '2023-06-01');
    assert.equal(typeof first.body.system, 'string');
    const tools = first.body.tools as Array<{ name: string; input_schema: Json }>;
    assert.ok(tools.some((tool) => tool.name === 'list_stocks' && tool.input_schema.type === 'object'));
    const messages = second.body.messages as Array<{ role: string; content: Array<Json> }>;
    assert.deepEqual(
      messages.map((m) => m.role),
      ['user', 'assistant', 'user'],
    );
    assert.equal(messages[1]!.content[0]!.type, 'tool_use');
    assert.equal(messages[2]!.content[0]!.tool_use_id, 'toolu_1');
    assert.ok(
      io.out.some((line) => /^In your region: .*SAP/.test(line)),
      io.out.join('\n'),
    );
  });
});

describe('chat: the command line', () => {
  let stack: TestStack;
  let model: Awaited<ReturnType<typeof scriptedModel>>;
  before(async () => {
    stack = await startTestStack();
    model = await scriptedModel((body) => openAiScript(body));
  });
  after(async () => {
    await model.close();
    await stack.close();
  });

  const run = (args: string[], input: string, env: Record<string, string> = {}) =>
    new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const home = mkdtempSync(path.join(tmpdir(), 'gatehouse-home-'));
      const child = spawn(process.execPath, [GATEHOUSE, 'agent', stack.mcpUrl, ...args], {
        env: { ...process.env, GATEHOUSE_AGENT_HOME: home, ...env },
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (chunk) => {
        stdout += chunk;
      });
      child.stderr.on('data', (chunk) => {
        stderr += chunk;
      });
      child.on('close', (code) => resolve({ code, stdout, stderr }));
      child.stdin.end(input);
    });

  test('as a workload: the answer on stdout; with --trace the model exchanges are traced, the key never', async () => {
    const key = path.join(stack.dataDir, 'secrets/example-workload.private-key.json');
    const result = await run(
      [
        'chat',
        '--client-id',
        'example-workload',
        '--private-key',
        key,
        '--model-url',
        `${model.url}/v1`,
        '--model',
        'scripted',
        '--trace',
      ],
      'what can I buy in my region?\n',
      { GATEHOUSE_AGENT_MODEL_KEY: KEY },
    );
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /→ list_stocks \{\}/);
    // A workload has no region: its list is empty, and the model's answer says so.
    assert.match(result.stdout, /"stocks": \[\]/);
    assert.match(result.stdout, /You can buy: /);
    assert.match(result.stderr, /→ model openai POST http:\/\/127\.0\.0\.1:\d+\/v1\/chat\/completions/);
    assert.ok(!result.stdout.includes(KEY) && !result.stderr.includes(KEY), 'the key is in no output');
  });

  test('without a model: a usage error that says what to give', async () => {
    const result = await run(['chat'], '');
    assert.equal(result.code, 2);
    assert.match(result.stderr, /chat needs a model: --model-url .* --model/);
    assert.match(result.stderr, /GATEHOUSE_AGENT_MODEL_KEY/);
  });

  test('a model option without chat is a usage error', async () => {
    const result = await run(['tools', '--model', 'x'], '');
    assert.equal(result.code, 2);
    assert.match(result.stderr, /--model goes with chat/);
  });
});
