/**
 * Attacks on the MCP layer, through the gateway and at the MCP server directly: JSON-RPC batches,
 * invalid JSON and JSON-RPC, unknown and look-alike tools, prototype keys, path and query injection
 * through tool arguments, CORS with credentials, and token passthrough to the APIs.
 *
 * Two tools are added to the default catalogue for the injection cases, because the default ones
 * pin their arguments with a pattern (`^[A-Z]{1,8}$`) the attacks would never get past: with a free
 * string, what keeps an argument inside the API's path and inside its query value is the MCP
 * server's URL building (`src/mcp-server/tools/upstream-call.ts`), which is what is under test.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { decodeJwt } from 'jose';
import { parseConfig } from '../../src/shared/config/load.ts';
import {
  agentToken,
  MCP_SERVER_CLIENT,
  phantomFor,
  type ResourceStack,
  RPC_HEADERS,
  registerAgent,
  rpc,
  rpcMessages,
  startResourceStack,
  toolCall,
} from './support-resource.ts';

const INJECTION_TOOLS = [
  {
    name: 'lookup_stock',
    description: 'Looks a stock up by a free-form key (attack suite: no pattern on the argument).',
    inputSchema: {
      type: 'object',
      properties: { symbol: { type: 'string', maxLength: 200 } },
      required: ['symbol'],
      additionalProperties: false,
    },
    api: 'stocks',
    method: 'GET',
    path: '/{symbol}',
    scopes: ['stocks:read'],
  },
  {
    name: 'search_stocks',
    description: 'Lists stocks with free-form query arguments (attack suite).',
    inputSchema: {
      type: 'object',
      properties: { q: { type: 'string' }, region: { type: 'string' } },
      additionalProperties: false,
    },
    api: 'stocks',
    method: 'GET',
    path: '/',
    scopes: ['stocks:read'],
  },
];

let stack: ResourceStack;
let opaque: string;
let phantom: string;
/** Every phantom JWT the MCP server received: none may reach an API. */
const phantoms = new Set<string>();

before(async () => {
  const defaults = parseConfig({}).mcpServer.tools;
  stack = await startResourceStack({ mcpServer: { tools: [...defaults, ...INJECTION_TOOLS] } });
  const agentId = await registerAgent(stack.issuer);
  opaque = (await agentToken(stack, agentId, 'stocks:read customers:read')).accessToken;
  phantom = await phantomFor(stack, opaque);
  phantoms.add(phantom);
});

after(() => stack?.close());

const settle = () => new Promise((resolve) => setTimeout(resolve, 20));

interface Port {
  name: string;
  url: () => string;
  token: () => string;
}
const PORTS: Port[] = [
  { name: 'through the gateway', url: () => stack.mcpUrl, token: () => opaque },
  { name: 'at the MCP server', url: () => stack.mcpDirect, token: () => phantom },
];

/**
 * Tool calls that got past the scope check and the argument checks (the audit also records those
 * refusals, as `denied` and `invalid_arguments`).
 */
const toolCallsRun = () =>
  stack.audit('mcp.tool_call').filter((r) => r.outcome !== 'denied' && r.reason !== 'invalid_arguments')
    .length;

/** Asserts that no API request, token exchange or tool call happened while `action` ran. */
async function nothingBehind<T>(action: () => Promise<T>): Promise<T> {
  const hits = stack.apiTap.hits.length;
  const exchanges = stack.mcpServer.exchanges;
  const toolCalls = toolCallsRun();
  const result = await action();
  await settle();
  assert.deepEqual(
    stack.apiTap.hits.slice(hits).map((hit) => `${hit.method} ${hit.url}`),
    [],
    'no request reached an API',
  );
  assert.equal(stack.mcpServer.exchanges, exchanges, 'no token exchange');
  assert.equal(toolCallsRun(), toolCalls, 'no tool call ran');
  return result;
}

/** A JSON-RPC error answer: the HTTP status, one message, its code; never a stack trace. */
async function jsonRpcError(response: Response, status: number, code: number) {
  // Read to the end first: a failing case must not leave work running into the next one.
  const messages = await rpcMessages(response);
  assert.equal(response.status, status, JSON.stringify(messages).slice(0, 300));
  assert.equal(messages.length, 1, JSON.stringify(messages));
  const [message] = messages;
  assert.equal(message!.jsonrpc, '2.0');
  const error = message!.error as { code: number; message: string } | undefined;
  assert.ok(error, JSON.stringify(message));
  assert.equal(error.code, code, error.message);
  assert.doesNotMatch(error.message, /\n\s+at |\.ts:\d+/, 'no stack trace');
  assert.equal(message!.result, undefined);
  return error;
}

