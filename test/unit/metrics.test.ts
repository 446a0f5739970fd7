import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { EventStore } from '../../data-plane/src/http/event-store.ts';
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

test('answers an upstream sent against the spec and the node carried are counted by upstream and kind', async () => {
  const metrics = new DataPlaneMetrics();
  metrics.upstreamDeviation('ref', 'missing_result_type');
  metrics.upstreamDeviation('ref', 'missing_result_type');
  metrics.upstreamDeviation('ref', 'ndjson_body');
  const { body } = await metrics.exposition();
  assert.match(body, /portcullis_upstream_deviations_total\{upstream="ref",kind="missing_result_type"\} 2/);
  assert.match(body, /portcullis_upstream_deviations_total\{upstream="ref",kind="ndjson_body"\} 1/);
});

test(`the SSE event store is reported at scrape time: streams and bytes held, connections closed by SSE \
polling`, async () => {
  const store = new EventStore({ maxConnectionMs: 50 });
  const metrics = new DataPlaneMetrics();
  metrics.eventStore(store);
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    store.create('holder', 'k1').start(res, true);
  });
  try {
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const idle = store.create('holder', 'k1');
    idle.send(JSON.stringify({ jsonrpc: '2.0', method: 'notifications/message', params: { data: 'x'.repeat(100) } }));
    // A primed stream over a real connection, which the node closes after 50 ms.
    const response = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`);
    await response.text();
    const { body } = await metrics.exposition();
    assert.match(body, /^portcullis_sse_resumable_streams 2$/m);
    assert.match(body, new RegExp(`^portcullis_sse_event_store_bytes ${store.heldBytes}$`, 'm'));
    assert.ok(store.heldBytes > 100);
    assert.match(body, /^portcullis_sse_polled_connections_total 1$/m);
  } finally {
    store.close();
    server.close();
  }
});
