import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DataPlaneMetrics } from '../../data-plane/src/observability/metrics.ts';

test('a tool call is recorded as its duration and the time the gateway added', async () => {
  const metrics = new DataPlaneMetrics();
  metrics.toolCall('ev', 'ok', 0.00303, 0.003); // 30 µs in the gateway
  metrics.toolCall('ev', 'ok', 0.0022, 0.002); // 200 µs in the gateway
  const { body, contentType } = await metrics.exposition();
  assert.match(contentType, /^text\/plain/);
  assert.match(body, /portcullis_tool_call_duration_seconds_count\{upstream="ev",outcome="ok"\} 2/);
  assert.match(body, /portcullis_gateway_overhead_seconds_bucket\{le="0.00025",upstream="ev"\} 2/);
  assert.match(body, /portcullis_gateway_overhead_seconds_bucket\{le="0.00005",upstream="ev"\} 1/);
});

test('an upstream is in exactly one state at a time', async () => {
  const metrics = new DataPlaneMetrics();
  metrics.upstreamState('ev', 'connecting');
  metrics.upstreamState('ev', 'ready');
  const { body } = await metrics.exposition();
  assert.match(body, /portcullis_upstream_state\{upstream="ev",state="ready"\} 1/);
  assert.match(body, /portcullis_upstream_state\{upstream="ev",state="connecting"\} 0/);
});
