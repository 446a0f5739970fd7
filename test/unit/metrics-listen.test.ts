// Finding 10: /metrics answered anyone on the agent-facing port. Metrics now have their own listen
// address (off by default) and an optional bearer token.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { createLogger, startMetricsServer } from '../../common/src/index.ts';
import { DataPlaneMetrics } from '../../data-plane/src/observability/metrics.ts';
import { readOptions } from '../../cli/src/options.ts';
import { dataPlaneOptions, dataPlaneSettings } from '../../cli/src/commands/settings.ts';
import { metricsListenOption, metricsSettings } from '../../cli/src/commands/node-health-settings.ts';
import { MemoryToolRouter } from '../support/memory-tool-router.ts';
import { listenGateway } from '../support/mcp-server-harness.ts';

const logger = createLogger({ level: 'silent' });
const TOKEN = 'metrics-token-0123456789abcdef';

test('finding 10: the agent-facing port does not serve /metrics, even when the node counts metrics', async () => {
  const metrics = new DataPlaneMetrics();
  metrics.toolCall('ev', 'ok', 0.002, 0.001);
  const { gateway } = await listenGateway({
    getConfig: () => undefined,
    upstreams: new MemoryToolRouter([{ upstream: 'ev', name: 'echo' }]),
    metrics,
    logger,
  });
  try {
    const { port } = gateway.server.address() as AddressInfo;
    const response = await fetch(`http://127.0.0.1:${port}/metrics`);
    const body = await response.text();
    assert.equal(response.status, 404);
    assert.doesNotMatch(body, /portcullis_/);
  } finally {
    await gateway.close();
  }
});

test('finding 10: the metrics address answers scrapes with the bearer token only', async () => {
  const metrics = new DataPlaneMetrics();
  metrics.toolCall('ev', 'ok', 0.002, 0.001);
  const server = await startMetricsServer({ host: '127.0.0.1', port: 0, token: TOKEN, metrics, logger });
  try {
    assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    const anonymous = await fetch(server.url);
    assert.equal(anonymous.status, 401);
    assert.match(anonymous.headers.get('www-authenticate') ?? '', /^Bearer/);
    assert.doesNotMatch(await anonymous.text(), /portcullis_/);
    const wrong = await fetch(server.url, { headers: { authorization: `Bearer ${TOKEN}x` } });
    assert.equal(wrong.status, 401);
    await wrong.body?.cancel();
    const scrape = await fetch(server.url, { headers: { authorization: `Bearer ${TOKEN}` } });
    assert.equal(scrape.status, 200);
    assert.match(await scrape.text(), /portcullis_tool_call_duration_seconds_count\{upstream="ev",outcome="ok"\} 1/);
    const elsewhere = await fetch(server.url.replace('/metrics', '/mcp'), {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    assert.equal(elsewhere.status, 404);
    await elsewhere.body?.cancel();
  } finally {
    await server.close();
  }
});

test(`finding 10: metrics are off by default; --metrics-listen and the token (env or file only) reach the node \
options`, () => {
  const connection = { controlPlaneAddress: '127.0.0.1:4001', nodeToken: 'x'.repeat(16) };
  assert.equal(dataPlaneOptions(readOptions(dataPlaneSettings, [], {}), connection, logger).metricsListen, undefined);
  const on = dataPlaneOptions(
    readOptions(dataPlaneSettings, ['--metrics-listen', '127.0.0.1:9464'], { PORTCULLIS_METRICS_TOKEN: TOKEN }),
    connection,
    logger,
  );
  assert.deepEqual(on.metricsListen, { host: '127.0.0.1', port: 9464, token: TOKEN });
  assert.deepEqual(
    dataPlaneOptions(readOptions(dataPlaneSettings, ['--metrics-listen', '[::1]:9464'], {}), connection, logger)
      .metricsListen,
    { host: '::1', port: 9464 },
  );
  assert.throws(
    () => readOptions(dataPlaneSettings, ['--metrics-token', TOKEN], {}),
    /--metrics-token is not accepted: .*ps.*PORTCULLIS_METRICS_TOKEN.*--metrics-token-file/,
  );
  assert.throws(
    () => dataPlaneOptions(readOptions(dataPlaneSettings, [], { PORTCULLIS_METRICS_TOKEN: TOKEN }), connection, logger),
    /needs --metrics-listen/,
  );
  assert.throws(
    () => readOptions(dataPlaneSettings, ['--metrics-listen', '9464'], {}),
    /--metrics-listen: must be host:port/,
  );
});

test('the metrics token comes from PORTCULLIS_METRICS_TOKEN or --metrics-token-file (trimmed), never both', () => {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-metrics-token-'));
  try {
    const file = join(dir, 'token');
    writeFileSync(file, `${TOKEN}\n`, { mode: 0o600 });
    const listen = ['--metrics-listen', '127.0.0.1:9464', '--metrics-token-file', file];
    assert.equal(metricsListenOption(readOptions(metricsSettings, listen, {}))?.token, TOKEN);
    assert.throws(
      () => metricsListenOption(readOptions(metricsSettings, listen, { PORTCULLIS_METRICS_TOKEN: TOKEN })),
      /PORTCULLIS_METRICS_TOKEN and --metrics-token-file are both set; give the metrics token one way/,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
