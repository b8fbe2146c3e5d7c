/**
 * OpenTelemetry traces across the chain (issue 9): a server span for every request a component
 * answers, a client span for every call it makes to another component, W3C `traceparent` on those
 * calls, and the MCP `_meta` trace context of SEP-414 on tool calls. docs/operations.md lists the
 * spans; docs/security.md says whose trace context is taken.
 *
 * Off unless `tracing.otlpEndpoint` is configured. Off costs nothing worth measuring: the SDK is
 * never loaded (tracing-provider.ts is imported only when on), `instrument` returns the handler
 * unchanged, and the helpers below find no tracer in the (no-op) context and do nothing, so no
 * `traceparent` is ever added.
 *
 * When on, the component's tracer and propagator travel in the request's context (the async
 * context manager carries it through every await), so code deep in a component (the token exchange
 * client, an upstream call) adds its span and its header without being handed anything, and each
 * component of a shared process keeps its own `service.name`.
 *
 * No span carries a token, code, secret, query string or path: attributes are route names, status
 * codes, client ids, tool names and request ids, and any attribute whose name looks like it holds
 * a secret (shared/logging.ts decides) is dropped.
 */
import type { IncomingMessage, RequestListener } from 'node:http';
import {
  type Attributes,
  type Context,
  context,
  createContextKey,
  defaultTextMapGetter,
  defaultTextMapSetter,
  isSpanContextValid,
  type Link,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  type TextMapPropagator,
  type Tracer,
  trace,
} from '@opentelemetry/api';
import packageJson from '../../package.json' with { type: 'json' };
import type { LoadedConfig } from './config/load.ts';
import { isSensitiveKey } from './logging.ts';
import { REQUEST_ID_HEADER, requestIdFrom } from './request-id.ts';

/** A component's tracing: its request wrapper, and the end of its exporting. */
export interface Tracing {
  readonly enabled: boolean;
  /**
   * Wraps the component's request handler: one server span per request (none for health probes),
   * named `<method> <route>` with the route name `routeOf` gives, active while the handler runs.
   */
  instrument(
    handler: RequestListener,
    routeOf: (req: IncomingMessage) => string,
    options?: InstrumentOptions,
  ): RequestListener;
  /** Exports every finished span now (tests; a graceful stop does it anyway). */
  flush(): Promise<void>;
  /** Exports what is left and stops; called when the component closes. */
  shutdown(): Promise<void>;
}

export interface InstrumentOptions {
  /**
   * The component is the edge agents reach (the gateway): an incoming trace context is not
   * continued but recorded as a link, and every agent request starts a trace of Gatehouse's own.
   */
  edge?: boolean;
  /** Take the request id from the request's `X-Request-Id` (a component only the MCP server calls). */
  requestIdFromHeader?: boolean;
  /**
   * Routes with no span (default: `health`): probes every few seconds would drown the traces that
   * matter, and a stream open for hours is no request worth a span.
   */
  untraced?: readonly string[];
}

/** What a component's spans are made with; carried in the context of each of its requests. */
interface TraceRuntime {
  tracer: Tracer;
  propagator: TextMapPropagator;
}

const RUNTIME = createContextKey('gatehouse.tracing.runtime');
/** Whether the request's server span continued a trace another component started. */
const CONTINUED = createContextKey('gatehouse.tracing.continued');

/**
 * Attribute names. Stable ones as the semantic conventions spell them; the MCP and GenAI ones are
 * still incubating there, and the conventions ask users to copy those rather than import them.
 */
const ATTR = {
  method: 'http.request.method',
  status: 'http.response.status_code',
  errorType: 'error.type',
  mcpMethod: 'mcp.method.name',
  toolName: 'gen_ai.tool.name',
  operation: 'gen_ai.operation.name',
  route: 'gatehouse.route',
  requestId: 'gatehouse.request_id',
} as const;

const KNOWN_METHODS = new Set([
  'GET',
  'HEAD',
  'POST',
  'PUT',
  'PATCH',
  'DELETE',
  'OPTIONS',
  'CONNECT',
  'TRACE',
]);
/** The semantic conventions' value for a method outside the known set: a client's garbage stays out. */
const methodOf = (req: IncomingMessage) =>
  req.method && KNOWN_METHODS.has(req.method) ? req.method : '_OTHER';

