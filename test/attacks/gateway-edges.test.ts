/**
 * Attacks on the HTTP edges of the gateway and the MCP server: Host and X-Forwarded-* spoofing,
 * header smuggling toward upstreams (hop-by-hop and Connection-named fields, CR/LF, duplicates,
 * upgrades, trailers, CONNECT), CL/TE request smuggling over raw sockets, and huge headers and
 * bodies.
 *
 * Every request carries a valid credential for the port (the agent's opaque token at the gateway,
 * its phantom JWT at the MCP server), so a request that slipped through would reach an upstream:
 * the taps and the audit log show that none did.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  agentToken,
  nodeRequest,
  phantomFor,
  type RawResponse,
  type ResourceStack,
  RPC_HEADERS,
  rawHeader,
  rawHttp,
  rawValues,
  registerAgent,
  rpc,
  startResourceStack,
  type TapHit,
  toolCall,
} from './support-resource.ts';

let stack: ResourceStack;
let opaque: string;
let phantom: string;

before(async () => {
  stack = await startResourceStack();
  const agentId = await registerAgent(stack.issuer);
  opaque = (await agentToken(stack, agentId, 'stocks:read customers:read')).accessToken;
  phantom = await phantomFor(stack, opaque);
});

after(() => stack?.close());

const CALL = JSON.stringify(toolCall(1, 'list_stocks'));
const settle = () => new Promise((resolve) => setTimeout(resolve, 30));

interface Port {
  name: string;
  /** Origin to open sockets to. */
  origin: () => string;
  token: () => string;
}

const GATEWAY: Port = { name: 'the gateway', origin: () => stack.gatewayUrl, token: () => opaque };
const MCP_SERVER: Port = {
  name: 'the MCP server',
  origin: () => new URL(stack.mcpDirect).origin,
  token: () => phantom,
};

/** Everything that reached the MCP server (through the gateway) or an API while `action` ran. */
async function upstreamDuring(action: () => Promise<unknown>): Promise<{ mcp: TapHit[]; api: TapHit[] }> {
  const mcp = stack.mcpTap.hits.length;
  const api = stack.apiTap.hits.length;
  await action();
  await settle();
  return { mcp: stack.mcpTap.hits.slice(mcp), api: stack.apiTap.hits.slice(api) };
}

/** Asserts that nothing reached an upstream (nor ran a tool) while `action` ran. */
async function nothingForwarded<T>(action: () => Promise<T>): Promise<T> {
  let result!: T;
  const toolCalls = stack.audit('mcp.tool_call').length;
  const seen = await upstreamDuring(async () => {
    result = await action();
  });
  assert.deepEqual(
    seen.mcp.map((hit) => hit.url),
    [],
    'nothing reached the MCP server',
  );
  assert.deepEqual(
    seen.api.map((hit) => hit.url),
    [],
    'nothing reached an API',
  );
  assert.equal(stack.audit('mcp.tool_call').length, toolCalls, 'no tool call ran');
  return result;
}

/** The head of a raw request to `port`'s /mcp carrying its credential, without framing fields. */
const mcpHead = (port: Port, requestLine = 'POST /mcp HTTP/1.1') =>
  `${requestLine}\r\nHost: ${new URL(port.origin()).host}\r\nAuthorization: Bearer ${port.token()}\r\n` +
  'Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n' +
  'MCP-Protocol-Version: 2025-11-25\r\n';

/** A second request hidden in the first one's body: it must never be executed. */
const smuggled = (port: Port) =>
  `POST /mcp/smuggled HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${port.token()}\r\n` +
  `Content-Type: application/json\r\nContent-Length: ${CALL.length}\r\n\r\n${CALL}`;

const chunk = (text: string) => `${text.length.toString(16)}\r\n${text}\r\n`;

/** One 400 (RFC 9112 §6.3, §11.2), the connection closed, the smuggled request never seen. */
function assertRefusedAndClosed(answer: RawResponse, what: string) {
  assert.deepEqual(
    answer.responses.map((response) => response.status),
    [400],
    `${what}: ${JSON.stringify(answer.raw.slice(0, 200))}`,
  );
  assert.equal(rawHeader(answer.responses[0]!.head, 'connection')?.toLowerCase(), 'close', what);
}

// ---------------------------------------------------------------------------------------------

