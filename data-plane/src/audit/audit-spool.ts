import { mkdir, open, readdir, readFile, rm, stat, unlink, writeFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../../../common/src/index.ts';

export interface AuditSpoolOptions {
  /** The node's own directory (one node per directory: a LOCK file holds it). */
  readonly dir: string;
  /** Past this many bytes on disk the spool is full: new records are dropped (and counted). */
  readonly maxBytes: number;
  /** A segment file is closed and a new one begun past this size (default 4 MiB). */
  readonly segmentBytes?: number;
  readonly logger: Logger;
}

/** Records read from the spool to be shipped; `ack` it once the control plane stored them. */
export interface SpoolBatch {
  readonly lines: readonly string[];
  /** Where the batch ends: the segment and the byte offset after its last line. */
  readonly endSegment: number;
  readonly endOffset: number;
}

interface Segment {
  readonly seq: number;
  readonly path: string;
  /** Bytes written and complete (whole lines). */
  size: number;
  /** No more writes come (an older segment, or one found at start). */
  closed: boolean;
  /** Records in it not acknowledged yet (approximate for segments found at start: counted once). */
  records: number;
  /** Offset up to which the control plane acknowledged the records. */
  ackedOffset: number;
}

const SEGMENT = /^seg-(\d{16})\.ndjson$/;
const READ_CHUNK = 1024 * 1024;

function segmentName(seq: number): string {
  return `seg-${String(seq).padStart(16, '0')}.ndjson`;
}

/**
 * A bounded, append-only, on-disk spool of audit records: newline-delimited JSON in numbered segment
 * files. Appends are group-committed (every record waiting while a write runs goes in the next single
 * write), and `append` resolves once the record is in the file: the record step awaits it before the
 * answer is sent, so a record whose answer reached the agent survives a crash of the process (SIGKILL):
 * the kernel holds the written bytes. There is no fsync per write: a crash of the machine itself
 * (power loss, kernel panic) can lose what the kernel had not written back yet (seconds).
 *
 * Shipping reads from the files (never keeps the backlog in memory), from the last acknowledged
 * position; a segment is deleted once every record in it is acknowledged. After a restart every
 * segment found is shipped again from its start: the control plane's inserts are idempotent by id.
 */
export class AuditSpool {
  private readonly segments: Segment[] = [];
  private writer: FileHandle | undefined;
  private pending: string[] = [];
  private pendingBytes = 0;
  private flushing: Promise<void> | undefined;
  private waiters: Array<{ resolve: () => void; reject: (error: unknown) => void }> = [];
  private bytesOnDisk = 0;
  private readSegment = 0;
  private readOffset = 0;
  private readHandle: { seq: number; handle: FileHandle } | undefined;
  private droppedCount = 0;
  private unacked = 0;
  private closed = false;
  private readonly segmentBytes: number;
  /** Called after each completed write (the shipper wakes up). */
  onWritten: (() => void) | undefined;

  private constructor(private readonly options: AuditSpoolOptions) {
    // Segments of at most an eighth of the spool, so that acknowledged records free room soon.
    this.segmentBytes =
      options.segmentBytes ?? Math.max(4096, Math.min(4 * 1024 * 1024, Math.floor(options.maxBytes / 8)));
  }

  /** Opens (creating) the spool directory, takes its lock and finds the records left by an earlier run. */
  static async open(options: AuditSpoolOptions): Promise<AuditSpool> {
    const spool = new AuditSpool(options);
    await mkdir(options.dir, { recursive: true, mode: 0o700 });
    await spool.lock();
    await spool.recover();
    await spool.startSegment();
    return spool;
  }

  /**
   * Bytes of records not acknowledged yet (on disk or being written). What is on disk is at most
   * one segment more: an acknowledged segment is deleted once the writer has moved past it.
   */
  get sizeBytes(): number {
    return this.bytesOnDisk - (this.segments[0]?.ackedOffset ?? 0) + this.pendingBytes;
  }

  /** Records not acknowledged by the control plane yet. */
  get backlog(): number {
    return this.unacked;
  }

  /** Records dropped because the spool was full, since this process started. */
  get dropped(): number {
    return this.droppedCount;
  }

  get full(): boolean {
    return this.sizeBytes >= this.options.maxBytes;
  }

  /**
   * Appends one record (one line of JSON, no newline in it) and resolves once it is in the file.
   * Returns false without writing when the spool is full (the record is counted as dropped).
   */
  append(line: string): Promise<void> | false {
    if (this.closed || this.full) {
      this.droppedCount++;
      return false;
    }
    this.pending.push(line);
    this.pendingBytes += line.length + 1;
    this.unacked++;
    const written = new Promise<void>((resolve, reject) => this.waiters.push({ resolve, reject }));
    this.flushing ??= this.flush();
    return written;
  }

  /** Reads the next records to ship, at most `maxRecords`; undefined when everything written was read. */
  async read(maxRecords: number): Promise<SpoolBatch | undefined> {
    for (;;) {
      const segment = this.segments.find((s) => s.seq >= this.readSegment);
      if (segment === undefined) return undefined;
      if (segment.seq !== this.readSegment) {
        this.readSegment = segment.seq;
        this.readOffset = 0;
      }
      if (this.readOffset >= segment.size) {
        if (!segment.closed) return undefined;
        const next = this.segments.find((s) => s.seq > segment.seq);
        if (next === undefined) return undefined;
        this.readSegment = next.seq;
        this.readOffset = 0;
        continue;
      }
      const handle = await this.handleFor(segment);
      const length = Math.min(READ_CHUNK, segment.size - this.readOffset);
      const buffer = Buffer.allocUnsafe(length);
      const { bytesRead } = await handle.read(buffer, 0, length, this.readOffset);
      const text = buffer.subarray(0, bytesRead);
      const lines: string[] = [];
      let start = 0;
      while (lines.length < maxRecords) {
        const newline = text.indexOf(10, start);
        if (newline === -1) break;
        if (newline > start) lines.push(text.toString('utf8', start, newline));
        start = newline + 1;
      }
      if (start === 0) {
        // No whole line in what is left: a torn tail (the process died mid-write); skip it.
        this.options.logger.warn({ segment: segment.path, bytes: length }, 'audit spool: skipping a torn record');
        this.readOffset = segment.size;
        continue;
      }
      this.readOffset += start;
      return { lines, endSegment: segment.seq, endOffset: this.readOffset };
    }
  }

  /** Goes back to the first record not acknowledged (after the stream was lost: those in flight are sent again). */
  rewind(): void {
    const first = this.segments[0];
    this.readSegment = first?.seq ?? 0;
    this.readOffset = first === undefined ? 0 : first.ackedOffset;
  }

  /** The control plane stored `batch`: whole segments before it are deleted. */
  async ack(batch: SpoolBatch): Promise<void> {
    this.unacked = Math.max(0, this.unacked - batch.lines.length);
    while (this.segments.length > 0) {
      const first = this.segments[0]!;
      if (first.seq > batch.endSegment) break;
      if (first.seq === batch.endSegment) {
        first.ackedOffset = batch.endOffset;
        if (!(first.closed && batch.endOffset >= first.size)) break;
      }
      this.segments.shift();
      this.bytesOnDisk -= first.size;
      if (this.readHandle?.seq === first.seq) {
        await this.readHandle.handle.close();
        this.readHandle = undefined;
      }
      await unlink(first.path).catch(() => undefined);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.flushing;
    await this.writer?.close();
    this.writer = undefined;
    await this.readHandle?.handle.close();
    this.readHandle = undefined;
    await rm(join(this.options.dir, 'LOCK'), { force: true });
  }

  private async flush(): Promise<void> {
    try {
      while (this.pending.length > 0) {
        const lines = this.pending;
        const waiters = this.waiters;
        this.pending = [];
        this.waiters = [];
        const text = `${lines.join('\n')}\n`;
        const bytes = Buffer.byteLength(text);
        try {
          await this.writer!.write(text);
        } catch (error) {
          this.pendingBytes -= text.length;
          this.unacked -= lines.length;
          this.droppedCount += lines.length;
          for (const w of waiters) w.reject(error);
          continue;
        }
        this.pendingBytes -= text.length;
        const current = this.segments[this.segments.length - 1]!;
        current.size += bytes;
        current.records += lines.length;
        this.bytesOnDisk += bytes;
        for (const w of waiters) w.resolve();
        if (current.size >= this.segmentBytes) await this.startSegment();
        this.onWritten?.();
      }
    } finally {
      this.flushing = undefined;
    }
  }

  private async startSegment(): Promise<void> {
    const last = this.segments[this.segments.length - 1];
    const seq = (last?.seq ?? 0) + 1;
    const path = join(this.options.dir, segmentName(seq));
    const previous = this.writer;
    this.writer = await open(path, 'a', 0o600);
    if (last !== undefined) last.closed = true;
    this.segments.push({ seq, path, size: 0, closed: false, records: 0, ackedOffset: 0 });
    await previous?.close();
  }

  private async recover(): Promise<void> {
    const names = (await readdir(this.options.dir)).filter((n) => SEGMENT.test(n)).sort();
    for (const name of names) {
      const path = join(this.options.dir, name);
      const size = (await stat(path)).size;
      if (size === 0) {
        await unlink(path).catch(() => undefined);
        continue;
      }
      const records = countLines(await readFile(path));
      this.segments.push({ seq: Number(SEGMENT.exec(name)![1]), path, size, closed: true, records, ackedOffset: 0 });
      this.bytesOnDisk += size;
      this.unacked += records;
    }
    if (this.segments.length > 0) {
      this.readSegment = this.segments[0]!.seq;
      this.options.logger.info(
        { records: this.unacked, bytes: this.bytesOnDisk, dir: this.options.dir },
        'audit spool: records of an earlier run will be shipped',
      );
    }
  }

  /** One node per directory: a LOCK file with the holder's pid; a dead holder's lock is taken over. */
  private async lock(): Promise<void> {
    const path = join(this.options.dir, 'LOCK');
    try {
      const pid = Number((await readFile(path, 'utf8')).trim());
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && alive(pid))
        throw new Error(
          `audit spool ${this.options.dir} is in use by process ${pid}; give each node its own --audit-spool-dir`,
        );
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
    await writeFile(path, String(process.pid), { mode: 0o600 });
  }

  private async handleFor(segment: Segment): Promise<FileHandle> {
    if (this.readHandle?.seq === segment.seq) return this.readHandle.handle;
    await this.readHandle?.handle.close();
    const handle = await open(segment.path, 'r');
    this.readHandle = { seq: segment.seq, handle };
    return handle;
  }
}

function countLines(bytes: Buffer): number {
  let count = 0;
  for (let i = bytes.indexOf(10); i !== -1; i = bytes.indexOf(10, i + 1)) count++;
  return count;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
