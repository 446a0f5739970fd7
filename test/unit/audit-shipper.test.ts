import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { createLogger } from '../../common/src/index.ts';
import { auditRow, newAuditRecord } from '../../data-plane/src/audit/audit-record.ts';
import { AuditShipper } from '../../data-plane/src/audit/audit-shipper.ts';
import { AuditSpool } from '../../data-plane/src/audit/audit-spool.ts';
import type { AuditBatch } from '../../proto/gen/portcullis/v1/config.ts';
import { eventually } from '../support/eventually.ts';

const logger = createLogger({ level: 'silent' });
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

describe('audit shipper', () => {
  it("lets go of a batch's bytes once sent, and frees its records in the spool once acknowledged", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'audit-shipper-test-'));
    const spool = await AuditSpool.open({ dir, maxBytes: 1 << 20, logger });
    try {
      const sent: Array<{ id: number; bytes: WeakRef<Buffer>; text: string }> = [];
      const send = (batch: AuditBatch): boolean => {
        sent.push({ id: batch.batchId, bytes: new WeakRef(batch.recordsNdjson), text: batch.recordsNdjson.toString() });
        return true;
      };
      const shipper = new AuditShipper(spool, send, logger, 1_000, 1);
      shipper.connected(true);
      await Promise.all(Array.from({ length: 5 }, (_, i) => spool.append(`{"n":${i}}`)));
      await eventually('the batch sent', () => sent.length === 1);
      assert.equal(sent[0]!.text, '{"n":0}\n{"n":1}\n{"n":2}\n{"n":3}\n{"n":4}\n');
      assert.equal(spool.backlog, 5, 'not acknowledged yet');
      // A macrotask later (a WeakRef holds its target until the job that made it ends), then a full collection.
      await new Promise((resolve) => setTimeout(resolve, 10));
      gc();
      assert.equal(sent[0]!.bytes.deref(), undefined, 'the bytes are not kept while the batch waits for its ack');
      shipper.acked(sent[0]!.id, 0);
      await eventually('the records acknowledged', () => spool.backlog === 0);
      shipper.disconnected();
    } finally {
      await spool.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('ships rows as they are to a control plane that takes them, as JSON objects to one that does not', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'audit-shipper-test-'));
    const spool = await AuditSpool.open({ dir, maxBytes: 1 << 20, logger });
    try {
      const record = newAuditRecord('node-1', 'tool_call', 'ok');
      record.arguments = '{"text":"say \\"hi\\"\\n"}';
      const row = auditRow(record);
      // An object line, as a node before rows spooled it, is among them (a spool kept across an upgrade).
      const lines = [row, JSON.stringify(record)];
      await Promise.all(lines.map((line) => spool.append(line)));
      for (const takesRows of [true, false]) {
        const sent: string[] = [];
        const shipper = new AuditShipper(spool, (batch) => sent.push(batch.recordsNdjson.toString()) > 0, logger);
        shipper.connected(takesRows);
        await eventually('the batch sent', () => sent.length === 1);
        shipper.disconnected();
        const expected = takesRows ? lines : [JSON.stringify(record), JSON.stringify(record)];
        assert.equal(sent[0], `${expected.join('\n')}\n`, takesRows ? 'rows as they are' : 'objects');
      }
    } finally {
      await spool.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('ships a quiet node’s records after the delay, a busy node’s as whole batches within the longest', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'audit-shipper-test-'));
    const spool = await AuditSpool.open({ dir, maxBytes: 1 << 20, logger });
    const sent: number[] = [];
    const settle = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
    const shipper = (maxDelayMs: number) => {
      const made = new AuditShipper(
        spool,
        (batch) => sent.push(batch.recordsNdjson.toString().split('\n').length - 1) > 0,
        logger,
        20,
        30,
        8,
        maxDelayMs,
      );
      made.connected(true);
      return made;
    };
    const append = (count: number) => Promise.all(Array.from({ length: count }, (_, i) => spool.append(`{"n":${i}}`)));
    // The control plane stored the one batch in flight; the next case starts on an empty spool.
    const ackAndStop = async (running: AuditShipper) => {
      running.acked(1, 0);
      await eventually('acknowledged', () => spool.backlog === 0);
      running.disconnected();
    };
    try {
      // Quiet: one record, shipped after the delay (30 ms), long before the longest delay.
      let running = shipper(60_000);
      await append(1);
      await eventually('the quiet record sent', () => sent.length === 1, 5_000);
      assert.deepEqual(sent, [1]);
      await ackAndStop(running);

      // Busy: a tenth of a batch or more by the delay waits for a whole batch, sent once it is written.
      sent.length = 0;
      running = shipper(60_000);
      await append(5);
      await settle(200);
      assert.deepEqual(sent, [], 'five of twenty: the shipper waits for a whole batch');
      await append(15);
      await eventually('the whole batch sent', () => sent.length === 1, 5_000);
      assert.deepEqual(sent, [20]);
      await ackAndStop(running);

      // Busy, then quiet: what waits goes out at the longest delay.
      sent.length = 0;
      running = shipper(400);
      await append(5);
      await settle(200);
      assert.deepEqual(sent, [], 'still within the longest delay');
      await eventually('sent at the longest delay', () => sent.length === 1, 5_000);
      assert.deepEqual(sent, [5]);
      running.disconnected();
    } finally {
      await spool.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