describe('Host and X-Forwarded-* spoofing', () => {
  const spoofed = {
    host: 'evil.example',
    'x-forwarded-host': 'evil.example',
    'x-forwarded-proto': 'https',
    'x-forwarded-port': '443',
    'x-forwarded-prefix': '/evil',
    forwarded: 'for=10.0.0.1;host=evil.example;proto=https',
  };

  for (const port of [GATEWAY, MCP_SERVER]) {
    test(`${port.name}: the challenge and the metadata keep the configured URLs, whatever Host and X-Forwarded-* say`, async () => {
      const prm = `${stack.gatewayUrl}/.well-known/oauth-protected-resource/mcp`;
      const challenged = await nodeRequest(`${port.origin()}/mcp`, {
        method: 'POST',
        headers: { ...RPC_HEADERS, ...spoofed },
        body: CALL,
      });
      assert.equal(challenged.status, 401);
      assert.equal(
        challenged.headers['www-authenticate'],
        `Bearer resource_metadata="${prm}", scope="stocks:read customers:read", DPoP algs="ES256 ES384 PS256 RS256 EdDSA Ed25519"`,
      );
      for (const path of [
        '/.well-known/oauth-protected-resource/mcp',
        '/.well-known/oauth-protected-resource',
      ]) {
        const metadata = await nodeRequest(`${port.origin()}${path}`, { headers: spoofed });
        assert.equal(metadata.status, 200, path);
        const body = JSON.parse(metadata.body) as { resource: string; authorization_servers: string[] };
        assert.equal(body.resource, stack.mcpUrl, path);
        assert.deepEqual(body.authorization_servers, [stack.issuer], path);
        assert.doesNotMatch(metadata.body, /evil/, path);
      }
    });
  }

  test('the MCP server learns who asked from the gateway only: X-Forwarded-* replaced, Forwarded dropped, one value each', async () => {
    const seen = await upstreamDuring(async () => {
      const response = await nodeRequest(stack.mcpUrl, {
        method: 'POST',
        headers: [
          ...Object.entries(RPC_HEADERS).flat(),
          ...['authorization', `Bearer ${opaque}`],
          ...['x-forwarded-for', '10.9.8.7', 'x-forwarded-for', '192.168.0.1'],
          ...['x-forwarded-host', 'evil.example', 'x-forwarded-proto', 'https'],
          ...['forwarded', 'for=10.0.0.1;host=evil.example', 'x-real-ip', '10.1.1.1'],
        ],
        body: CALL,
      });
      assert.equal(response.status, 200);
    });
    assert.equal(seen.mcp.length, 1);
    const hit = seen.mcp[0]!;
    assert.deepEqual(rawValues(hit, 'x-forwarded-for'), ['127.0.0.1']);
    assert.deepEqual(rawValues(hit, 'x-forwarded-host'), [new URL(stack.gatewayUrl).host]);
    assert.deepEqual(rawValues(hit, 'x-forwarded-proto'), ['http']);
    assert.deepEqual(rawValues(hit, 'forwarded'), []);
    assert.match(String(hit.headers.authorization), /^Bearer [\w-]+\.[\w-]+\.[\w-]+$/, 'the phantom JWT');
  });

  test('an absolute-form target (a host in the request line) at the gateway: 400 invalid_request (`//host/path` is a path: 404), nothing forwarded', async () => {
    for (const target of ['http://evil.example/mcp', `${stack.gatewayUrl}/mcp`, '//evil.example/mcp']) {
      const answer = await nothingForwarded(() =>
        rawHttp(
          stack.gatewayUrl,
          `${mcpHead(GATEWAY, `POST ${target} HTTP/1.1`)}Content-Length: ${CALL.length}\r\n\r\n${CALL}`,
        ),
      );
      const [response] = answer.responses;
      // `//host/path` is a path, not an authority: no route matches it.
      assert.equal(response!.status, target.startsWith('//') ? 404 : 400, target);
      const body = JSON.parse(response!.body.replace(/^[0-9a-f]+\r\n/, '')) as { error: string };
      assert.equal(body.error, target.startsWith('//') ? 'not_found' : 'invalid_request', target);
    }
  });

  test('an absolute-form target at the MCP server: 400, not a 500 Internal error', async () => {
    const target = `http://evil.example/mcp`;
    const answer = await nothingForwarded(() =>
      rawHttp(
        MCP_SERVER.origin(),
        `${mcpHead(MCP_SERVER, `POST ${target} HTTP/1.1`)}Content-Length: ${CALL.length}\r\n\r\n${CALL}`,
      ),
    );
    assert.equal(answer.responses[0]!.status, 400, answer.raw.slice(0, 300));
  });

  for (const port of [GATEWAY, MCP_SERVER]) {
    test(`${port.name}: two Host fields are refused with 400 (RFC 9112 §3.2)`, async () => {
      for (const hosts of [
        [new URL(port.origin()).host, 'evil.example'],
        ['evil.example', new URL(port.origin()).host],
      ]) {
        const request =
          mcpHead(port).replace(/^Host: .*\r\n/m, `Host: ${hosts[0]}\r\nHost: ${hosts[1]}\r\n`) +
          `Content-Length: ${CALL.length}\r\n\r\n${CALL}`;
        const answer = await nothingForwarded(() => rawHttp(port.origin(), request));
        assert.equal(answer.responses[0]?.status, 400, hosts.join(' + '));
      }
    });
  }
});

