import assert from 'node:assert/strict';
import { appendFile, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import { createLogger } from '../../common/src/index.ts';
import { AuditSpool, type SpoolBatch } from '../../data-plane/src/audit/audit-spool.ts';
import { eventually } from '../support/eventually.ts';

const logger = createLogger({ level: 'silent' });

async function withDir(run: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'audit-spool-test-'));
  try {
    await run(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** A batch's records as the strings they were appended as (the bytes hold whole lines, each ending in a newline). */
function linesOf(batch: SpoolBatch | undefined): string[] | undefined {
  if (batch === undefined) return undefined;
  const text = batch.bytes.toString('utf8');
  assert.ok(text.endsWith('\n'), 'a batch ends at the end of a line');
  const lines = text.slice(0, -1).split('\n');
  assert.equal(lines.length, batch.records);
  return lines;
}

async function readAll(spool: AuditSpool): Promise<string[]> {
  const lines: string[] = [];
  for (let batch = await spool.read(3); batch !== undefined; batch = await spool.read(3))
    lines.push(...linesOf(batch)!);
  return lines;
}

describe('audit spool', () => {
  it('resolves an append once the record is in the file, and ships in order in bounded batches', async () => {
    await withDir(async (dir) => {
      const spool = await AuditSpool.open({ dir, maxBytes: 1 << 20, segmentBytes: 64, logger });
      await Promise.all(Array.from({ length: 10 }, (_, i) => spool.append(`{"n":${i}}`)));
      assert.equal(spool.backlog, 10);
      const first = await spool.read(4);
      assert.deepEqual(linesOf(first), ['{"n":0}', '{"n":1}', '{"n":2}', '{"n":3}']);
      const rest = await readAll(spool);
      assert.deepEqual(
        rest,
        Array.from({ length: 6 }, (_, i) => `{"n":${i + 4}}`),
      );
      await spool.close();
    });
  });

  it('leaves the room asked for before a batch’s bytes, and reads the same lines', async () => {
    await withDir(async (dir) => {
      const spool = await AuditSpool.open({ dir, maxBytes: 1 << 20, logger });
      // 20 KB: small enough for Node 24's buffer pool; the read takes a buffer of its own, so its offset is the room.
      const lines = Array.from({ length: 200 }, (_, i) => `{"n":${i},"pad":"${'x'.repeat(90)}"}`);
      await Promise.all(lines.map((line) => spool.append(line)));
      const batch = await spool.read(200, 22);
      assert.deepEqual(linesOf(batch), lines);
      assert.equal(batch!.bytes.byteOffset, 22);
      await spool.close();
    });
  });

  it('reads a backlog a batch at a time, not a whole chunk per batch', async () => {
    await withDir(async (dir) => {
      const spool = await AuditSpool.open({ dir, maxBytes: 1 << 30, logger });
      const line = `{"pad":"${'x'.repeat(190)}"}`;
      await Promise.all(Array.from({ length: 3_000 }, () => spool.append(line)));
      const first = await spool.read(1_000);
      const second = await spool.read(1_000);
      assert.equal(second?.records, 1_000);
      // Sized from the first batch's lines: a 1 MiB read here took all 600 kB left for a batch of 200 kB.
      assert.ok(second.bytes.buffer.byteLength < 1.2 * second.bytes.length, `${second.bytes.buffer.byteLength} B read`);
      assert.equal(first?.records, 1_000);
      assert.deepEqual(
        await readAll(spool),
        Array.from({ length: 1_000 }, () => line),
      );
      await spool.close();
    });
  });

  it('deletes whole segments once acknowledged, and sends unacknowledged records again after a rewind', async () => {
    await withDir(async (dir) => {
      const spool = await AuditSpool.open({ dir, maxBytes: 1 << 20, segmentBytes: 32, logger });
      for (let i = 0; i < 8; i++) await spool.append(`{"n":${i}}`);
      // An append resolves once its record is written, before the switch to the next segment is done: the
      // third segment's file follows the last append shortly.
      const segments = await eventually('three segment files', async () => {
        const count = (await readdir(dir)).filter((n) => n.startsWith('seg-')).length;
        return count >= 3 ? count : 0;
      });
      // A batch ends at a segment's end at the latest.
      const batch = await spool.read(100);
      const shipped = batch!.records;
      await spool.ack(batch!);
      assert.equal(spool.backlog, 8 - shipped);
      const unacked = await spool.read(10);
      assert.ok(unacked !== undefined);
      spool.rewind();
      assert.deepEqual(
        await readAll(spool),
        Array.from({ length: 8 - shipped }, (_, i) => `{"n":${i + shipped}}`),
      );
      assert.ok((await readdir(dir)).filter((n) => n.startsWith('seg-')).length < segments, 'acked segments deleted');
      await spool.close();
    });
  });

  it('finds the records of an earlier process (killed, not closed) and skips a torn last line', async () => {
    await withDir(async (dir) => {
      const first = await AuditSpool.open({ dir, maxBytes: 1 << 20, logger });
      await first.append('{"n":1}');
      await first.append('{"n":2}');
      // The process dies: no close, and a write it had begun left half a line.
      const segment = (await readdir(dir)).find((n) => n.startsWith('seg-'))!;
      await appendFile(join(dir, segment), '{"n":3');
      await rm(join(dir, 'LOCK'));
      const second = await AuditSpool.open({ dir, maxBytes: 1 << 20, logger });
      await second.append('{"n":4}');
      assert.deepEqual(await readAll(second), ['{"n":1}', '{"n":2}', '{"n":4}']);
      await second.close();
      await first.close().catch(() => undefined);
    });
  });

  it('refuses a second live process on the same directory', async () => {
    await withDir(async (dir) => {
      const spool = await AuditSpool.open({ dir, maxBytes: 1 << 20, logger });
      // Another live process (this test's parent) holds the directory.
      await writeFile(join(dir, 'LOCK'), String(process.ppid));
      await assert.rejects(AuditSpool.open({ dir, maxBytes: 1 << 20, logger }), /in use by process/);
      await spool.close();
    });
  });

  it('is full past its size: appends are dropped and counted until acknowledgements make room', async () => {
    await withDir(async (dir) => {
      const spool = await AuditSpool.open({ dir, maxBytes: 100, segmentBytes: 40, logger });
      let accepted = 0;
      for (let i = 0; i < 20; i++) {
        const written = spool.append(`{"record":${String(i).padStart(4, '0')}}`);
        if (written !== false) {
          accepted++;
          await written;
        }
      }
      assert.ok(spool.full);
      assert.equal(spool.dropped, 20 - accepted);
      assert.ok(accepted >= 4 && accepted < 20);
      let batch = await spool.read(100);
      while (batch !== undefined) {
        await spool.ack(batch);
        batch = await spool.read(100);
      }
      assert.equal(spool.full, false);
      assert.notEqual(spool.append('{"record":"again"}'), false);
      await spool.close();
    });
  });

  it('writes through the thread pool for a while after two slow writes on the loop, losing nothing', async () => {
    await withDir(async (dir) => {
      const warnings: string[] = [];
      const watching = pino({ level: 'warn' }, { write: (line: string) => warnings.push(line) });
      // Every write counts as slow here.
      const spool = await AuditSpool.open({ dir, maxBytes: 1 << 20, slowWriteMs: -1, logger: watching });
      const tookLong = () => warnings.filter((w) => w.includes('writes took long')).length;
      await spool.append('{"n":1}');
      assert.equal(tookLong(), 0, 'one slow write alone may be the machine, not the disk');
      await spool.append('{"n":2}');
      assert.equal(tookLong(), 1);
      await Promise.all([spool.append('{"n":3}'), spool.append('{"n":4}')]);
      await spool.append('{"n":5}');
      assert.equal(tookLong(), 1, 'the thread pool takes them');
      assert.deepEqual(await readAll(spool), ['{"n":1}', '{"n":2}', '{"n":3}', '{"n":4}', '{"n":5}']);
      await spool.close();
    });
  });
});
