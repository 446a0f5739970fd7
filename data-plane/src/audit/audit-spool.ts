import { close as closeFd, fdatasync, open as openFd, write as writeFd, writeSync } from 'node:fs';
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
  /** Written records are fsynced at most this long after their write (default 1 s; see the class). */
  readonly syncIntervalMs?: number;
  /**
   * Two writes on the event loop slower than this within 10 s send the writes through the thread pool
   * for the next 10 s (default 50 ms; see `writeOut`). A disk that stalls for good blocks the loop
   * twice per 20 s or so.
   */
  readonly slowWriteMs?: number;
  readonly logger: Logger;
}

/** Where a batch read from the spool ends, and how many records it holds: what `ack` needs of it. */
export interface SpoolPosition {
  readonly records: number;
  /** The segment and the byte offset after the batch's last line. */
  readonly endSegment: number;
  readonly endOffset: number;
}

/** Records read from the spool to be shipped; `ack` its position once the control plane stored them. */
export interface SpoolBatch extends SpoolPosition {
  /**
   * The records as the spool holds them: whole lines of JSON, each ending in a newline (shipped as they
   * are, in `AuditBatch.records_ndjson`: no string per record is made on the node). `records` lines.
   */
  readonly bytes: Buffer;
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

/** Records appended while no write runs go out in one `write()`; the buffer they fill starts this big. */
const FILL_BYTES = 64 * 1024;
/** A fill buffer grown past this (one huge batch) is not kept for the next batch. */
const KEEP_BYTES = 1024 * 1024;
const DEFAULT_SLOW_WRITE_MS = 50;
const SLOW_WRITES_WINDOW_MS = 10_000;
const ASYNC_AFTER_SLOW_WRITES_MS = 10_000;
/** Written records are fsynced at most this long after their write (the machine-crash window), by default. */
export const DEFAULT_SYNC_INTERVAL_MS = 1_000;

/** The records of one `write()`: every append in it shares one promise, resolved once the bytes are in the file. */
interface WriteBatch {
  readonly written: Promise<void>;
  readonly resolve: () => void;
}

function newBatch(): WriteBatch {
  let resolve!: () => void;
  const written = new Promise<void>((r) => {
    resolve = r;
  });
  return { written, resolve };
}

/**
 * A bounded, append-only, on-disk spool of audit records: newline-delimited JSON in numbered segment
 * files.
 *
 * Writes are group-committed: `append` encodes the record into a preallocated buffer (no per-record
 * promise, closure or string join) and returns the promise its whole batch shares; the buffer goes
 * to the file in one `write()` in the event loop's check phase (so every record of one loop turn goes
 * together), made on the loop (see `writeOut`; through the thread pool after a slow write, and the
 * next batch fills a second buffer meanwhile). The promise resolves once the
 * batch's `write()` returned: the record step awaits it before the answer is sent, so a record whose
 * answer reached the agent is in the kernel and survives SIGKILL of the process.
 *
 * fsync is off the answer path and batched: `fdatasync` runs at most `syncIntervalMs` (default 1 s)
 * after a write, when a segment is closed and at `close()`. The window is a crash of the machine
 * itself (power loss, kernel panic): records written less than `syncIntervalMs` before it (plus the
 * fsync's own time) can be lost; a process kill loses nothing. A failed write loses its batch: the
 * records are counted as dropped and the error logged; their promise resolves all the same (the
 * answer is not held back by a broken disk; `portcullis_audit_records_dropped_total` says so).
 *
 * Shipping reads from the files (never keeps the backlog in memory), from the last acknowledged
 * position; a segment is deleted once every record in it is acknowledged. After a restart every
 * segment found is shipped again from its start: the control plane's inserts are idempotent by id.
 */
export class AuditSpool {
  private readonly segments: Segment[] = [];
  private fd = -1;
  /** The batch being filled: its bytes, records and the promise its appends share. */
  private fill: Buffer = Buffer.allocUnsafe(FILL_BYTES);
  private fillBytes = 0;
  private fillRecords = 0;
  private batch: WriteBatch | undefined;
  /** The buffer of the last completed write, reused for the next batch. */
  private spare: Buffer | undefined;
  /** A write or a segment switch runs (the fill buffer waits for it). */
  private writing = false;
  /** Until then (performance.now()), writes go through the thread pool: a write on the loop was slow. */
  private asyncUntil = 0;
  private lastSlowWrite = Number.NEGATIVE_INFINITY;
  private slowSpells = 0;
  private slowLoggedAt = Number.NEGATIVE_INFINITY;
  private flushScheduled = false;
  private idleWaiters: Array<() => void> = [];
  private pendingBytes = 0;
  private unsynced = false;
  private syncTimer: NodeJS.Timeout | undefined;
  private bytesOnDisk = 0;
  private readSegment = 0;
  private readOffset = 0;
  private readHandle: { seq: number; handle: FileHandle } | undefined;
  /** Mean bytes per line of the last batch read (0 before the first): sizes the next read. */
  private lineBytes = 0;
  private droppedCount = 0;
  private unacked = 0;
  private closed = false;
  private readonly segmentBytes: number;
  private readonly syncIntervalMs: number;
  private readonly slowWriteMs: number;
  /** Called after each completed write (the shipper wakes up). */
  onWritten: (() => void) | undefined;