interface ToolResult {
  isError?: boolean;
  content: Array<{ type: string; text: string }>;
}

/** Calls a tool and returns its result (a JSON-RPC success carrying a tool result). */
async function callTool(port: Port, name: string, args: Record<string, unknown>): Promise<ToolResult> {
  const response = await rpc(port.url(), toolCall(1, name, args), port.token());
  assert.equal(response.status, 200);
  const [message] = await rpcMessages(response);
  assert.ok(message!.result, JSON.stringify(message));
  return message!.result as ToolResult;
}

// ---------------------------------------------------------------------------------------------

describe('JSON-RPC batches', () => {
  const calls = () => [
    toolCall(1, 'list_stocks'),
    toolCall(2, 'get_stock', { symbol: 'SAP' }),
    toolCall(3, 'get_my_customer_record'),
    toolCall(4, 'get_stock', { symbol: 'ASML' }),
  ];

  for (const port of PORTS) {
    test(`${port.name}: a batch of tools/call is refused with 400 and -32600, and no API is called at all`, () =>
      nothingBehind(async () => {
        const error = await jsonRpcError(await rpc(port.url(), calls(), port.token()), 400, -32600);
        assert.match(error.message, /batch/i);
      }));

    test(`${port.name}: a batch cannot carry a tool past the scope check`, async () => {
      // Read scopes only; the batch hides place_order behind a read call. Nothing of it may run.
      await nothingBehind(async () => {
        const response = await rpc(
          port.url(),
          [
            toolCall(1, 'list_stocks'),
            toolCall(2, 'place_order', { symbol: 'SAP', side: 'buy', quantity: 1 }),
          ],
          port.token(),
        );
        // Today the whole batch gets the scope challenge; once batches are refused (defect 5) it is
        // the batch refusal. Either way, all of it, the read call too.
        if (response.status === 400) {
          await jsonRpcError(response, 400, -32600);
        } else {
          assert.equal(response.status, 403);
          assert.match(response.headers.get('www-authenticate') ?? '', /^Bearer error="insufficient_scope"/);
          assert.equal(((await response.json()) as { error: string }).error, 'insufficient_scope');
        }
      });
      assert.ok(
        !stack.audit('stocks.order').some((record) => record.outcome === 'success'),
        'no order placed',
      );
    });

    test(`${port.name}: the batches the SDK refuses already: empty, or with a 2026-07-28 request`, () =>
      nothingBehind(async () => {
        await jsonRpcError(await rpc(port.url(), [], port.token()), 400, -32600);
        const modern = {
          ...toolCall(1, 'list_stocks'),
          params: {
            name: 'list_stocks',
            arguments: {},
            _meta: { 'io.modelcontextprotocol/protocolVersion': '2026-07-28' },
          },
        };
        await jsonRpcError(
          await rpc(port.url(), [modern, toolCall(2, 'list_stocks')], port.token()),
          400,
          -32600,
        );
      }));
  }
});

describe('invalid JSON and JSON-RPC', () => {
  const bodies: Array<[string, string, number, number]> = [
    [
      'truncated JSON',
      '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_stocks"',
      400,
      -32700,
    ],
    ['not JSON at all', "tools/call list_stocks --all; DROP TABLE stocks; --'", 400, -32700],
    ['a JSON string', '"tools/call"', 400, -32600],
    ['a JSON number', '42', 400, -32600],
    ['JSON null', 'null', 400, -32600],
    ['an empty object', '{}', 400, -32600],
    [
      'jsonrpc 1.0',
      '{"jsonrpc":"1.0","id":1,"method":"tools/call","params":{"name":"list_stocks"}}',
      400,
      -32600,
    ],
    ['a numeric method', '{"jsonrpc":"2.0","id":1,"method":5}', 400, -32600],
    ['an object id', '{"jsonrpc":"2.0","id":{"$gt":""},"method":"tools/list"}', 400, -32600],
    ['100 000 nested arrays', `${'['.repeat(100_000)}${']'.repeat(100_000)}`, 400, -32600],
  ];
  for (const port of PORTS) {
    test(`${port.name}: every malformed body gets a JSON-RPC error and nothing runs`, () =>
      nothingBehind(async () => {
        for (const [name, body, status, code] of bodies) {
          const response = await rpc(port.url(), body, port.token());
          assert.match(response.headers.get('content-type') ?? '', /^application\/json/, name);
          await jsonRpcError(response, status, code).catch((error: Error) => {
            throw new Error(`${name}: ${error.message}`);
          });
        }
      }));

    test(`${port.name}: a body that is not declared JSON is 415 with a JSON-RPC error`, () =>
      nothingBehind(async () => {
        for (const type of [
          'text/plain',
          'application/x-www-form-urlencoded',
          'multipart/form-data; boundary=x',
        ]) {
          const response = await fetch(port.url(), {
            method: 'POST',
            headers: { ...RPC_HEADERS, 'content-type': type, authorization: `Bearer ${port.token()}` },
            body: JSON.stringify(toolCall(1, 'list_stocks')),
          });
          await jsonRpcError(response, 415, -32000);
        }
      }));
  }
});

