import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NodeReadiness, type ReadinessOptions } from '../../data-plane/src/observability/readiness.ts';
import { UpstreamState, type UpstreamConfig } from '../../proto/gen/portcullis/v1/config.ts';

const upstream = (id: string, disabled = false) => ({ id, disabled }) as UpstreamConfig;

function setup(options: Partial<ReadinessOptions> = {}) {
  const state = { now: 1_000, hasConfig: false, ageMs: 0 as number | undefined };
  const readiness = new NodeReadiness(
    { readyWhen: 'upstreams', upstreamTimeoutMs: 30_000, ...options },
    { hasConfig: () => state.hasConfig, configAgeMs: () => state.ageMs },
    () => state.now,
  );
  return { state, readiness };
}

test('upstreams: ready once every enabled upstream of the first snapshot connected or failed once', () => {
  const { state, readiness } = setup();
  assert.deepEqual(readiness.check(), { ready: false, reason: 'no configuration snapshot yet' });
  state.hasConfig = true;
  readiness.configApplied([upstream('a'), upstream('b'), upstream('off', true)]);
  assert.deepEqual(readiness.check(), { ready: false, reason: 'waiting for 2 upstream(s) to connect' });
  readiness.upstreamState('a', UpstreamState.UPSTREAM_STATE_CONNECTING);
  readiness.upstreamState('a', UpstreamState.UPSTREAM_STATE_READY);
  readiness.upstreamState('b', UpstreamState.UPSTREAM_STATE_DOWN);
  assert.deepEqual(readiness.check(), { ready: true });
});

test('upstreams: the gate holds at startup only, and for at most the timeout', () => {
  const { state, readiness } = setup({ upstreamTimeoutMs: 5_000 });
  state.hasConfig = true;
  readiness.configApplied([upstream('slow')]);
  state.now += 4_999;
  assert.equal(readiness.check().ready, false);
  state.now += 1;
  assert.equal(readiness.check().ready, true, 'ready after the timeout however slow the upstream');
  readiness.configApplied([upstream('slow'), upstream('new')]);
  assert.equal(readiness.check().ready, true, 'an upstream added later never takes a serving node out');
});

test('an upstream that settled before the first snapshot was applied is not waited for', () => {
  const { state, readiness } = setup();
  state.hasConfig = true;
  readiness.upstreamState('a', UpstreamState.UPSTREAM_STATE_READY);
  readiness.configApplied([upstream('a')]);
  assert.equal(readiness.check().ready, true);
});

test('config: ready with a snapshot; a staleness limit, when set, turns it not ready', () => {
  const { state, readiness } = setup({ readyWhen: 'config', maxConfigAgeMs: 10_000 });
  state.hasConfig = true;
  readiness.configApplied([upstream('a')]);
  assert.equal(readiness.check().ready, true);
  state.ageMs = 10_001;
  assert.deepEqual(readiness.check(), { ready: false, reason: 'configuration may be stale: no control plane for 10 s (limit 10 s)' });
  state.ageMs = 0;
  assert.equal(readiness.check().ready, true);
});
