/**
 * Issue 14, in one process: the CPU the record step's audit recording adds to one `tools/call` (an echo through a
 * key with an allow-list, content logging on), without the noise of a whole node, its upstream, the load generator
 * and a control plane ingesting on the same cores. The same step with and without a recorder (metrics on in both,
 * as on the bench's nodes), in rounds that alternate; the spool writes to a temporary directory as on a node, 32
 * calls a loop turn as in the c=32 rows (one spool write per turn). Shipping the records is not in it: the audit
 * ingest row gives the node's CPU per record shipped.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../../../common/src/index.ts';
import { AuditContent } from '../../../data-plane/src/audit/audit-content.ts';
import { AuditRecorder } from '../../../data-plane/src/audit/audit-recorder.ts';
import { AuditSpool } from '../../../data-plane/src/audit/audit-spool.ts';
import { DataPlaneMetrics } from '../../../data-plane/src/observability/metrics.ts';
import type { Operation, Outcome, Step } from '../../../data-plane/src/pipeline/operation.ts';
import { recordStep } from '../../../data-plane/src/pipeline/steps/record.ts';
import { signalCancellation } from '../../../data-plane/src/upstream/cancellation.ts';
import { AUDIT_ADDED_US_TARGET } from '../report/comparisons.ts';
import type { TargetCheck } from '../results.ts';
import type { AuditIngestRow } from './audit-ingest.ts';

const CONCURRENCY = 32;

/**
 * Issue 14's target read on what recording itself costs the node: the record step (in one process) plus shipping
 * (the node's CPU per record in the audit ingest row, when measured). The end-to-end rows (recording on − off, in
 * "gateways compared") also carry the control plane's ingest on the same two cores and the noise of five processes.
 */
export function auditRecordTarget(
  row: AuditRecordStepRow | undefined,
  ingest: AuditIngestRow | undefined,
): TargetCheck {
  const shipping = ingest?.nodeCpuPerRecordUs;
  const check: TargetCheck = {
    target:
      `audit recording's own work in isolation adds < ${AUDIT_ADDED_US_TARGET} µs of node CPU per call: the ` +
      'record step (in one process, on − off) + shipping (node CPU per record, audit ingest row); a lower bound, ' +
      'a node in service pays more (the in-service line, audit-cost)',
    unit: 'µs',
  };
  if (row === undefined) return { ...check, why: 'not measured in this run' };
  if (shipping === undefined) return { ...check, why: 'the audit ingest row (shipping) was not measured in this run' };
  check.measured = row.addedUs + shipping;
  check.met = check.measured < AUDIT_ADDED_US_TARGET;
  check.reference = `record step ${row.addedUs.toFixed(2)} µs + shipping ${shipping.toFixed(2)} µs`;
  return check;
}

export interface AuditRecordStepRow {
  calls: number;
  rounds: number;
  /** CPU µs per call of the step with the recorder and without, the mean over rounds. */
  onUs: number;
  offUs: number;
  /** What recording adds (on − off of each pair of rounds): the median, and the least and most. */
  addedUs: number;
  addedMinUs: number;
  addedMaxUs: number;
}

export async function measureAuditRecordStep(calls: number, rounds: number): Promise<AuditRecordStepRow> {
  const logger = createLogger({ level: 'silent' });
  const dir = await mkdtemp(join(tmpdir(), 'audit-record-step-'));
  const spool = await AuditSpool.open({ dir, maxBytes: 1 << 30, logger });
  try {
    const audit = new AuditRecorder({
      node: 'bench-node',
      spool,
      content: new AuditContent(),
      whenFull: 'serve',
      logger,
    });
    const metrics = new DataPlaneMetrics();
    const on = recordStep(metrics, audit);
    const off = recordStep(metrics);
    // Warm-up: both paths compiled before anything counts.
    for (let i = 0; i < 3; i++) {
      await round(on, calls);
      await round(off, calls);
    }
    const added: number[] = [];
    let [onSum, offSum] = [0, 0];
    for (let i = 0; i < rounds; i++) {
      const [a, b] =
        i % 2 === 0
          ? [await round(on, calls), await round(off, calls)]
          : swap(await round(off, calls), await round(on, calls));
      onSum += a;
      offSum += b;
      added.push(a - b);
    }
    added.sort((a, b) => a - b);
    return {
      calls,
      rounds,
      onUs: onSum / rounds,
      offUs: offSum / rounds,
      addedUs: added[Math.floor(rounds / 2)]!,
      addedMinUs: added[0]!,
      addedMaxUs: added[rounds - 1]!,
    };
  } finally {
    await spool.close();
    await rm(dir, { recursive: true, force: true });
  }
}

const swap = (off: number, on: number): [number, number] => [on, off];

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

async function round(step: Step, calls: number): Promise<number> {
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