const runtimeOf = (ctx: Context) => ctx.getValue(RUNTIME) as TraceRuntime | undefined;

/** Attributes without any whose name says it holds a secret (`access_token`, `code`, ...). */
function safe(attributes: Attributes): Attributes {
  const out: Attributes = {};
  for (const [key, value] of Object.entries(attributes)) {
    if (value === undefined || isSensitiveKey(key.slice(key.lastIndexOf('.') + 1))) continue;
    out[key] = value;
  }
  return out;
}

export const TRACING_OFF: Tracing = {
  enabled: false,
  instrument: (handler) => handler,
  flush: async () => {},
  shutdown: async () => {},
};

/** The component's tracing from `tracing` in the configuration; `TRACING_OFF` without an endpoint. */
export async function componentTracing(component: string, loaded: LoadedConfig): Promise<Tracing> {
  const { otlpEndpoint, serviceNamePrefix, sampleRatio } = loaded.config.tracing;
  if (!otlpEndpoint) return TRACING_OFF;
  const { startTraceExport } = await import('./tracing-provider.ts');
  const exported = startTraceExport({
    serviceName: `${serviceNamePrefix}${component}`,
    serviceVersion: packageJson.version,
    otlpEndpoint,
    sampleRatio,
  });
  const runtime: TraceRuntime = { tracer: exported.tracer, propagator: exported.propagator };
  return {
    enabled: true,
    instrument: (handler, routeOf, options = {}) => instrumented(runtime, handler, routeOf, options),
    flush: exported.flush,
    shutdown: exported.shutdown,
  };
}

function instrumented(
  runtime: TraceRuntime,
  handler: RequestListener,
  routeOf: (req: IncomingMessage) => string,
  options: InstrumentOptions,
): RequestListener {
  const untraced = options.untraced ?? ['health'];
  return (req, res) => {
    const route = routeOf(req);
    if (untraced.includes(route)) return handler(req, res);
    const incoming = trace.getSpanContext(
      runtime.propagator.extract(ROOT_CONTEXT, req.headers, defaultTextMapGetter),
    );
    const valid = incoming !== undefined && isSpanContextValid(incoming);
    const continued = valid && !options.edge;
    const links: Link[] =
      valid && options.edge
        ? [{ context: incoming, attributes: { 'gatehouse.link': 'client_trace_context' } }]
        : [];
    const parent = continued ? trace.setSpanContext(ROOT_CONTEXT, incoming) : ROOT_CONTEXT;
    const method = methodOf(req);
    const span = runtime.tracer.startSpan(
      `${method} ${route}`,
      { kind: SpanKind.SERVER, attributes: { [ATTR.method]: method, [ATTR.route]: route }, links },
      parent,
    );
    res.once('close', () => {
      // The id the component answered with, else (behind the MCP server) the one it was given.
      const answered = res.getHeader(REQUEST_ID_HEADER);
      const requestId =
        typeof answered === 'string'
          ? answered
          : options.requestIdFromHeader
            ? requestIdFrom(req.headers)
            : undefined;
      if (requestId) span.setAttribute(ATTR.requestId, requestId);
      if (res.writableFinished) {
        span.setAttribute(ATTR.status, res.statusCode);
        // A 4xx is the client's doing, not a failure of this server (semantic conventions, HTTP spans).
        if (res.statusCode >= 500) {
          span.setAttribute(ATTR.errorType, String(res.statusCode));
          span.setStatus({ code: SpanStatusCode.ERROR });
        }
      } else {
        span.setAttribute('gatehouse.outcome', 'client_closed');
      }
      span.end();
    });
    const active = trace.setSpan(parent, span).setValue(RUNTIME, runtime).setValue(CONTINUED, continued);
    context.with(active, () => handler(req, res));
  };
}

/** Adds `traceparent` (and `tracestate`) for the active span to an outgoing request's headers; nothing when off. */
export function injectTraceContext(headers: Record<string, unknown>): void {
  const active = context.active();
  runtimeOf(active)?.propagator.inject(active, headers, defaultTextMapSetter);
}

