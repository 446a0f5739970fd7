import { errorMessage, type Logger } from '../../../common/src/index.ts';
import type { AuditBatch } from '../../../proto/gen/portcullis/v1/config.ts';
import { AUDIT_PREFIX_BYTES, withPrefixRoom } from '../config/connect-request-encoding.ts';
import { objectLine } from './audit-record.ts';
import type { AuditSpool, SpoolPosition } from './audit-spool.ts';

/** Records per AuditBatch (the control plane takes up to 5,000). */
export const AUDIT_BATCH_RECORDS = 1_000;
/**
 * How long written records wait to be shipped, unless a whole batch is waiting: a batch costs the node a
 * spool read, a gRPC message and an ack whatever its size, so shipping each write on its own cost more
 * node CPU per call than recording it (the records are on disk meanwhile; this only delays the rows).
 */
export const AUDIT_SHIP_DELAY_MS = 200;

/**
 * Past AUDIT_SHIP_DELAY_MS, a node writing more than a tenth of a batch in that time (500 records/s and up) waits
 * for a whole batch, up to this long after the first record waiting: at 3,000 calls/s, batches of 1,000 three
 * times a second rather than of 600 five times, 1.0–1.2 µs of node CPU less per call (node-ab, side by side).
 * A quieter node ships after AUDIT_SHIP_DELAY_MS as before.
 */
export const AUDIT_SHIP_MAX_DELAY_MS = 1_000;

/**
 * Batches sent and not acknowledged yet, at most: the control plane validates a batch as it arrives
 * and stores batches in order, so while one waits for the database the next are already parsed, and
 * those waiting together go in one transaction (8 MiB or so at most in flight with 1 KiB records).
 */
export const AUDIT_BATCHES_IN_FLIGHT = 8;

/**
 * Ships the spool to the control plane over the config stream: up to `maxInFlight` batches in
 * flight, read from the spool files (never from memory) in order; the control plane acknowledges
 * them in order, and each acknowledgement frees its records in the spool. After a reconnect it
 * starts again from the first record not acknowledged (at least once; the control plane stores each
 * id once). Written records are shipped `delayMs` after the first of them was written (or at once
 * while a backlog fills whole batches), so a batch carries many records.
 */
export class AuditShipper {
  /**
   * Oldest first: acknowledgements come in this order. Only where each batch ends is kept, not its bytes (up to a
   * MiB read each; a batch sent again after a reconnect is read again from the spool).
   */
  private inFlight: Array<{ id: number; batch: SpoolPosition }> = [];
  private nextId = 1;
  private live = false;
  private reading = false;
  private again = false;
  /** Bumped at each (re)connect: a read begun before it is dropped. */
  private generation = 0;
  private timer: NodeJS.Timeout | undefined;
  /** performance.now() when the timer was set for the first record waiting (the max-delay deadline counts from it). */
  private waitingSince = 0;
  /** Spool acknowledgements, one after the other (each may delete a segment). */
  private acking: Promise<void> = Promise.resolve();

  constructor(
    private readonly spool: AuditSpool,
    private readonly send: (batch: AuditBatch) => boolean,
    private readonly logger: Logger,
    private readonly maxRecords = AUDIT_BATCH_RECORDS,
    private readonly delayMs = AUDIT_SHIP_DELAY_MS,
    private readonly maxInFlight = AUDIT_BATCHES_IN_FLIGHT,
    private readonly maxDelayMs = AUDIT_SHIP_MAX_DELAY_MS,
  ) {
    spool.onWritten = this.soon;
  }

  /** Rows go out as they are; false: the control plane takes objects only, and rows are turned into those. */
  private takesRows = true;

  /**
   * A stream to the control plane opened and its first snapshot said whether that control plane takes
   * audit rows (older ones do not: their records go out as JSON objects).
   */
  connected(takesRows: boolean): void {
    if (!takesRows && this.takesRows)
      this.logger.warn('the control plane takes audit records as JSON objects only: converting them to ship');
    this.takesRows = takesRows;
    this.live = true;
    this.generation++;
    this.inFlight = [];
    this.spool.rewind();
    this.pump();
  }

