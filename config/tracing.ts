import { trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { Resource } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor, type SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { ATTR_SERVICE_NAME } from '@opentelemetry/semantic-conventions';
import type { WorkflowClientInterceptor } from '@temporalio/client';
import { OpenTelemetryWorkflowClientInterceptor } from '@temporalio/interceptors-opentelemetry';
import type { RunbookConfig } from './schema';

/**
 * OpenTelemetry tracing of one process (worker, alert bridge), on only when an OTLP endpoint is
 * configured (`tracing.otlpEndpoint`, OTEL_EXPORTER_OTLP_ENDPOINT): spans go by OTLP/HTTP to
 * `<endpoint>/v1/traces`, and the Temporal clients this process makes carry the active span to the
 * workflows they start (config/temporal-connection.ts). No resource detectors run: a process's
 * command line and environment may hold secrets, and spans carry only what is set on them.
 */
export interface Tracing {
  /** The process's span processor (workflow spans reach it through the worker's sink). */
  spanProcessor: SpanProcessor;
  /** service.name and the SDK's own attributes. */
  resource: Resource;
  /** Exports what is still buffered and stops. */
  shutdown(): Promise<void>;
}

let started: Tracing | undefined;

/** Starts tracing for this process as `serviceName` when an endpoint is configured; undefined otherwise (nothing changes). */
export function startTracing(config: RunbookConfig['tracing'], serviceName: string): Tracing | undefined {
  if (!config.otlpEndpoint) return undefined;
  if (started) return started;
  const resource = Resource.default().merge(new Resource({ [ATTR_SERVICE_NAME]: serviceName }));
  const exporter = new OTLPTraceExporter({ url: `${config.otlpEndpoint.replace(/\/+$/, '')}/v1/traces` });
  const spanProcessor = new BatchSpanProcessor(exporter);
  const provider = new BasicTracerProvider({ resource, spanProcessors: [spanProcessor] });
  // W3C trace context, and the active span kept across awaits.
  provider.register({ contextManager: new AsyncLocalStorageContextManager().enable() });
  const tracing: Tracing = {
    spanProcessor,
    resource,
    shutdown: async () => {
      await provider.shutdown();
      trace.disable();
      started = undefined;
    },
  };
  started = tracing;
  return tracing;
}

/** The interceptors a Temporal client of this process needs: the active span into every start's headers while tracing runs. */
export function tracingClientInterceptors(): WorkflowClientInterceptor[] {
  return started ? [new OpenTelemetryWorkflowClientInterceptor()] : [];
}

/** The tracer of this project's own spans (the alert bridge's requests); a no-op without tracing. */
export function runbookTracer() {
  return trace.getTracer('runbook-automation');
}
