/**
 * The OpenTelemetry SDK side of tracing: one tracer provider per component, exporting over
 * OTLP/HTTP (JSON) in batches, with W3C Trace Context as the propagator.
 *
 * Loaded only when tracing is configured (tracing.ts imports this file dynamically), so a
 * deployment without tracing never loads the SDK or the exporter. Each component gets a provider
 * of its own, not the global one, because several components may share one process (the launcher,
 * the tests) and each must report under its own `service.name`. The context manager is global by
 * nature (it follows async work): the first provider in a process installs it, the last one to shut
 * down removes it.
 */
import { context, type TextMapPropagator, type Tracer } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  BatchSpanProcessor,
  ParentBasedSampler,
  TraceIdRatioBasedSampler,
  TracerProvider,
} from '@opentelemetry/sdk-trace';
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from '@opentelemetry/semantic-conventions';

export interface TraceExportOptions {
  serviceName: string;
  serviceVersion: string;
  /** The collector's OTLP/HTTP base URL; spans go to `<otlpEndpoint>/v1/traces`. */
  otlpEndpoint: string;
  /** The share of new traces recorded; a continued trace follows its parent's decision. */
  sampleRatio: number;
}

export interface TraceExport {
  readonly tracer: Tracer;
  readonly propagator: TextMapPropagator;
  /** Sends every finished span now. */
  flush(): Promise<void>;
  /** Sends what is left and stops; the tracer records nothing afterwards. */
  shutdown(): Promise<void>;
}

let providers = 0;
let ownedContextManager: AsyncLocalStorageContextManager | undefined;

function holdContextManager(): void {
  providers += 1;
  if (providers > 1) return;
  const manager = new AsyncLocalStorageContextManager().enable();
  // Another library may have installed one already; then that one serves, and stays.
  if (context.setGlobalContextManager(manager)) ownedContextManager = manager;
  else manager.disable();
}

function releaseContextManager(): void {
  providers -= 1;
  if (providers > 0 || !ownedContextManager) return;
  ownedContextManager = undefined;
  context.disable();
}

/** `<endpoint>/v1/traces`, as the OTLP specification derives it from OTEL_EXPORTER_OTLP_ENDPOINT. */
export const tracesUrl = (otlpEndpoint: string) => `${otlpEndpoint.replace(/\/+$/, '')}/v1/traces`;

export function startTraceExport(options: TraceExportOptions): TraceExport {
  const provider = new TracerProvider({
    resource: resourceFromAttributes({
      [ATTR_SERVICE_NAME]: options.serviceName,
      [ATTR_SERVICE_VERSION]: options.serviceVersion,
    }),
    // New traces by ratio; a remote parent's decision is kept, so one trace is recorded whole or not at all.
    sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(options.sampleRatio) }),
    spanProcessors: [
      new BatchSpanProcessor({ exporter: new OTLPTraceExporter({ url: tracesUrl(options.otlpEndpoint) }) }),
    ],
  });
  holdContextManager();
  let stopped: Promise<void> | undefined;
  return {
    tracer: provider.getTracer('gatehouse', options.serviceVersion),
    propagator: new W3CTraceContextPropagator(),
    flush: () => provider.forceFlush(),
    shutdown() {
      stopped ??= provider.shutdown().finally(releaseContextManager);
      return stopped;
    },
  };
}