  private constructor(private readonly options: AuditSpoolOptions) {
    // Segments of at most an eighth of the spool, so that acknowledged records free room soon.
    this.segmentBytes =
      options.segmentBytes ?? Math.max(4096, Math.min(4 * 1024 * 1024, Math.floor(options.maxBytes / 8)));
    this.syncIntervalMs = options.syncIntervalMs ?? DEFAULT_SYNC_INTERVAL_MS;
    this.slowWriteMs = options.slowWriteMs ?? DEFAULT_SLOW_WRITE_MS;
  }

  /** Opens (creating) the spool directory, takes its lock and finds the records left by an earlier run. */
  static async open(options: AuditSpoolOptions): Promise<AuditSpool> {
    const spool = new AuditSpool(options);
    await mkdir(options.dir, { recursive: true, mode: 0o700 });
    await spool.lock();
    await spool.recover();
    await new Promise<void>((resolve, reject) =>
      spool.startSegment((error) => (error === undefined ? resolve() : reject(error))),
    );
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

  /** Records dropped because the spool was full (or its disk failed a write), since this process started. */
  get dropped(): number {
    return this.droppedCount;
  }

  get full(): boolean {
    return this.sizeBytes >= this.options.maxBytes;
  }

  /**
   * Appends one record (one line of JSON, no newline in it) and resolves once it is in the file (with
   * every record appended in the same loop turn: the promise is shared). Returns false without writing
   * when the spool is full (the record is counted as dropped).
   */
  append(line: string): Promise<void> | false {
    if (this.closed || this.full) {
      this.droppedCount++;
      return false;
    }
    // UTF-8 takes at most 3 bytes per UTF-16 unit (a surrogate pair: 4 bytes for 2 units), + the newline.
    const room = this.fillBytes + line.length * 3 + 1;
    if (room > this.fill.length) this.grow(room);
    const bytes = this.fill.write(line, this.fillBytes) + 1;
    this.fill[this.fillBytes + bytes - 1] = 10;
    this.fillBytes += bytes;
    this.fillRecords++;
    this.pendingBytes += bytes;
    this.unacked++;
    let batch = this.batch;
    if (batch === undefined) {
      batch = newBatch();
      this.batch = batch;
      if (!this.writing && !this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(this.flushNow);
      }
    }
    return batch.written;
  }

  /**
   * Reads the next records to ship, at most `maxRecords`; undefined when everything written was read. The
   * `headroom` bytes before the batch's bytes in their buffer are left free for the caller (a message prefix).
   */
  async read(maxRecords: number, headroom = 0): Promise<SpoolBatch | undefined> {
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
      let text: Buffer;
      let records = 0;
      let end = 0;
      // Sized for `maxRecords` lines of the last batch's length: a whole 1 MiB read for a batch of half that
      // read the rest again for the next batch, and allocated twice the memory a batch needs.
      const expected = this.lineBytes === 0 ? READ_CHUNK : Math.ceil(this.lineBytes * maxRecords * 1.1) + 4096;
      for (let chunk = Math.min(READ_CHUNK, expected); ; chunk *= 2) {
        const length = Math.min(chunk, segment.size - this.readOffset);
        // Not from Node's shared pool (Node 24 pools up to 32 KiB): a batch in flight holds only its own
        // memory, and its headroom starts its buffer.
        const buffer = Buffer.allocUnsafeSlow(headroom + length);
        const { bytesRead } = await handle.read(buffer, headroom, length, this.readOffset);
        text = buffer.subarray(headroom, headroom + bytesRead);
        while (records < maxRecords) {
          const newline = text.indexOf(10, end);
          if (newline === -1) break;
          records++;
          end = newline + 1;
        }
        // One record longer than the chunk: read it whole (records are bounded by content truncation).
        if (end > 0 || bytesRead < length || this.readOffset + length >= segment.size) break;
      }
      if (end === 0) {
        // No whole line in what is left: a torn tail (the process died mid-write); skip it.
        this.options.logger.warn(
          { segment: segment.path, bytes: segment.size - this.readOffset },
          'audit spool: skipping a torn record',
        );
        this.readOffset = segment.size;
        continue;
      }
      this.readOffset += end;
      this.lineBytes = end / records;
      return { bytes: text.subarray(0, end), records, endSegment: segment.seq, endOffset: this.readOffset };
    }
  }

