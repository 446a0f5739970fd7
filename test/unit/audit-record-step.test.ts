import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { createLogger } from '../../common/src/index.ts';
import { AuditContent } from '../../data-plane/src/audit/audit-content.ts';
import { recordOfLine, type AuditRecord } from '../../data-plane/src/audit/audit-record.ts';
import { AuditRecorder, type SpoolFullPolicy } from '../../data-plane/src/audit/audit-recorder.ts';
import { AuditSpool } from '../../data-plane/src/audit/audit-spool.ts';
import { DEFAULT_SANDBOX_LIMITS, SandboxPool } from '../../data-plane/src/code-mode/sandbox-pool.ts';
import { RpcErrorCode } from '../../data-plane/src/mcp/protocol.ts';
import type { Operation } from '../../data-plane/src/pipeline/operation.ts';
import { signalCancellation } from '../../data-plane/src/upstream/cancellation.ts';
import { CodeMode } from '../../proto/gen/portcullis/v1/config.ts';
import { MemoryToolRouter } from '../support/memory-tool-router.ts';
import { buildConfig, testKey, testGateway } from '../support/mcp-server-harness.ts';

const logger = createLogger({ level: 'silent' });

async function gateway(maxBytes: number, whenFull: SpoolFullPolicy, sandbox?: SandboxPool) {
  const dir = await mkdtemp(join(tmpdir(), 'audit-step-test-'));
  const spool = await AuditSpool.open({ dir, maxBytes, logger });
  const audit = new AuditRecorder({ node: 'unit-node', spool, content: new AuditContent(), whenFull, logger });
  const key = testKey('k1', ['everything__*'], sandbox === undefined ? undefined : CodeMode.CODE_MODE_ON);
  const config = buildConfig([key]);
  const router = new MemoryToolRouter([{ upstream: 'everything', name: 'echo' }]);
  const server = testGateway({
    getConfig: () => config,
    upstreams: router,
    logger,
    audit,
    ...(sandbox === undefined ? {} : { sandbox }),
  });
  const nested = (text: string, parentId = 'run_script-call-7'): Operation => ({
    id: `nested-${text}`,
    method: 'tools/call',
    params: { name: 'everything__echo', arguments: { text } },
    principal: undefined,
    keyId: key.id,
    parentId,
    sessionKeys: config.sessionKeys,
    cancellation: signalCancellation(new AbortController().signal),
    receivedAt: performance.now(),
  });
  const records = async (): Promise<AuditRecord[]> => {
    const lines: string[] = [];
    for (const name of (await readdir(dir)).filter((n) => n.startsWith('seg-')).sort())
      lines.push(...(await readFile(join(dir, name), 'utf8')).split('\n').filter((l) => l !== ''));
    return lines.map(recordOfLine);
  };
  const close = async () => {
    await server.close();
    await spool.close();
    await rm(dir, { recursive: true, force: true });
  };
  return { server, spool, router, key, nested, records, close };
}

describe('the record step', () => {
  it("gives a script's nested calls the run_script call's own record id as parent", async () => {
    const sandbox = new SandboxPool({ workers: 1, limits: { ...DEFAULT_SANDBOX_LIMITS, timeMs: 5_000 }, maxQueued: 2 });
    const g = await gateway(1 << 20, 'refuse', sandbox);
    try {
      const code = 'await tools.everything.echo({ text: "a" }); return await tools.everything.echo({ text: "b" });';
      const run = g.nested('script', 'agent-request-1');
      const outcome = await g.server.run({ ...run, params: { name: 'run_script', arguments: { code } } });
      assert.equal(outcome.kind, 'result');
      const records = await g.records();
      const script = records.find((r) => r.tool === 'run_script');
      const calls = records.filter((r) => r.tool === 'everything__echo');
      assert.ok(script, 'the run_script call has its record');
      assert.equal(calls.length, 2);
      for (const call of calls) assert.equal(call.parentId, script.id);
      assert.equal(script.parentId, 'agent-request-1', 'the script keeps its own parent');
    } finally {
      await g.close();
      await sandbox.close();
    }
  });

  it(`spools one record per nested call, with the script’s call as parent, before the outcome is \
returned`, async () => {
    const g = await gateway(1 << 20, 'refuse');
    try {
      const outcome = await g.server.run(g.nested('hi'));
      assert.equal(outcome.kind, 'result');
      // Already on disk when run() resolved: nothing waits on a later flush.
      const [record] = await g.records();
      assert.equal(record?.kind, 'tool_call');
      assert.equal(record?.status, 'ok');
      assert.equal(record?.parentId, 'run_script-call-7');
      assert.equal(record?.keyId, g.key.id);
      assert.equal(record?.upstream, 'everything');
      assert.equal(record?.node, 'unit-node');
      assert.deepEqual(JSON.parse(record!.arguments!), { text: 'hi' });
    } finally {
      await g.close();
    }
  });

  it('refuses operations with -32048 while the spool is full and the policy is refuse', async () => {
    const g = await gateway(4096, 'refuse');
    try {
      let outcome = await g.server.run(g.nested('x'.repeat(100)));
      while (outcome.kind !== 'error') outcome = await g.server.run(g.nested('x'.repeat(100)));
      assert.equal(outcome.error.code, RpcErrorCode.AuditUnavailable);
      assert.equal(outcome.error.httpStatus, 503);
      const calls = g.router.calls.length;
      const again = await g.server.run(g.nested('y'));
      assert.equal(again.kind, 'error');
      assert.equal(g.router.calls.length, calls, 'a refused call never reaches the upstream');
      assert.equal((await g.records()).length, calls, 'every call that ran was recorded');
    } finally {
      await g.close();
    }
  });

  it('keeps serving while the spool is full when the policy is serve, and counts the records lost', async () => {
    const g = await gateway(4096, 'serve');
    try {
      for (let i = 0; i < 60; i++) assert.equal((await g.server.run(g.nested('x'.repeat(100)))).kind, 'result');
      assert.ok(g.spool.full);
      assert.ok(g.spool.dropped > 0);
      assert.equal((await g.records()).length + g.spool.dropped, 60);
    } finally {
      await g.close();
    }
  });
});