describe('header smuggling toward the upstreams', () => {
  test('Connection naming Authorization, X-Forwarded-*, Host or Content-Length cannot remove or forge them upstream', async () => {
    const seen = await upstreamDuring(async () => {
      const response = await nodeRequest(stack.mcpUrl, {
        method: 'POST',
        headers: {
          ...RPC_HEADERS,
          authorization: `Bearer ${opaque}`,
          connection:
            'keep-alive, authorization, x-forwarded-for, x-forwarded-host, host, content-length, x-secret',
          'x-forwarded-for': '10.9.8.7',
          'x-secret': 'hop-only',
          // Credentials for a proxy on the way, never for the upstream (RFC 9110 §11.7.2).
          'proxy-authorization': `Bearer ${opaque}`,
          'proxy-connection': 'keep-alive',
        },
        body: CALL,
      });
      assert.equal(response.status, 200);
    });
    assert.equal(seen.mcp.length, 1);
    const hit = seen.mcp[0]!;
    assert.match(
      String(hit.headers.authorization),
      /^Bearer [\w-]+\.[\w-]+\.[\w-]+$/,
      'still the phantom JWT',
    );
    assert.notEqual(hit.headers.authorization, `Bearer ${opaque}`);
    assert.deepEqual(rawValues(hit, 'x-forwarded-for'), ['127.0.0.1']);
    assert.equal(hit.headers['x-secret'], undefined, 'a field named in Connection stays on its hop');
    assert.equal(hit.headers['proxy-authorization'], undefined);
    assert.equal(hit.headers['proxy-connection'], undefined);
    assert.ok(!JSON.stringify(hit).includes(opaque), 'the opaque token reached the MCP server');
    assert.deepEqual(rawValues(hit, 'content-length'), [String(CALL.length)]);
    assert.equal(hit.body, CALL, 'the body arrives whole and alone');
    assert.equal(seen.api.length, 1, 'and the tool ran once');
  });

  test('upgrades (h2c, WebSocket) are not tunnelled: no 101, and the upstream sees no Upgrade', async () => {
    for (const [name, extra, method] of [
      [
        'h2c',
        'Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n',
        'POST',
      ],
      [
        'websocket',
        'Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n',
        'GET',
      ],
    ] as const) {
      const body = method === 'POST' ? CALL : '';
      let answer!: RawResponse;
      const seen = await upstreamDuring(async () => {
        answer = await rawHttp(
          stack.gatewayUrl,
          `${mcpHead(GATEWAY, `${method} /mcp HTTP/1.1`)}${extra}Content-Length: ${body.length}\r\n\r\n${body}`,
        );
      });
      assert.ok(answer.responses.length >= 1, name);
      assert.ok(
        answer.responses.every((response) => response.status !== 101),
        `${name}: no protocol switch`,
      );
      for (const hit of seen.mcp) {
        assert.equal(hit.headers.upgrade, undefined, name);
        assert.equal(hit.headers['http2-settings'], undefined, name);
        assert.doesNotMatch(String(hit.headers.connection ?? ''), /upgrade/i, name);
      }
    }
  });

  test('an Authorization trailer is not a credential, and never reaches the upstream', async () => {
    const request =
      mcpHead(GATEWAY).replace(/^Authorization: .*\r\n/m, '') +
      `Transfer-Encoding: chunked\r\nTrailer: Authorization\r\n\r\n${chunk(CALL)}0\r\nAuthorization: Bearer ${opaque}\r\n\r\n`;
    let answer!: RawResponse;
    const seen = await upstreamDuring(async () => {
      answer = await rawHttp(stack.gatewayUrl, request);
    });
    assert.equal(answer.responses[0]?.status, 401);
    assert.match(
      rawHeader(answer.responses[0]!.head, 'www-authenticate') ?? '',
      /^Bearer resource_metadata=/,
    );
    assert.equal(seen.mcp.length, 1);
    assert.equal(seen.mcp[0]!.headers.authorization, undefined);
    assert.ok(!JSON.stringify(seen.mcp[0]).includes(opaque));
    assert.equal(seen.api.length, 0);
  });

  for (const port of [GATEWAY, MCP_SERVER]) {
    test(`${port.name}: CR, LF and NUL inside header fields are refused with 400 before anything is forwarded`, async () => {
      const cases: Record<string, string> = {
        'a bare CR': 'X-A: a\rInjected: 1\r\n',
        'a bare LF': 'X-A: a\nInjected: 1\r\n',
        'an obs-fold continuation line': 'X-A: a\r\n Injected: 1\r\n',
        'a NUL': 'X-A: a\u0000b\r\n',
        'a space inside a field name': 'X A: b\r\n',
        'a space before the colon': 'Authorization : Bearer x\r\n',
      };
      for (const [name, field] of Object.entries(cases)) {
        const answer = await nothingForwarded(() =>
          rawHttp(port.origin(), `${mcpHead(port)}${field}Content-Length: ${CALL.length}\r\n\r\n${CALL}`),
        );
        assertRefusedAndClosed(answer, name);
      }
    });
  }

  test('an encoded CR/LF in the path stays encoded: it never becomes a header upstream', async () => {
    let answer!: RawResponse;
    const seen = await upstreamDuring(async () => {
      answer = await rawHttp(
        stack.gatewayUrl,
        `GET /mcp%0d%0aX-Injected:%201 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${opaque}\r\n\r\n`,
      );
    });
    assert.equal(answer.responses[0]?.status, 404);
    for (const hit of [...seen.mcp, ...seen.api]) assert.equal(hit.headers['x-injected'], undefined, hit.url);
  });

  for (const port of [GATEWAY, MCP_SERVER]) {
    test(`${port.name}: CONNECT opens no tunnel (to the APIs or anywhere)`, async () => {
      const target = new URL(stack.apisUrl).host;
      const answer = await nothingForwarded(() =>
        rawHttp(
          port.origin(),
          `CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\nGET /stocks HTTP/1.1\r\nHost: ${target}\r\nAuthorization: Bearer ${phantom}\r\n\r\n`,
        ),
      );
      // No 'connect' handler: Node closes the connection without a word, and nothing is relayed.
      assert.equal(answer.raw, '', JSON.stringify(answer.raw.slice(0, 100)));
    });
  }
});