  /** Goes back to the first record not acknowledged (after the stream was lost: those in flight are sent again). */
  rewind(): void {
    const first = this.segments[0];
    this.readSegment = first?.seq ?? 0;
    this.readOffset = first === undefined ? 0 : first.ackedOffset;
  }

  /** The control plane stored the batch that ends at `batch`: whole segments before it are deleted. */
  async ack(batch: SpoolPosition): Promise<void> {
    this.unacked = Math.max(0, this.unacked - batch.records);
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

  /** Writes what is appended, fsyncs it and closes the files; appends after this are dropped. */
  async close(): Promise<void> {
    this.closed = true;
    await this.idle();
    if (this.syncTimer !== undefined) clearTimeout(this.syncTimer);
    this.syncTimer = undefined;
    const fd = this.fd;
    this.fd = -1;
    if (fd !== -1) {
      await new Promise<void>((resolve) => fdatasync(fd, () => resolve()));
      await new Promise<void>((resolve) => closeFd(fd, () => resolve()));
    }
    await this.readHandle?.handle.close();
    this.readHandle = undefined;
    await rm(join(this.options.dir, 'LOCK'), { force: true });
  }

  /** Resolves once nothing is waiting to be written and no write runs. */
  private idle(): Promise<void> {
    if (!this.writing && this.fillBytes === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private grow(needed: number): void {
    let size = this.fill.length * 2;
    while (size < needed) size *= 2;
    const bigger = Buffer.allocUnsafe(size);
    this.fill.copy(bigger, 0, 0, this.fillBytes);
    this.fill = bigger;
  }

  private readonly flushNow = (): void => {
    this.flushScheduled = false;
    if (this.writing) return;
    if (this.fillBytes === 0) {
      this.settleIdle();
      return;
    }
    const buffer = this.fill;
    const bytes = this.fillBytes;
    const records = this.fillRecords;
    const batch = this.batch!;
    this.fill = this.spare ?? Buffer.allocUnsafe(FILL_BYTES);
    this.spare = undefined;
    this.fillBytes = 0;
    this.fillRecords = 0;
    this.batch = undefined;
    this.writing = true;
    this.writeOut(buffer, 0, bytes, records, batch);
  };

  /**
   * Writes a batch: on the event loop (`writeSync`: a page-cache write costs a few µs, where a trip
   * through libuv's thread pool cost the node more CPU than the record itself), unless writes on the
   * loop were slow lately (a disk under writeback pressure); then through the thread pool for a while,
   * so that a slow disk delays the answers waiting for their records but seldom blocks the whole loop.
   */
  private writeOut(buffer: Buffer, offset: number, bytes: number, records: number, batch: WriteBatch): void {
    if (performance.now() < this.asyncUntil) {
      this.writeAsync(buffer, offset, bytes, records, batch);
      return;
    }
    const started = performance.now();
    let done = offset;
    let error: NodeJS.ErrnoException | null = null;
    try {
      while (done < bytes) done += writeSync(this.fd, buffer, done, bytes - done);
    } catch (thrown) {
      error = thrown as NodeJS.ErrnoException;
    }
    const took = performance.now() - started;
    // A second slow write within SLOW_WRITES_WINDOW_MS: one alone is as likely a time slice lost to another
    // process on a busy machine (seen here about once a run at load 8) as a disk that stalls.
    if (took > this.slowWriteMs) {
      const now = performance.now();
      if (now - this.lastSlowWrite > SLOW_WRITES_WINDOW_MS) this.lastSlowWrite = now;
      else {
        this.lastSlowWrite = Number.NEGATIVE_INFINITY;
        this.asyncUntil = now + ASYNC_AFTER_SLOW_WRITES_MS;
        this.slowSpells++;
        // Logged once a minute at most, with how many spells since.
        if (now - this.slowLoggedAt > 60_000) {
          this.slowLoggedAt = now;
          this.options.logger.warn(
            { ms: Math.round(took), bytes: bytes - offset, spells: this.slowSpells, dir: this.options.dir },
            `audit spool: writes took long; writing through the thread pool for ${ASYNC_AFTER_SLOW_WRITES_MS} ms`,
          );
          this.slowSpells = 0;
        }
      }
    }
    this.written(buffer, done, bytes, records, batch, error);
  }

  private writeAsync(buffer: Buffer, offset: number, bytes: number, records: number, batch: WriteBatch): void {
    writeFd(this.fd, buffer, offset, bytes - offset, null, (error, written) => {
      const done = offset + written;
      if (error === null && done < bytes) {
        this.writeAsync(buffer, done, bytes, records, batch);
        return;
      }
      this.written(buffer, done, bytes, records, batch, error);
    });
  }

  /** A batch's write ended (`done` bytes of `bytes` in the file): account for it and resolve its appends. */
  private written(
    buffer: Buffer,
    done: number,
    bytes: number,
    records: number,
    batch: WriteBatch,
    error: NodeJS.ErrnoException | null,
  ): void {
    const current = this.segments[this.segments.length - 1]!;
    // Even a failed write may have put part of the batch in the file: the segment's size follows the file.
    current.size += done;
    this.bytesOnDisk += done;
    this.pendingBytes -= bytes;
    if (error === null) {
      current.records += records;
      this.unsynced = true;
      this.syncTimer ??= setTimeout(this.syncNow, this.syncIntervalMs).unref();
    } else {
      this.unacked -= records;
      this.droppedCount += records;
      this.options.logger.error(
        { err: error, records, dir: this.options.dir },
        'audit spool: a write failed; these records are lost (counted in portcullis_audit_records_dropped_total)',
      );
    }
    if (buffer.length <= KEEP_BYTES) this.spare = buffer;
    batch.resolve();
    this.onWritten?.();
    if (current.size >= this.segmentBytes) this.startSegment(() => this.afterWrite());
    else this.afterWrite();
  }

  /** A write (and any segment switch) is done: the records that arrived meanwhile go out now, in one write. */
  private afterWrite(): void {
    this.writing = false;
    if (this.fillBytes > 0) this.flushNow();
    else this.settleIdle();
  }

  private settleIdle(): void {
    if (this.writing || this.fillBytes > 0 || this.idleWaiters.length === 0) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const resolve of waiters) resolve();
  }

  /** The batched fsync: off the answer path, at most `syncIntervalMs` after a write. */
  private readonly syncNow = (): void => {
    this.syncTimer = undefined;
    if (!this.unsynced || this.fd === -1) return;
    this.unsynced = false;
    fdatasync(this.fd, (error) => {
      if (error !== null) this.options.logger.warn({ err: error }, 'audit spool: fdatasync failed');
    });
  };

  /** Opens the next segment; the one before is fsynced and closed in the background. */
  private startSegment(done: (error?: Error) => void): void {
    const last = this.segments[this.segments.length - 1];
    const seq = (last?.seq ?? 0) + 1;
    const path = join(this.options.dir, segmentName(seq));
    openFd(path, 'a', 0o600, (error, fd) => {
      if (error !== null) {
        // Writes go on into the current segment; the switch is tried again after the next write.
        this.options.logger.error({ err: error, path }, 'audit spool: could not open a new segment');
        done(error);
        return;
      }
      const previous = this.fd;
      this.fd = fd;
      if (last !== undefined) last.closed = true;
      this.segments.push({ seq, path, size: 0, closed: false, records: 0, ackedOffset: 0 });
      if (previous !== -1) fdatasync(previous, () => closeFd(previous, () => undefined));
      done();
    });
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