describe('unknown and look-alike tools', () => {
  const names = [
    'delete_everything',
    'GET_STOCK',
    'get_stock ',
    ' get_stock',
    'get_stock\u0000',
    '../get_stock',
    'stocks/get_stock',
    '__proto__',
    'constructor',
    'toString',
    'hasOwnProperty',
    '',
  ];
  for (const port of PORTS) {
    test(`${port.name}: an unknown tool is JSON-RPC -32602, whatever it looks like, and nothing runs`, () =>
      nothingBehind(async () => {
        for (const name of names) {
          const response = await rpc(port.url(), toolCall(1, name, { symbol: 'SAP' }), port.token());
          await jsonRpcError(response, 200, -32602).catch((error: Error) => {
            throw new Error(`${JSON.stringify(name)}: ${error.message}`);
          });
        }
      }));

    test(`${port.name}: an unknown method is -32601; tools/call without a name or with array arguments is -32602`, () =>
      nothingBehind(async () => {
        for (const method of ['admin/shutdown', 'tools/execute', 'tools/call/../list', 'rpc.discover']) {
          await jsonRpcError(
            await rpc(port.url(), { jsonrpc: '2.0', id: 1, method }, port.token()),
            200,
            -32601,
          );
        }
        const noName = { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { arguments: {} } };
        await jsonRpcError(await rpc(port.url(), noName, port.token()), 200, -32602);
        const arrayArgs = {
          jsonrpc: '2.0',
          id: 1,
          method: 'tools/call',
          params: { name: 'get_stock', arguments: ['SAP'] },
        };
        await jsonRpcError(await rpc(port.url(), arrayArgs, port.token()), 200, -32602);
      }));
  }

  test('prototype keys in arguments pollute nothing and never reach the API', async () => {
    const port = PORTS[0]!;
    const hits = await stack.apiTap.during(async () => {
      const body =
        '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search_stocks",' +
        '"arguments":{"q":"x","__proto__":{"polluted":"yes"},"constructor":{"prototype":{"polluted":"yes"}}}}}';
      const response = await rpc(port.url(), body, port.token());
      assert.equal(response.status, 200);
      const [message] = await rpcMessages(response);
      // Either refused as additional properties, or the prototype key dropped on parsing: not sent.
      const result = message!.result as ToolResult;
      assert.ok(result, JSON.stringify(message));
    });
    // The whole stack runs in this process: a polluted prototype would show here.
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
    for (const hit of hits) {
      assert.doesNotMatch(hit.url, /proto|constructor|polluted/, hit.url);
      assert.equal(hit.body, '');
    }
  });
});

