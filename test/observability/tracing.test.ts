/**
 * OpenTelemetry traces across the chain (issue 9): with `tracing.otlpEndpoint` pointing at a real
 * OTLP/HTTP receiver, one tool call through the gateway is one connected trace: the gateway's span
 * at the root, the MCP server's request and tool call spans, the authorization server's token
 * exchange and the API's request under it, each parent in the set. No span carries a token; an
 * agent's own trace context is linked, not continued. Without `tracing`, nothing is exported, even
 * with OTEL_EXPORTER_OTLP_ENDPOINT set.
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createAgent } from '../../src/agent/index.ts';
import { registerNativeClient, userToken } from '../helpers/oauth.ts';
import { type OtlpReceiver, type ReceivedSpan, startOtlpReceiver } from '../helpers/otlp-receiver.ts';
import { callGetStock } from '../helpers/revocation.ts';
import { startTestStack, type TestStack } from '../helpers/stack.ts';

const REDIRECT_URI = 'http://127.0.0.1/callback';
const SERVER = 2;
const CLIENT = 3;
/** The agent's own trace context, sent as a header and in `_meta` (SEP-414). */
const AGENT_TRACE = '0af7651916cd43dd8448eb211c80319c';
const AGENT_SPAN = 'b7ad6b7169203331';
const AGENT_TRACEPARENT = `00-${AGENT_TRACE}-${AGENT_SPAN}-01`;

async function signedIn(stack: TestStack): Promise<string> {
  const clientId = await registerNativeClient(stack.issuer, [REDIRECT_URI]);
  const { token } = await userToken({
    issuer: stack.issuer,
    clientId,
    redirectUri: REDIRECT_URI,
    scope: 'stocks:read',
    resource: stack.mcpUrl,
  });
  return String(token.json.access_token);
}

/** A `tools/call` of get_stock with the agent's trace context in the header and in `_meta`. */
function callWithAgentTrace(stack: TestStack, accessToken: string) {
  return fetch(`${stack.gatewayUrl}/mcp`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': '2025-11-25',
      authorization: `Bearer ${accessToken}`,
      traceparent: AGENT_TRACEPARENT,
      tracestate: 'agent=chosen',
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'tools/call',
      params: {
        name: 'get_stock',
        arguments: { symbol: 'SAP' },
        _meta: { traceparent: AGENT_TRACEPARENT, tracestate: 'agent=chosen' },
      },
    }),
  });
}

describe('one tool call, one connected trace', () => {
  let receiver: OtlpReceiver;
  let stack: TestStack;
  let accessToken: string;
  let requestId: string;
  let trace: ReceivedSpan[];
  let root: ReceivedSpan;

  before(async () => {
    receiver = await startOtlpReceiver();
    stack = await startTestStack({ tracing: { otlpEndpoint: receiver.url } });
    accessToken = await signedIn(stack);
    const call = await callWithAgentTrace(stack, accessToken);
    assert.equal(call.status, 200);
    assert.match(await call.text(), /SAP/);
    requestId = call.headers.get('x-request-id') ?? '';
    // Closing shuts every tracer down, which exports what is left.
    await stack.close();
    const roots = receiver.spans.filter(
      (span) => span.service === 'gatehouse-gateway' && span.attributes['gatehouse.request_id'] === requestId,
    );
    assert.equal(roots.length, 1, 'one gateway span for the tool call');
    root = roots[0]!;
    trace = receiver.spans.filter((span) => span.traceId === root.traceId);
  });
  after(() => receiver.close());

  const one = (predicate: (span: ReceivedSpan) => boolean, what: string): ReceivedSpan => {
    const found = trace.filter(predicate);
    assert.equal(
      found.length,
      1,
      `${what}: ${found.length} spans in the trace (${trace.map((s) => `${s.service}:${s.name}`).join(', ')})`,
    );
    return found[0]!;
  };
  const parentOf = (span: ReceivedSpan) => trace.find((candidate) => candidate.spanId === span.parentSpanId);
  const ancestors = (span: ReceivedSpan): ReceivedSpan[] => {
    const chain: ReceivedSpan[] = [];
    for (let at = parentOf(span); at; at = parentOf(at)) chain.push(at);
    return chain;
  };

  test('the gateway span is the root; every other span has its parent in the trace', () => {
    assert.equal(root.parentSpanId, '', 'the gateway starts the trace');
    assert.equal(root.kind, SERVER);
    assert.equal(root.name, 'POST mcp-server');
    assert.equal(root.attributes['http.response.status_code'], 200);
    for (const span of trace) {
      if (span === root) continue;
      assert.ok(parentOf(span), `${span.service} ${span.name} has its parent in the trace`);
      assert.ok(ancestors(span).includes(root), `${span.service} ${span.name} descends from the root`);
    }
    assert.equal(receiver.strays.length, 0, 'only POST /v1/traces was sent');
  });

  test('the gateway, the MCP server, the authorization server and the API each have their spans in it', () => {
    const introspection = one(
      (s) => s.service === 'gatehouse-gateway' && s.kind === CLIENT,
      'introspection call',
    );
    assert.equal(introspection.name, 'POST introspection');
    const introspected = one(
      (s) => s.service === 'gatehouse-authorization-server' && s.name === 'POST introspection',
      'introspection at the authorization server',
    );
    assert.equal(parentOf(introspected), introspection);

    const mcpRequest = one(
      (s) => s.service === 'gatehouse-mcp-server' && s.name === 'POST mcp',
      'MCP request',
    );
    assert.equal(parentOf(mcpRequest), root);
    assert.equal(mcpRequest.attributes['gatehouse.request_id'], requestId);
    const toolCall = one((s) => s.name === 'tools/call get_stock', 'tool call');
    assert.equal(toolCall.service, 'gatehouse-mcp-server');
    assert.equal(parentOf(toolCall), mcpRequest);
    assert.equal(toolCall.attributes['gen_ai.tool.name'], 'get_stock');
    assert.equal(toolCall.attributes['mcp.method.name'], 'tools/call');
    assert.equal(toolCall.attributes['gatehouse.request_id'], requestId);
    assert.equal(typeof toolCall.attributes['gatehouse.client_id'], 'string');

    const exchange = one((s) => s.name === 'POST token exchange', 'token exchange call');
    assert.equal(parentOf(exchange), toolCall);
    const token = one(
      (s) => s.service === 'gatehouse-authorization-server' && s.name === 'POST token',
      'token endpoint',
    );
    assert.equal(parentOf(token), exchange);
    assert.equal(token.attributes['gatehouse.grant_type'], 'urn:ietf:params:oauth:grant-type:token-exchange');
    assert.equal(token.attributes['gatehouse.client_id'], 'gatehouse-mcp-server');
    assert.equal(token.attributes['gatehouse.request_id'], requestId);
    assert.equal(token.attributes['http.response.status_code'], 200);

    const apiCall = one((s) => s.name === 'GET stocks API', 'API call');
    assert.equal(parentOf(apiCall), toolCall);
    const api = one((s) => s.service === 'gatehouse-apis', 'API request');
    assert.equal(api.name, 'GET stocks');
    assert.equal(parentOf(api), apiCall);
    assert.equal(api.attributes['gatehouse.request_id'], requestId);
    assert.equal(api.attributes['http.response.status_code'], 200);
  });

  test("the agent's trace context is linked, not continued", () => {
    assert.notEqual(root.traceId, AGENT_TRACE);
    assert.deepEqual(
      root.links.map((link) => [link.traceId, link.spanId]),
      [[AGENT_TRACE, AGENT_SPAN]],
      'the gateway links the traceparent header',
    );
    const toolCall = one((s) => s.name === 'tools/call get_stock', 'tool call');
    assert.deepEqual(
      toolCall.links.map((link) => [link.traceId, link.spanId, link.attributes['gatehouse.link']]),
      [[AGENT_TRACE, AGENT_SPAN, 'mcp_meta']],
      'the MCP server links the SEP-414 _meta context',
    );
    assert.ok(
      !receiver.spans.some((span) => span.traceId === AGENT_TRACE),
      'no span joined the trace the agent named',
    );
  });

  test('no span carries a token, a JWT or a query string', () => {
    const exported = receiver.bodies.join('\n');
    assert.ok(exported.length > 0);
    assert.ok(!exported.includes(accessToken), 'the access token is in no export');
    assert.doesNotMatch(
      exported,
      /eyJ[\w-]{8,}\.[\w-]{8,}/,
      'no JWT (phantom or exchanged) is in any export',
    );
    for (const span of receiver.spans) {
      for (const [key, value] of Object.entries(span.attributes)) {
        assert.ok(!String(value).includes('?'), `${span.name} ${key} has no query string`);
      }
    }
  });
});

