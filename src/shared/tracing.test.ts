import assert from 'node:assert/strict';
import { createServer, type RequestListener } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { type OtlpReceiver, startOtlpReceiver } from '../../test/helpers/otlp-receiver.ts';
import { parseConfig } from './config/load.ts';
import {
  annotateSpan,
  componentTracing,
  inClientSpan,
  injectTraceContext,
  inToolCallSpan,
  TRACING_OFF,
  type Tracing,
} from './tracing.ts';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const TRACEPARENT = `00-${TRACE}-00f067aa0ba902b7-01`;
const OTHER_TRACE = '0af7651916cd43dd8448eb211c80319c';

const loaded = (tracing: Record<string, unknown> | undefined) => ({
  config: parseConfig(tracing ? { tracing } : {}),
  dataDir: '/nonexistent',
  file: undefined,
});

/** Serves `handler` on loopback for one request and returns what it answered (JSON). */
async function once(handler: RequestListener, headers: Record<string, string> = {}) {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  try {
    const response = await fetch(`http://127.0.0.1:${port}/x`, { headers });
    return (await response.json()) as Record<string, string>;
  } finally {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
}

/** A handler that answers with the headers its outgoing call would carry. */
const echoOutgoing: RequestListener = (_req, res) => {
  void inClientSpan('POST somewhere', {}, async () => {
    const outgoing: Record<string, string> = {};
    injectTraceContext(outgoing);
    return outgoing;
  }).then((outgoing) => res.end(JSON.stringify(outgoing)));
};

describe('tracing off', () => {
  test('no tracing section means TRACING_OFF: the handler unchanged, no header added, nothing sent', async () => {
    const receiver = await startOtlpReceiver();
    try {
      const tracing = await componentTracing('test', loaded(undefined));
      assert.equal(tracing, TRACING_OFF);
      assert.equal(
        tracing.instrument(echoOutgoing, () => 'x'),
        echoOutgoing,
      );
      const outgoing = await once(
        tracing.instrument(echoOutgoing, () => 'x'),
        { traceparent: TRACEPARENT },
      );
      assert.deepEqual(outgoing, {}, 'no traceparent is added');
      await tracing.shutdown();
      assert.equal(receiver.bodies.length, 0);
    } finally {
      await receiver.close();
    }
  });

  test('the helpers do nothing outside a traced request', async () => {
    const headers: Record<string, string> = {};
    injectTraceContext(headers);
    annotateSpan({ 'gatehouse.route': 'x' });
    assert.deepEqual(headers, {});
    assert.equal(await inClientSpan('x', {}, async () => 42), 42);
    assert.equal(await inToolCallSpan('t', { traceparent: TRACEPARENT }, {}, async () => 'ok'), 'ok');
  });
});

describe('tracing on', () => {
  let receiver: OtlpReceiver;
  let tracing: Tracing;
  before(async () => {
    receiver = await startOtlpReceiver();
    tracing = await componentTracing('test', loaded({ otlpEndpoint: `${receiver.url}/` }));
  });
  after(async () => {
    await tracing.shutdown();
    await receiver.close();
  });

  test('behind the edge, an incoming traceparent is continued and passed on', async () => {
    const outgoing = await once(
      tracing.instrument(echoOutgoing, () => 'x'),
      { traceparent: TRACEPARENT },
    );
    assert.match(outgoing.traceparent ?? '', new RegExp(`^00-${TRACE}-[0-9a-f]{16}-01$`));
    assert.ok(!outgoing.traceparent?.includes('00f067aa0ba902b7'), 'names a span of ours');
  });

  test('at the edge, it starts a trace of its own and links the incoming one', async () => {
    const outgoing = await once(
      tracing.instrument(echoOutgoing, () => 'edge', { edge: true }),
      {
        traceparent: TRACEPARENT,
      },
    );
    assert.match(outgoing.traceparent ?? '', /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    assert.ok(!outgoing.traceparent?.includes(TRACE));
    await tracing.flush();
    const root = receiver.spans.find((span) => span.name === 'GET edge');
    assert.ok(root);
    assert.equal(root.parentSpanId, '');
    assert.deepEqual(
      root.links.map((link) => link.traceId),
      [TRACE],
    );
  });

  test("a tool call continues `_meta` only when the request's span started the trace", async () => {
    const toolTrace =
      (meta: unknown): RequestListener =>
      (_req, res) => {
        void inToolCallSpan('get_stock', meta, {}, async () => {
          const outgoing: Record<string, string> = {};
          injectTraceContext(outgoing);
          return outgoing;
        }).then((outgoing) => res.end(JSON.stringify(outgoing)));
      };
    const meta = { traceparent: `00-${OTHER_TRACE}-b7ad6b7169203331-01` };
    const direct = await once(tracing.instrument(toolTrace(meta), () => 'mcp'));
    assert.ok(direct.traceparent?.includes(OTHER_TRACE), 'no incoming header: the _meta trace');
    const throughGateway = await once(
      tracing.instrument(toolTrace(meta), () => 'mcp'),
      {
        traceparent: TRACEPARENT,
      },
    );
    assert.ok(throughGateway.traceparent?.includes(TRACE), "the gateway's trace wins");
    const malformed = await once(tracing.instrument(toolTrace({ traceparent: 'garbage' }), () => 'mcp'));
    assert.match(malformed.traceparent ?? '', /^00-[0-9a-f]{32}-/);
  });

  test('attributes that look like secrets are dropped; health probes have no span', async () => {
    const annotating: RequestListener = (_req, res) => {
      annotateSpan({
        access_token: 'very-secret-value',
        'oauth.code': 'abc-code',
        'gatehouse.client_id': 'c1',
      });
      res.end('{}');
    };
    await once(tracing.instrument(annotating, () => 'annotated'));
    await once(tracing.instrument(annotating, () => 'health'));
    await tracing.flush();
    const span = receiver.spans.find((candidate) => candidate.name === 'GET annotated');
    assert.ok(span);
    assert.equal(span.attributes['gatehouse.client_id'], 'c1');
    assert.equal(span.attributes['http.response.status_code'], 200);
    assert.ok(!receiver.bodies.join('').includes('very-secret-value'));
    assert.ok(!receiver.bodies.join('').includes('abc-code'));
    assert.ok(!receiver.spans.some((candidate) => candidate.name === 'GET health'));
    assert.ok(receiver.spans.every((candidate) => candidate.service === 'gatehouse-test'));
  });
});