/** Sets attributes on the active span (none when off); names that look like secrets are dropped. */
export function annotateSpan(attributes: Attributes): void {
  trace.getSpan(context.active())?.setAttributes(safe(attributes));
}

/** Marks the active span failed with a short, fixed reason (an error code; never a message from input). */
export function failSpan(errorType: string): void {
  const span = trace.getSpan(context.active());
  span?.setAttribute(ATTR.errorType, errorType);
  span?.setStatus({ code: SpanStatusCode.ERROR });
}

async function runInSpan<T>(span: Span, ctx: Context, fn: () => Promise<T>): Promise<T> {
  try {
    return await context.with(ctx, fn);
  } catch (error) {
    // The error's name only: a message may quote input.
    span.setAttribute(ATTR.errorType, (error as Error)?.name ?? 'error');
    span.setStatus({ code: SpanStatusCode.ERROR });
    throw error;
  } finally {
    span.end();
  }
}

/**
 * Runs `fn` in a client span, a child of the active span: a call to another component (its
 * `traceparent`, added inside `fn` with `injectTraceContext`, names this span). Just `fn()` when off.
 */
export function inClientSpan<T>(name: string, attributes: Attributes, fn: () => Promise<T>): Promise<T> {
  const active = context.active();
  const runtime = runtimeOf(active);
  if (!runtime) return fn();
  const span = runtime.tracer.startSpan(
    name,
    { kind: SpanKind.CLIENT, attributes: safe(attributes) },
    active,
  );
  return runInSpan(span, trace.setSpan(active, span), fn);
}

/** The SEP-414 keys of an MCP request's `_meta`: `traceparent` and `tracestate` (W3C formats). */
export function traceCarrierOfMeta(meta: unknown): Record<string, string> | undefined {
  if (typeof meta !== 'object' || meta === null) return undefined;
  const { traceparent, tracestate } = meta as Record<string, unknown>;
  if (typeof traceparent !== 'string') return undefined;
  return typeof tracestate === 'string' ? { traceparent, tracestate } : { traceparent };
}

/**
 * Runs an MCP tool call in its span (`tools/call <tool>`, MCP semantic conventions). Its parent is
 * the request's server span when that continued a trace (the gateway's, through `traceparent`);
 * otherwise, when the message carries SEP-414 trace context in `_meta`, that context: a client
 * that reached the MCP server without a tracing gateway keeps its trace. The other context, when
 * it names another trace, is kept as a link. Just `fn()` when off.
 */
export function inToolCallSpan<T>(
  tool: string,
  meta: unknown,
  attributes: Attributes,
  fn: () => Promise<T>,
): Promise<T> {
  const active = context.active();
  const runtime = runtimeOf(active);
  if (!runtime) return fn();
  const carrier = traceCarrierOfMeta(meta);
  const fromMeta = carrier
    ? trace.getSpanContext(runtime.propagator.extract(ROOT_CONTEXT, carrier, defaultTextMapGetter))
    : undefined;
  const messageContext = fromMeta && isSpanContextValid(fromMeta) ? fromMeta : undefined;
  const request = trace.getSpanContext(active);
  const useMeta = messageContext !== undefined && active.getValue(CONTINUED) !== true;
  const other = useMeta ? request : messageContext;
  const parent = useMeta ? trace.setSpanContext(active, messageContext) : active;
  const ownTrace = trace.getSpanContext(parent)?.traceId;
  const links: Link[] =
    other && isSpanContextValid(other) && other.traceId !== ownTrace
      ? [{ context: other, attributes: { 'gatehouse.link': useMeta ? 'http_request' : 'mcp_meta' } }]
      : [];
  const span = runtime.tracer.startSpan(
    `tools/call ${tool}`,
    {
      kind: SpanKind.SERVER,
      attributes: safe({
        ...attributes,
        [ATTR.mcpMethod]: 'tools/call',
        [ATTR.toolName]: tool,
        [ATTR.operation]: 'execute_tool',
      }),
      links,
    },
    parent,
  );
  return runInSpan(span, trace.setSpan(parent, span).setValue(CONTINUED, true), fn);
}