  disconnected(): void {
    this.live = false;
    this.inFlight = [];
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** The control plane stored batch `batchId` (the oldest in flight). */
  acked(batchId: number, rejected: number): void {
    const head = this.inFlight[0];
    if (head === undefined || head.id !== batchId) return;
    this.inFlight.shift();
    if (rejected > 0) this.logger.warn({ rejected }, 'the control plane refused some audit records as invalid');
    const generation = this.generation;
    this.acking = this.acking
      .then(() => this.spool.ack(head.batch))
      .catch((error: unknown) =>
        this.logger.warn({ err: errorMessage(error) }, 'audit spool: could not drop a segment'),
      )
      .finally(() => {
        if (generation !== this.generation) return;
        // A whole batch: a backlog is being shipped, go on at once; else what was written meanwhile waits a little.
        if (head.batch.records >= this.maxRecords) this.pump();
        else this.soon();
      });
  }

  /** Records written and not sent yet (summed over at most `maxInFlight` batches, on each spool write). */
  private get waiting(): number {
    let sent = 0;
    for (const { batch } of this.inFlight) sent += batch.records;
    return this.spool.backlog - sent;
  }

  /**
   * Ships what is written `delayMs` from now (one timer for every write meanwhile), or at once when a whole batch
   * is waiting.
   */
  private readonly soon = (): void => {
    if (!this.live) return;
    if (this.waiting >= this.maxRecords) {
      if (this.timer !== undefined) clearTimeout(this.timer);
      this.timer = undefined;
      this.pump();
      return;
    }
    if (this.timer !== undefined) return;
    this.waitingSince = performance.now();
    this.timer = setTimeout(this.fire, this.delayMs);
    this.timer.unref();
  };

  /** The delay is over: ships, unless records come fast enough to fill a batch before the longest delay. */
  private readonly fire = (): void => {
    this.timer = undefined;
    const left = this.waitingSince + this.maxDelayMs - performance.now();
    if (this.waiting * 10 >= this.maxRecords && left > 0) {
      this.timer = setTimeout(this.fire, left);
      this.timer.unref();
      return;
    }
    this.pump();
  };

  private pump(): void {
    if (!this.live || this.inFlight.length >= this.maxInFlight) return;
    if (this.reading) {
      this.again = true;
      return;
    }
    this.reading = true;
    this.again = false;
    const generation = this.generation;
    let full = false;
    this.spool
      // Read with room for the message's prefix in front: the batch goes out without being copied on the node.
      .read(this.maxRecords, AUDIT_PREFIX_BYTES)
      .then((batch) => {
        if (batch === undefined || generation !== this.generation || !this.live) return;
        const id = this.nextId++;
        const { records, endSegment, endOffset } = batch;
        this.inFlight.push({ id, batch: { records, endSegment, endOffset } });
        const lines = this.takesRows ? withPrefixRoom(batch.bytes) : objectLines(batch.bytes);
        if (!this.send({ batchId: id, recordsJson: [], recordsNdjson: lines })) {
          // No stream: nothing more is read (a later batch acknowledged would free this one's records) until
          // the reconnect, which sends again from the first unacknowledged record.
          this.live = false;
          this.inFlight = [];
          return;
        }
        full = batch.records >= this.maxRecords;
      })
      .catch((error: unknown) => this.logger.error({ err: errorMessage(error) }, 'audit spool: read failed'))
      .finally(() => {
        this.reading = false;
        // A whole batch read: more is probably waiting, read ahead while the window has room.
        if (this.again || full || generation !== this.generation) this.pump();
      });
  }
}

/** Spool lines (rows or objects, each ending in a newline) as object lines, for a control plane before rows. */
function objectLines(bytes: Buffer): Buffer {
  const lines = bytes.toString('utf8').split('\n');
  lines.pop();
  return Buffer.from(`${lines.map(objectLine).join('\n')}\n`, 'utf8');
}