describe('path and query injection through tool arguments', () => {
  const port = PORTS[0]!;
  const pathValues = [
    '../customers/me',
    '../../customers/me',
    'SAP/../../customers/me',
    '..%2Fcustomers%2Fme',
    '%2e%2e',
    '.%2E',
    '..\\customers\\me',
    'SAP?region=us',
    'SAP#fragment',
    'SAP&region=us',
    'SAP;region=us',
    'SAP\r\nX-Injected: 1',
    'SAP%00',
    '//evil.example/x',
    'http://evil.example/',
  ];

  test('a path argument stays one encoded segment under the API’s path, whatever it holds', async () => {
    const all: string[] = [];
    for (const value of pathValues) {
      const hits = await stack.apiTap.during(() => callTool(port, 'lookup_stock', { symbol: value }));
      all.push(...hits.map((hit) => hit.url));
      assert.equal(hits.length, 1, value);
      const hit = hits[0]!;
      assert.equal(hit.url, `/stocks/${encodeURIComponent(value)}`, value);
      assert.equal(hit.headers['x-injected'], undefined, value);
      // What the API's router sees: exactly two segments, the second being the argument as given.
      const segments = hit.url.split('?')[0]!.split('/').filter(Boolean).map(decodeURIComponent);
      assert.deepEqual(segments, ['stocks', value], value);
    }
    assert.ok(
      all.every((url) => url.startsWith('/stocks/')),
      'no argument walked out of the stocks API',
    );
  });

  test('dot segments and empty path arguments are refused before any API call', async () => {
    for (const value of ['.', '..', '']) {
      const result = await nothingBehind(() =>
        callTool(port, 'lookup_stock', { symbol: value }).then((r) => r),
      );
      assert.equal(result.isError, true, JSON.stringify(value));
      assert.match(
        result.content[0]!.text,
        /Invalid arguments for lookup_stock: argument "symbol" must not be empty/,
      );
    }
  });

  test('query arguments stay inside their own value: "&", "=", "#" and "?" add no parameter', async () => {
    const values = [
      'x&region=us',
      'x=y',
      'x#fragment',
      'x?region=us',
      '%26region%3Dus',
      'a+b c',
      'x\r\nX-Injected: 1',
    ];
    for (const q of values) {
      const hits = await stack.apiTap.during(() => callTool(port, 'search_stocks', { q, region: 'eu' }));
      assert.equal(hits.length, 1, q);
      const url = new URL(hits[0]!.url, 'http://api.invalid');
      assert.equal(url.pathname, '/stocks/', q);
      assert.deepEqual([...url.searchParams.keys()], ['q', 'region'], q);
      assert.equal(url.searchParams.get('q'), q);
      assert.equal(url.searchParams.get('region'), 'eu', q);
      assert.equal(url.hash, '', q);
      assert.equal(hits[0]!.headers['x-injected'], undefined, q);
    }
  });

  test('the default tools refuse such arguments by their schema, before any API call', async () => {
    for (const symbol of ['../customers/me', 'SAP?x=1', 'SAP#x', 'sap']) {
      const result = await nothingBehind(() => callTool(port, 'get_stock', { symbol }));
      assert.equal(result.isError, true, symbol);
      assert.match(result.content[0]!.text, /Input validation error/, symbol);
    }
  });
});

describe('CORS with credentials', () => {
  const ALLOWED = 'http://localhost:6274';
  const REFUSED = [
    'https://evil.example',
    'null',
    'http://localhost.evil.example',
    'http://127.0.0.1.evil.example',
    'http://localhost@evil.example',
    'http://evil.example#@localhost',
    'file://',
  ];

  for (const port of PORTS) {
    test(`${port.name}: an allowed origin is echoed with Vary: Origin, and credentials are never allowed`, async () => {
      const response = await rpc(port.url(), toolCall(1, 'list_stocks'), port.token(), {
        origin: ALLOWED,
        cookie: 'session=stolen',
      });
      assert.equal(response.status, 200);
      assert.equal(response.headers.get('access-control-allow-origin'), ALLOWED);
      assert.match(response.headers.get('vary') ?? '', /Origin/i);
      assert.equal(response.headers.get('access-control-allow-credentials'), null);
      await response.arrayBuffer();
      const preflight = await fetch(port.url(), {
        method: 'OPTIONS',
        headers: {
          origin: ALLOWED,
          'access-control-request-method': 'POST',
          'access-control-request-headers': 'authorization, content-type, mcp-protocol-version',
        },
      });
      assert.equal(preflight.status, 204);
      assert.equal(preflight.headers.get('access-control-allow-origin'), ALLOWED);
      assert.equal(preflight.headers.get('access-control-allow-credentials'), null);
      assert.doesNotMatch(preflight.headers.get('access-control-allow-headers') ?? '', /cookie/i);
      await preflight.arrayBuffer();
    });

    test(`${port.name}: other origins get 403 with no CORS headers, even with a valid token, and nothing runs`, () =>
      nothingBehind(async () => {
        for (const origin of REFUSED) {
          const response = await rpc(port.url(), toolCall(1, 'list_stocks'), port.token(), { origin });
          assert.equal(response.status, 403, origin);
          for (const name of ['access-control-allow-origin', 'access-control-allow-credentials'])
            assert.equal(response.headers.get(name), null, `${origin}: ${name}`);
          await response.arrayBuffer();
          const preflight = await fetch(port.url(), {
            method: 'OPTIONS',
            headers: {
              origin,
              'access-control-request-method': 'POST',
              'access-control-request-headers': 'authorization',
            },
          });
          assert.equal(preflight.status, 403, `${origin} preflight`);
          for (const name of [
            'access-control-allow-origin',
            'access-control-allow-credentials',
            'access-control-allow-methods',
            'access-control-allow-headers',
          ])
            assert.equal(preflight.headers.get(name), null, `${origin} preflight: ${name}`);
          await preflight.arrayBuffer();
        }
      }));
  }

  test('the public metadata is readable from any origin, but never with credentials', async () => {
    for (const base of [stack.gatewayUrl, new URL(stack.mcpDirect).origin]) {
      const response = await fetch(`${base}/.well-known/oauth-protected-resource/mcp`, {
        headers: { origin: 'https://evil.example', cookie: 'session=stolen' },
      });
      assert.equal(response.status, 200);
      assert.equal(response.headers.get('access-control-allow-origin'), '*');
      assert.equal(response.headers.get('access-control-allow-credentials'), null);
      await response.arrayBuffer();
    }
  });

  test('the gateway’s own answers (404, 400) give a foreign origin no CORS permission', async () => {
    for (const path of ['/nothing-here', '/api/stocks%2f..%2fcustomers']) {
      const response = await fetch(`${stack.gatewayUrl}${path}`, {
        headers: { origin: 'https://evil.example' },
      });
      assert.ok(response.status === 404 || response.status === 400, path);
      assert.equal(response.headers.get('access-control-allow-origin'), null, path);
      assert.equal(response.headers.get('access-control-allow-credentials'), null, path);
      await response.arrayBuffer();
    }
  });
});

