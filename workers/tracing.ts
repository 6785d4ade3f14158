import type { Attributes } from '@opentelemetry/api';
import { existsSync } from 'node:fs';
import { Resource } from '@opentelemetry/resources';
import { NoopSpanProcessor, type SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { OpenTelemetryPlugin } from '@temporalio/interceptors-opentelemetry';
import type { BundleOptions, WorkerOptions } from '@temporalio/worker';
import type { Tracing } from '../config/tracing';

/** What of the WorkflowInfo the SDK's sink merges into each workflow span is kept: who the run is. */
const workflowIdentity = new Set(['workflowId', 'runId', 'workflowType', 'taskQueue', 'namespace', 'attempt']);

/** The span's own attributes (the SDK's are named temporal…) and the run's identity. */
function identityOnly(attributes: Attributes): Attributes {
  return Object.fromEntries(Object.entries(attributes).filter(([key]) => key.startsWith('temporal') || workflowIdentity.has(key)));
}

/**
 * The processor workflow spans reach through the sink. The sink adds the whole WorkflowInfo to
 * each, memo, search attributes and last result included: decoded payloads (clear text even where
 * history is encrypted) and kilobytes a span. Only the run's identity goes on.
 */
function workflowSpanProcessor(processor: SpanProcessor): SpanProcessor {
  return {
    onStart: (span, parentContext) => processor.onStart(span, parentContext),
    // The sink's spans are plain objects (spanContext() included), so a copy is a whole span.
    onEnd: (span) => processor.onEnd({ ...span, attributes: identityOnly(span.attributes) }),
    forceFlush: () => processor.forceFlush(),
    shutdown: () => processor.shutdown(),
  };
}

/**
 * The worker's part of tracing (config/tracing.ts), when it runs: workflow spans (inbound and
 * outbound interceptors in the bundle, exported through a sink), each activity's span, and starts
 * from activities carrying theirs. Without tracing nothing is added: no span, no header in history.
 */
export function workerTracing(tracing: Tracing | undefined): Pick<WorkerOptions, 'plugins'> {
  if (!tracing) return {};
  return { plugins: [new OpenTelemetryPlugin({ resource: tracing.resource, spanProcessor: workflowSpanProcessor(tracing.spanProcessor) })] };
}

/** What bundling needs of the plugin: its workflow interceptor modules (it exports nothing while bundling). */
export function bundleTracing(): Pick<BundleOptions, 'plugins'> {
  return { plugins: [new OpenTelemetryPlugin({ resource: Resource.EMPTY, spanProcessor: new NoopSpanProcessor() })] };
}

/** The bundle with tracing interceptors that workers/bundle-workflows.ts writes beside a bundle built ahead of time. */
export function tracedBundlePath(bundle: string): string {
  return `${bundle.replace(/\.js$/, '')}.traced.js`;
}

/** The prebuilt bundle a worker runs: the traced one while tracing runs (its workflows then make spans and carry them to activities). */
export function prebuiltBundle(bundle: string, tracing: Tracing | undefined): string {
  if (!tracing) return bundle;
  const traced = tracedBundlePath(bundle);
  if (!existsSync(traced)) throw new Error(`tracing is on (OTEL_EXPORTER_OTLP_ENDPOINT) but ${traced} is missing: build it with workers/bundle-workflows.ts, which writes it beside ${bundle}`);
  return traced;
}
