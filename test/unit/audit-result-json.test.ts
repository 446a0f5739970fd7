import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { createLogger } from '../../common/src/index.ts';
import { AuditContent } from '../../data-plane/src/audit/audit-content.ts';
import { recordOfLine, type AuditRecord } from '../../data-plane/src/audit/audit-record.ts';
import { AuditRecorder } from '../../data-plane/src/audit/audit-recorder.ts';
import { AuditSpool } from '../../data-plane/src/audit/audit-spool.ts';
import type { DispatchContext, RpcRequest } from '../../data-plane/src/mcp/dispatcher.ts';
import { LegacyEra } from '../../data-plane/src/mcp/era-legacy.ts';
import { ModernEra, type ModernEraOptions } from '../../data-plane/src/mcp/era-modern.ts';
import { SERVER_INFO_META_KEY } from '../../data-plane/src/mcp/protocol.ts';
import type { Operation, Outcome } from '../../data-plane/src/pipeline/operation.ts';
import { recordStep } from '../../data-plane/src/pipeline/steps/record.ts';
import { signalCancellation } from '../../data-plane/src/upstream/cancellation.ts';

const logger = createLogger({ level: 'silent' });

function call(): Operation {
  const now = performance.now();
  return {
    id: 1,
    method: 'tools/call',
    params: { name: 'ev__echo', arguments: { text: 'hi' } },
    principal: undefined,
    keyId: 'k1',
    sessionKeys: [],
    cancellation: signalCancellation(new AbortController().signal),
    receivedAt: now,
    target: { kind: 'upstream', upstream: 'ev', subject: 'echo', params: { name: 'echo' } } as Operation['target'],
    upstreamStartedAt: now,
    upstreamEndedAt: now,
  };
}

/** Runs one call through the record step with `content`; gives the outcome it returned and the record it wrote. */
async function recorded(content: AuditContent, outcome: Outcome): Promise<{ outcome: Outcome; record: AuditRecord }> {
  const dir = await mkdtemp(join(tmpdir(), 'audit-result-json-'));
  const spool = await AuditSpool.open({ dir, maxBytes: 1 << 20, logger });
  try {
    const audit = new AuditRecorder({ node: 'n', spool, content, whenFull: 'serve', logger });
    const returned = await recordStep(undefined, audit).run(call(), () => Promise.resolve(outcome));
    const [segment] = (await readdir(dir)).filter((n) => n.startsWith('seg-'));
    const line = (await readFile(join(dir, segment!), 'utf8')).trim();
    return { outcome: returned, record: recordOfLine(line) };
  } finally {
    await spool.close();
    await rm(dir, { recursive: true, force: true });
  }
}

describe("the record step and the result's JSON", () => {
  it('hands the adapter the JSON text it recorded, so the result is serialized once', async () => {
    const result = { content: [{ type: 'text', text: 'say "hi"' }], isError: true };
    const { outcome, record } = await recorded(new AuditContent(), { kind: 'result', result, unavailable: true });
    assert.equal(outcome.kind, 'result');
    if (outcome.kind !== 'result') return;
    assert.equal(outcome.json, JSON.stringify(result));
    assert.equal(record.result, outcome.json);
    assert.equal(outcome.result, result);
    assert.equal(outcome.unavailable, true);
    assert.equal(record.status, 'unavailable');
  });

  it('leaves the outcome as it was when the record holds no whole result (content off, or truncated)', async () => {
    const result = { content: [{ type: 'text', text: 'x'.repeat(100) }] };
    for (const content of [new AuditContent({ enabled: false }), new AuditContent({ maxValueChars: 50 })]) {
      const given: Outcome = { kind: 'result', result };
      const { outcome, record } = await recorded(content, given);
      assert.equal(outcome, given);
      assert.notEqual(record.result, JSON.stringify(result));
    }
  });
});

describe("the adapters and a result's JSON", () => {
  // Text no serializer would write for `result` (spaces): an answer carrying it was not serialized again.
  const result = { content: [{ type: 'text', text: 'hi' }] };
  const json = '{ "content": [ { "type": "text", "text": "hi" } ] }';
  const context = {
    principal: { keyId: 'k1' },
    cancellation: signalCancellation(new AbortController().signal),
    sessionKeys: [],
  } as unknown as DispatchContext;
  const request = { jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'ev__echo' } } as RpcRequest;

  it('2025 era: sends the JSON record made, unless the result names its upstream (then without it)', async () => {
    const reply = await new LegacyEra(() => Promise.resolve({ kind: 'result', result, json })).handle(request, context);
    assert.equal(reply.body, `{"jsonrpc":"2.0","id":3,"result":${json}}`);
    const named = { ...result, _meta: { [SERVER_INFO_META_KEY]: { name: 'ev' } } };
    const stripped = await new LegacyEra(() =>
      Promise.resolve({ kind: 'result', result: named, json: JSON.stringify(named) }),
    ).handle(request, context);
    assert.equal(stripped.body, `{"jsonrpc":"2.0","id":3,"result":${JSON.stringify(result)}}`);
  });

  it('2026-07-28: splices its suffix into the JSON record made', async () => {
    const era = new ModernEra({
      run: () => Promise.resolve({ kind: 'result', result, json }),
      serverInfo: { name: 'gw', version: '1' },
      listTtlMs: 0,
      capabilities: () => ({}),
    } as unknown as ModernEraOptions);
    const reply = await era.handle(request, context);
    const body = JSON.parse(reply.body) as { result: Record<string, unknown> };
    assert.ok(reply.body.includes('{ "content": [ { "type": "text", "text": "hi" } ] ,"resultType":"complete"'));
    assert.deepEqual(body.result['content'], result.content);
  });
});