describe("the console agent's tool call span, through the gateway", () => {
  test('the agent sends its trace context in _meta; the MCP server links it to the tool call', async () => {
    const receiver = await startOtlpReceiver();
    const stack = await startTestStack({ tracing: { otlpEndpoint: receiver.url } });
    try {
      const agent = createAgent({
        serverUrl: stack.mcpUrl,
        storePath: path.join(mkdtempSync(path.join(tmpdir(), 'gatehouse-agent-')), 'store.json'),
        clientId: 'example-workload',
        privateKeyFile: path.join(stack.dataDir, 'secrets/example-workload.private-key.json'),
        otlpEndpoint: receiver.url,
      });
      try {
        const result = await agent.callTool('list_stocks');
        assert.notEqual(result.isError, true);
      } finally {
        await agent.close();
      }
    } finally {
      await stack.close();
      await receiver.close();
    }
    const agentSpan = receiver.spans.find((span) => span.service === 'gatehouse-agent');
    assert.ok(agentSpan, 'the agent exported its span');
    assert.equal(agentSpan.name, 'tools/call list_stocks');
    assert.equal(agentSpan.kind, CLIENT);
    const toolCall = receiver.spans.find(
      (span) => span.name === 'tools/call list_stocks' && span.kind === SERVER,
    );
    assert.ok(toolCall);
    assert.notEqual(toolCall.traceId, agentSpan.traceId, "the gateway's trace, not the agent's");
    assert.deepEqual(
      toolCall.links.map((link) => [link.traceId, link.spanId]),
      [[agentSpan.traceId, agentSpan.spanId]],
    );
  });
});

describe('tracing off', () => {
  test('nothing is exported without tracing.otlpEndpoint, even with OTEL_EXPORTER_OTLP_ENDPOINT set', async () => {
    const receiver = await startOtlpReceiver();
    // The standard variable does not turn tracing on: the configuration file does (docs/operations.md).
    process.env.OTEL_EXPORTER_OTLP_ENDPOINT = receiver.url;
    try {
      const stack = await startTestStack();
      try {
        const accessToken = await signedIn(stack);
        const call = await callGetStock(stack.gatewayUrl, accessToken);
        assert.equal(call.status, 200);
        await call.text();
      } finally {
        await stack.close();
      }
      assert.equal(receiver.bodies.length, 0, 'no export');
      assert.equal(receiver.strays.length, 0, 'no request of any kind');
    } finally {
      delete process.env.OTEL_EXPORTER_OTLP_ENDPOINT;
      await receiver.close();
    }
  });
});