describe('OPTIONS * (RFC 9110 §9.3.7)', () => {
  test('every component answers the server-wide OPTIONS itself: 204 with Allow, forwarded nowhere', async () => {
    const origins = {
      'authorization server': stack.issuer,
      gateway: stack.gatewayUrl,
      'MCP server': new URL(stack.mcpDirect).origin,
      APIs: stack.apisUrl,
    };
    for (const [name, origin] of Object.entries(origins)) {
      const answer = await nothingForwarded(() => rawHttp(origin, 'OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n'));
      assert.equal(answer.responses[0]?.status, 204, `${name}: ${answer.raw.slice(0, 80)}`);
      assert.match(answer.responses[0]!.head, /\r\nallow: GET, HEAD, POST, DELETE, PUT, OPTIONS\r\n/i, name);
    }
    // Anything else that is not a path stays refused.
    const other = await rawHttp(stack.gatewayUrl, 'GET * HTTP/1.1\r\nHost: x\r\n\r\n');
    assert.equal(other.responses[0]?.status, 400);
  });
});

describe('CL/TE request smuggling (raw sockets)', () => {
  /** Framing conflicts and obfuscations (RFC 9112 §6.1, §6.3), each with a request hidden after it. */
  const cases = (port: Port): Record<string, string> => ({
    'Content-Length and Transfer-Encoding': `Content-Length: ${CALL.length}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${smuggled(port)}`,
    'Transfer-Encoding and Content-Length': `Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n${chunk(CALL)}0\r\n\r\n${smuggled(port)}`,
    'two different Content-Length': `Content-Length: ${CALL.length}\r\nContent-Length: 5\r\n\r\n${CALL}${smuggled(port)}`,
    'two equal Content-Length': `Content-Length: ${CALL.length}\r\nContent-Length: ${CALL.length}\r\n\r\n${CALL}${smuggled(port)}`,
    'a Content-Length list': `Content-Length: ${CALL.length}, ${CALL.length}\r\n\r\n${CALL}${smuggled(port)}`,
    'a signed Content-Length': `Content-Length: +${CALL.length}\r\n\r\n${CALL}${smuggled(port)}`,
    'Transfer-Encoding: xchunked': `Transfer-Encoding: xchunked\r\nContent-Length: ${CALL.length}\r\n\r\n${CALL}${smuggled(port)}`,
    'Transfer-Encoding: chunked, identity': `Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n${smuggled(port)}`,
    'Transfer-Encoding: identity, chunked with a Content-Length': `Transfer-Encoding: identity, chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n${smuggled(port)}`,
    'a tab before chunked, with a Content-Length': `Transfer-Encoding:\tchunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n${smuggled(port)}`,
    'a space before the colon of Transfer-Encoding': `Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n${smuggled(port)}`,
    'two Transfer-Encoding lines': `Transfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n\r\n0\r\n\r\n${smuggled(port)}`,
    'Transfer-Encoding folded onto a continuation line': `Transfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n${smuggled(port)}`,
    'a chunk size that overflows': `Transfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFF1\r\n${CALL}\r\n0\r\n\r\n${smuggled(port)}`,
    'chunks delimited by bare LF': `Transfer-Encoding: chunked\r\n\r\n${CALL.length.toString(16)}\n${CALL}\n0\n\n${smuggled(port)}`,
  });

  for (const port of [GATEWAY, MCP_SERVER]) {
    test(`${port.name}: every framing conflict is one 400, the connection closed, the hidden request never run`, async () => {
      for (const [name, framing] of Object.entries(cases(port))) {
        const answer = await nothingForwarded(() => rawHttp(port.origin(), `${mcpHead(port)}${framing}`));
        assertRefusedAndClosed(answer, name);
      }
    });
  }

  test('a well-framed chunked request and a pipelined second one are two requests, each framed by the gateway', async () => {
    // The control: valid framing is served, and the upstream gets each body exactly, with a Content-Length.
    const second = `GET /mcp/second HTTP/1.1\r\nHost: x\r\n\r\n`;
    let answer!: RawResponse;
    const seen = await upstreamDuring(async () => {
      answer = await rawHttp(
        stack.gatewayUrl,
        `${mcpHead(GATEWAY)}Transfer-Encoding: chunked\r\n\r\n${chunk(CALL.slice(0, 10))}${chunk(CALL.slice(10))}0\r\n\r\n${second}`,
      );
    });
    assert.deepEqual(
      answer.responses.map((response) => response.status),
      [200, 404],
    );
    const posted = seen.mcp.find((hit) => hit.method === 'POST')!;
    assert.equal(posted.body, CALL);
    assert.deepEqual(rawValues(posted, 'content-length'), [String(CALL.length)]);
    assert.deepEqual(rawValues(posted, 'transfer-encoding'), []);
    assert.equal(seen.mcp.find((hit) => hit.method === 'GET')?.headers.authorization, undefined);
  });

  test('HTTP/1.0 with Transfer-Encoding at the gateway: faulty framing, 400 and the connection closed (RFC 9112 §6.1)', async () => {
    const request =
      mcpHead(GATEWAY, 'POST /mcp HTTP/1.0') +
      `Connection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n${chunk(CALL)}0\r\n\r\n${smuggled(GATEWAY)}`;
    const answer = await nothingForwarded(() => rawHttp(stack.gatewayUrl, request));
    assertRefusedAndClosed(answer, 'HTTP/1.0 + Transfer-Encoding');
  });
});

