/**
 * Issue 14, in one process: the CPU the record step's audit recording adds to one `tools/call` (an echo through a
 * key with an allow-list, content logging on), without the noise of a whole node, its upstream and the load
 * generator. The same step with and without a recorder (metrics on in both, as on the bench's nodes), each run in
 * rounds that alternate; the spool writes to a temporary directory as on a node.
 * `npx tsx bench/scripts/audit-record-micro.ts [calls per round] [rounds]`.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../../common/src/index.ts';
import { AuditContent } from '../../data-plane/src/audit/audit-content.ts';
import { AuditRecorder } from '../../data-plane/src/audit/audit-recorder.ts';
import { AuditSpool } from '../../data-plane/src/audit/audit-spool.ts';
import { DataPlaneMetrics } from '../../data-plane/src/observability/metrics.ts';
import type { Operation, Outcome, Step } from '../../data-plane/src/pipeline/operation.ts';
import { recordStep } from '../../data-plane/src/pipeline/steps/record.ts';
import { signalCancellation } from '../../data-plane/src/upstream/cancellation.ts';

const calls = Number(process.argv[2] ?? 20_000);
const rounds = Number(process.argv[3] ?? 10);
const CONCURRENCY = 32;
const logger = createLogger({ level: 'silent' });
const dir = await mkdtemp(join(tmpdir(), 'audit-micro-'));
const spool = await AuditSpool.open({ dir, maxBytes: 1 << 30, logger });
const audit = new AuditRecorder({ node: 'bench-node', spool, content: new AuditContent(), whenFull: 'serve', logger });
const metrics = new DataPlaneMetrics();
const cancellation = signalCancellation(new AbortController().signal);
const principal = { keyId: 'key-0123456789', keyName: 'bench', teamId: 'team-1', allowList: { patterns: ['*'] } };

function operation(): Operation {
  const now = performance.now();
  return {
    id: 7,
    method: 'tools/call',
    params: { name: 'everything__echo', arguments: { message: 'hello' } },
    principal: principal as unknown as Operation['principal'],
    sessionKeys: [],
    cancellation,
    sessionId: 'session.signature-part-of-a-signed-session-id',
    receivedAt: now,
    target: {
      kind: 'upstream',
      upstream: 'everything',
      subject: 'echo',
      params: { name: 'echo', arguments: { message: 'hello' } },
    } as unknown as Operation['target'],
    upstreamStartedAt: now,
    upstreamEndedAt: now,
  };
}

// A fresh result object per call, as an upstream's parsed answer is.
const next = (): Promise<Outcome> =>
  Promise.resolve({ kind: 'result', result: { content: [{ type: 'text', text: 'Echo: hello' }] } });

function answer(outcome: Extract<Outcome, { kind: 'result' }>): string {
  const json: string | undefined = (outcome as { json?: string }).json;
  return json ?? JSON.stringify(outcome.result);
}

async function round(step: Step): Promise<number> {
  const before = process.cpuUsage();
  // 32 at a time, as the bench's c=32 rows: one loop turn's records share one spool write.
  for (let i = 0; i < calls; i += CONCURRENCY) {
    const batch: Promise<Outcome>[] = [];
    for (let j = 0; j < CONCURRENCY; j++) batch.push(step.run(operation(), next));
    // What the adapter serializes (record may have done it already: then the text is reused).
    for (const outcome of await Promise.all(batch)) if (outcome.kind === 'result') answer(outcome);
  }
  await new Promise((resolve) => setImmediate(resolve));
  const used = process.cpuUsage(before);
  return (used.user + used.system) / calls;
}

const on = recordStep(metrics, audit);
const off = recordStep(metrics);
// Warm-up: both paths compiled before anything counts.
for (let i = 0; i < 3; i++) {
  await round(on);
  await round(off);
}
const added: number[] = [];
let onSum = 0;
let offSum = 0;
let onMin = Number.POSITIVE_INFINITY;
let offMin = Number.POSITIVE_INFINITY;
for (let i = 0; i < rounds; i++) {
  const a = await round(on);
  const b = await round(off);
  onSum += a;
  offSum += b;
  onMin = Math.min(onMin, a);
  offMin = Math.min(offMin, b);
  added.push(a - b);
}
added.sort((a, b) => a - b);
const heap = process.memoryUsage();
console.log(
  `record step, ${calls} calls x ${rounds} rounds: on ${(onSum / rounds).toFixed(2)} us, off ` +
    `${(offSum / rounds).toFixed(2)} us, audit adds median ${added[Math.floor(rounds / 2)]!.toFixed(2)} us ` +
    `(min ${added[0]!.toFixed(2)}, max ${added[rounds - 1]!.toFixed(2)}); minimum on ${onMin.toFixed(2)} − off ` +
    `${offMin.toFixed(2)} = ${(onMin - offMin).toFixed(2)} us; heap ${(heap.heapUsed / 1e6).toFixed(1)} MB`,
);
await spool.close();
await rm(dir, { recursive: true, force: true });
