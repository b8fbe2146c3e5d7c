/**
 * The agent's side of MCP trace context (SEP-414): with an OTLP endpoint (the CLI takes the standard
 * OTEL_EXPORTER_OTLP_ENDPOINT), each tool call is a client span `tools/call <tool>` exported there as
 * `gatehouse-agent`, and its W3C trace context goes in the request's `params._meta` (`traceparent`,
 * `tracestate`), the carrier the MCP specification names for it. A Gatehouse gateway links that
 * context to the trace it starts (docs/security.md); an MCP server reached directly continues it.
 *
 * Without an endpoint nothing is loaded and tool calls carry no `_meta` of ours.
 */
import { context, defaultTextMapSetter, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';

export interface ToolCallTracing {
  /** Runs a tool call in its span; `run` gets the `_meta` entries to send with it. */
  call<T>(tool: string, run: (meta: Record<string, string>) => Promise<T>): Promise<T>;
  /** Exports what is left and stops. */
  shutdown(): Promise<void>;
}

export async function startToolCallTracing(options: {
  otlpEndpoint: string;
  version: string;
}): Promise<ToolCallTracing> {
  const { startTraceExport } = await import('../shared/tracing-provider.ts');
  const exported = startTraceExport({
    serviceName: 'gatehouse-agent',
    serviceVersion: options.version,
    otlpEndpoint: options.otlpEndpoint,
    sampleRatio: 1,
  });
  return {
    async call(tool, run) {
      const span = exported.tracer.startSpan(`tools/call ${tool}`, {
        kind: SpanKind.CLIENT,
        attributes: { 'mcp.method.name': 'tools/call', 'gen_ai.tool.name': tool },
      });
      const active = trace.setSpan(context.active(), span);
      const meta: Record<string, string> = {};
      exported.propagator.inject(active, meta, defaultTextMapSetter);
      try {
        return await context.with(active, () => run(meta));
      } catch (error) {
        span.setAttribute('error.type', (error as Error)?.name ?? 'error');
        span.setStatus({ code: SpanStatusCode.ERROR });
        throw error;
      } finally {
        span.end();
      }
    },
    shutdown: exported.shutdown,
  };
}
