import type { Logger } from './logger.ts';

/**
 * OpenTelemetry traces of both planes, behind a small interface of its own so that a process with
 * tracing off loads no OpenTelemetry code and pays one `undefined` check per request. On when the
 * standard variables ask for it (see `tracingWanted`); the SDK (otel-tracing.ts) is then imported and
 * configured from the `OTEL_*` variables (exporter, endpoint, protocol, headers, sampler, batching).
 */
export interface Tracing {
  /**
   * The span of one MCP request: a child of the caller's `traceparent` when that is a valid W3C value,
   * else the root of a new trace.
   */
  request(name: string, traceparent: string | undefined, attributes: SpanAttributes): TraceSpan;
  /** Exports what is buffered and stops. */
  shutdown(): Promise<void>;
}

export type SpanAttributes = Record<string, string | number | boolean | undefined>;

export interface TraceSpan {
  /** 32 lowercase hex digits. */
  readonly traceId: string;
  /** This span's W3C `traceparent`: what an upstream call made under it is sent with. */
  readonly traceparent: string;
  /** A child span for a call to an upstream (kind CLIENT). */
  upstreamCall(name: string, attributes: SpanAttributes): TraceSpan;
  /** Adds attributes. */
  annotate(attributes: SpanAttributes): void;
  /** Names the span anew (once what it is about is known). */
  rename(name: string): void;
  /** Marks the span failed (status ERROR with this message). */
  fail(message: string, attributes?: SpanAttributes): void;
  end(): void;
}

/**
 * Whether the environment turns traces on: an OTLP endpoint (`OTEL_EXPORTER_OTLP_ENDPOINT` or
 * `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) or an explicit `OTEL_TRACES_EXPORTER` other than `none`, and
 * `OTEL_SDK_DISABLED` not `true`. Unset, the node starts no SDK at all.
 */
export function tracingWanted(env: NodeJS.ProcessEnv): boolean {
  if (env['OTEL_SDK_DISABLED']?.trim().toLowerCase() === 'true') return false;
  const exporter = env['OTEL_TRACES_EXPORTER']?.trim().toLowerCase();
  if (exporter === 'none') return false;
  const given = (name: string) => (env[name]?.trim() ?? '') !== '';
  return (
    given('OTEL_TRACES_EXPORTER') || given('OTEL_EXPORTER_OTLP_ENDPOINT') || given('OTEL_EXPORTER_OTLP_TRACES_ENDPOINT')
  );
}

/**
 * Starts the OpenTelemetry SDK when `tracingWanted(process.env)` (the SDK reads `process.env` itself),
 * else resolves undefined without importing it. `serviceName` applies unless `OTEL_SERVICE_NAME` is set.
 */
export async function startTracing(serviceName: string, version: string, logger: Logger): Promise<Tracing | undefined> {
  if (!tracingWanted(process.env)) return undefined;
  const { startOtelTracing } = await import('./otel-tracing.ts');
  return startOtelTracing(serviceName, version, logger);
}

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/** The parts of a W3C `traceparent` (version 00), or undefined when it is not one (all-zero ids included). */
export function parseTraceparent(
  value: unknown,
): { readonly traceId: string; readonly spanId: string; readonly flags: number } | undefined {
  if (typeof value !== 'string') return undefined;
  const match = TRACEPARENT.exec(value.trim().toLowerCase());
  if (match === null) return undefined;
  const [, traceId, spanId, flags] = match as unknown as [string, string, string, string];
  if (/^0+$/.test(traceId) || /^0+$/.test(spanId)) return undefined;
  return { traceId, spanId, flags: Number.parseInt(flags, 16) };
}
