import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseTraceparent, tracingWanted } from '../../common/src/tracing.ts';

test('traces are off unless the OTEL_* variables name an exporter or an OTLP endpoint', () => {
  assert.equal(tracingWanted({}), false);
  assert.equal(tracingWanted({ OTEL_SERVICE_NAME: 'gw', OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' }), false);
  assert.equal(tracingWanted({ OTEL_EXPORTER_OTLP_ENDPOINT: ' ' }), false);
  assert.equal(tracingWanted({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318' }), true);
  assert.equal(tracingWanted({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://127.0.0.1:4318/v1/traces' }), true);
  assert.equal(tracingWanted({ OTEL_TRACES_EXPORTER: 'console' }), true);
  assert.equal(tracingWanted({ OTEL_TRACES_EXPORTER: 'none', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://x' }), false);
  assert.equal(tracingWanted({ OTEL_SDK_DISABLED: 'true', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://x' }), false);
});

test('a W3C traceparent is read only when well formed, never with all-zero ids', () => {
  assert.deepEqual(parseTraceparent('00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'), {
    traceId: '0af7651916cd43dd8448eb211c80319c',
    spanId: 'b7ad6b7169203331',
    flags: 1,
  });
  assert.equal(parseTraceparent('00-00000000000000000000000000000000-b7ad6b7169203331-01'), undefined);
  assert.equal(parseTraceparent('00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01'), undefined);
  assert.equal(parseTraceparent('00-0af7651916cd43dd8448eb211c80319c-b7ad6b71692033-01'), undefined);
  assert.equal(parseTraceparent(42), undefined);
});
