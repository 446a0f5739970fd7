import {
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Attributes,
  type Span,
  type Tracer,
} from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { NodeSDK } from '@opentelemetry/sdk-node';
import type { Logger } from './logger.ts';
import { parseTraceparent, type SpanAttributes, type TraceSpan, type Tracing } from './tracing.ts';

/**
 * The OpenTelemetry SDK (`@opentelemetry/sdk-node`), traces only: metrics stay with prom-client and
 * logs with pino, so the SDK is given no metric reader and no log processor. The span exporter is the
 * one `OTEL_TRACES_EXPORTER` / `OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL` name (OTLP over HTTP with
 * protobuf by default, `http/json`, `grpc`, `console`); batching, sampling and limits follow the
 * `OTEL_BSP_*`, `OTEL_TRACES_SAMPLER*` and `OTEL_SPAN_*` variables.
 */
export function startOtelTracing(serviceName: string, version: string, logger: Logger): Tracing {
  const env = process.env;
  const protocol = (env['OTEL_EXPORTER_OTLP_TRACES_PROTOCOL'] ?? env['OTEL_EXPORTER_OTLP_PROTOCOL'])?.trim();
  const exporter = env['OTEL_TRACES_EXPORTER']?.trim().toLowerCase();
  const sdk = new NodeSDK({
    ...(env['OTEL_SERVICE_NAME'] === undefined ? { serviceName } : {}),
    metricReaders: [],
    logRecordProcessors: [],
    instrumentations: [],
    // OTLP/HTTP with JSON bodies: the exporter package this project pins (the SDK picks the others from the env).
    ...(protocol === 'http/json' && (exporter === undefined || exporter === '' || exporter === 'otlp')
      ? { traceExporter: new OTLPTraceExporter() }
      : {}),
  });
  sdk.start();
  const tracer = trace.getTracer(serviceName, version);
  logger.info({ protocol: protocol ?? 'http/protobuf', exporter: exporter ?? 'otlp' }, 'OpenTelemetry traces on');
  return {
    request(name, traceparent, attributes) {
      const parent = parseTraceparent(traceparent);
      const context =
        parent === undefined
          ? ROOT_CONTEXT
          : trace.setSpanContext(ROOT_CONTEXT, {
              traceId: parent.traceId,
              spanId: parent.spanId,
              traceFlags: parent.flags & 1,
              isRemote: true,
            });
      return new OtelSpan(
        tracer,
        tracer.startSpan(name, { kind: SpanKind.SERVER, attributes: defined(attributes) }, context),
      );
    },
    shutdown: () => sdk.shutdown(),
  };
}

class OtelSpan implements TraceSpan {
  readonly traceId: string;
  readonly traceparent: string;

  constructor(
    private readonly tracer: Tracer,
    private readonly span: Span,
  ) {
    const context = span.spanContext();
    this.traceId = context.traceId;
    this.traceparent = `00-${context.traceId}-${context.spanId}-0${context.traceFlags & 1}`;
  }

  upstreamCall(name: string, attributes: SpanAttributes): TraceSpan {
    const context = trace.setSpan(ROOT_CONTEXT, this.span);
    return new OtelSpan(
      this.tracer,
      this.tracer.startSpan(name, { kind: SpanKind.CLIENT, attributes: defined(attributes) }, context),
    );
  }

  annotate(attributes: SpanAttributes): void {
    this.span.setAttributes(defined(attributes));
  }

  rename(name: string): void {
    this.span.updateName(name);
  }

  fail(message: string, attributes?: SpanAttributes): void {
    if (attributes !== undefined) this.span.setAttributes(defined(attributes));
    this.span.setStatus({ code: SpanStatusCode.ERROR, message });
  }

  end(): void {
    this.span.end();
  }
}

function defined(attributes: SpanAttributes): Attributes {
  const out: Attributes = {};
  for (const [name, value] of Object.entries(attributes)) if (value !== undefined) out[name] = value;
  return out;
}