describe('token passthrough to the APIs', () => {
  test('tool calls reach the APIs with exchanged tokens only: never the agent’s token, its phantom JWT, or its other headers', async () => {
    const hits = await stack.apiTap.during(async () => {
      for (const [name, args] of [
        ['list_stocks', {}],
        ['get_stock', { symbol: 'SAP' }],
        ['get_my_customer_record', {}],
        ['search_stocks', { q: 'sap' }],
      ] as const) {
        const response = await rpc(stack.mcpUrl, toolCall(1, name, args), opaque, {
          cookie: 'session=agent-cookie',
          'x-api-key': 'agent-api-key',
          'proxy-authorization': 'Basic YWdlbnQ6c2VjcmV0',
        });
        assert.equal(response.status, 200, name);
        const [message] = await rpcMessages(response);
        assert.notEqual((message!.result as ToolResult).isError, true, name);
      }
    });
    for (const hit of stack.mcpTap.hits) {
      const jwt = /^Bearer (.+)$/.exec(String(hit.headers.authorization ?? ''))?.[1];
      if (jwt) phantoms.add(jwt);
    }
    assert.equal(hits.length, 4);
    for (const hit of hits) {
      const text = JSON.stringify(hit);
      assert.ok(!text.includes(opaque), `${hit.url}: the agent's token reached the API`);
      for (const jwt of phantoms) assert.ok(!text.includes(jwt), `${hit.url}: a phantom JWT reached the API`);
      for (const leaked of ['agent-cookie', 'agent-api-key', 'YWdlbnQ6c2VjcmV0'])
        assert.ok(!text.includes(leaked), `${hit.url}: the agent's ${leaked} reached the API`);
      const claims = decodeJwt(String(hit.headers.authorization).slice('Bearer '.length));
      const audience = hit.url.startsWith('/customers') ? stack.customersAudience : stack.stocksAudience;
      assert.equal(claims.aud, audience, hit.url);
      assert.deepEqual(claims.act, { sub: MCP_SERVER_CLIENT }, hit.url);
      assert.equal(claims.grant_id, undefined, `${hit.url}: the grant reference stays inside`);
    }
  });

  test('no token of this file appears in any component’s log', () => {
    for (const line of stack.logs) {
      assert.ok(!line.includes(opaque), 'the agent token is in a log line');
      for (const jwt of phantoms)
        assert.ok(!line.includes(jwt.split('.')[2]!), 'a phantom JWT is in a log line');
    }
    for (const hit of stack.apiTap.hits) {
      const exchanged = String(hit.headers.authorization ?? '').split('.')[2];
      if (exchanged)
        assert.ok(!stack.logs.some((line) => line.includes(exchanged)), 'an exchanged token is logged');
    }
  });
});