describe('huge headers and bodies', () => {
  for (const port of [GATEWAY, MCP_SERVER]) {
    test(`${port.name}: headers over the limit are 431 and forwarded nowhere`, async () => {
      const big = await nothingForwarded(() =>
        rawHttp(port.origin(), `${mcpHead(port)}X-Big: ${'a'.repeat(20_000)}\r\nContent-Length: 2\r\n\r\n{}`),
      );
      assert.deepEqual(
        big.responses.map((response) => response.status),
        [431],
      );
      const many = Array.from({ length: 3000 }, (_, i) => `X-H${i}: v\r\n`).join('');
      const numerous = await nothingForwarded(() =>
        rawHttp(port.origin(), `${mcpHead(port)}${many}Content-Length: 2\r\n\r\n{}`),
      );
      assert.deepEqual(
        numerous.responses.map((response) => response.status),
        [431],
      );
    });
  }

  test('the gateway: a body over 1 MiB is 413 request_too_large, the connection closed, before any introspection', async () => {
    const introspections = stack.gateway.stats().introspections;
    const fresh = await agentTokenFresh();
    await nothingForwarded(async () => {
      const response = await fetch(stack.mcpUrl, {
        method: 'POST',
        headers: { ...RPC_HEADERS, authorization: `Bearer ${fresh}` },
        body: `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"pad":"${'x'.repeat(1024 * 1024)}"}}`,
      });
      assert.equal(response.status, 413);
      assert.equal(response.headers.get('connection'), 'close');
      assert.equal(((await response.json()) as { error: string }).error, 'request_too_large');
    });
    assert.equal(stack.gateway.stats().introspections, introspections, 'the token was not even looked at');
  });

  test('the gateway: a declared Content-Length of 10 GB is refused at once, without waiting for the body', async () => {
    const answer = await nothingForwarded(() =>
      rawHttp(stack.gatewayUrl, `${mcpHead(GATEWAY)}Content-Length: 10000000000\r\n\r\n{}`),
    );
    assert.deepEqual(
      answer.responses.map((response) => response.status),
      [413],
    );
    assert.match(answer.responses[0]!.body, /request_too_large/);
  });

  test('the MCP server: a body over 1 MiB is 413 with a JSON-RPC error, and no tool runs', async () => {
    await nothingForwarded(async () => {
      const response = await rpc(
        stack.mcpDirect,
        `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_stocks","arguments":{},"pad":"${'x'.repeat(1024 * 1024)}"}}`,
        phantom,
      );
      assert.equal(response.status, 413);
      const body = (await response.json()) as { jsonrpc: string; error: { code: number; message: string } };
      assert.equal(body.jsonrpc, '2.0');
      assert.equal(body.error.code, -32000);
      assert.match(body.error.message, /Payload Too Large/);
    });
  });

  test('the gateway: an oversized bearer token is removed without an introspection', async () => {
    const introspections = stack.gateway.stats().introspections;
    const seen = await upstreamDuring(async () => {
      const response = await rpc(stack.mcpUrl, toolCall(1, 'list_stocks'), 'a'.repeat(4096));
      assert.equal(response.status, 401);
      assert.doesNotMatch(response.headers.get('www-authenticate') ?? '', /error=/);
      await response.arrayBuffer();
    });
    assert.equal(stack.gateway.stats().introspections, introspections);
    assert.deepEqual(
      seen.mcp.map((hit) => hit.headers.authorization),
      [undefined],
      'the MCP server got the request without it',
    );
    assert.equal(seen.api.length, 0);
  });
});

/** A token the gateway has never seen, so its introspection count shows whether it was looked up. */
async function agentTokenFresh(): Promise<string> {
  const agentId = await registerAgent(stack.issuer, 'Fresh agent');
  return (await agentToken(stack, agentId, 'stocks:read')).accessToken;
}

describe('after every attack', () => {
  test('no token appears in any component’s log', () => {
    for (const line of stack.logs) {
      assert.ok(!line.includes(opaque), 'the agent token is in a log line');
      assert.ok(!line.includes(phantom.split('.')[2]!), 'the phantom JWT is in a log line');
    }
  });
});
