import { errorMessage, type Logger } from '../../../common/src/index.ts';
import type { AuditBatch } from '../../../proto/gen/portcullis/v1/config.ts';
import type { AuditSpool, SpoolBatch } from './audit-spool.ts';

/** Records per AuditBatch (the control plane takes up to 5,000). */
export const AUDIT_BATCH_RECORDS = 1_000;

/**
 * Ships the spool to the control plane over the config stream: one batch in flight at a time,
 * read from the spool files (never from memory), the next sent when the previous is acknowledged.
 * After a reconnect it starts again from the first record not acknowledged (at least once; the
 * control plane stores each id once).
 */
export class AuditShipper {
  private inFlight: { id: number; batch: SpoolBatch } | undefined;
  private nextId = 1;
  private live = false;
  private reading = false;
  private again = false;
  /** Bumped at each (re)connect: a read begun before it is dropped. */
  private generation = 0;

  constructor(
    private readonly spool: AuditSpool,
    private readonly send: (batch: AuditBatch) => boolean,
    private readonly logger: Logger,
    private readonly maxRecords = AUDIT_BATCH_RECORDS,
  ) {
    spool.onWritten = () => this.pump();
  }

  /** A stream to the control plane opened (its hello sent). */
  connected(): void {
    this.live = true;
    this.generation++;
    this.inFlight = undefined;
    this.spool.rewind();
    this.pump();
  }

  disconnected(): void {
    this.live = false;
    this.inFlight = undefined;
  }

  /** The control plane stored batch `batchId`. */
  acked(batchId: number, rejected: number): void {
    const inFlight = this.inFlight;
    if (inFlight === undefined || inFlight.id !== batchId) return;
    if (rejected > 0) this.logger.warn({ rejected }, 'the control plane refused some audit records as invalid');
    this.spool
      .ack(inFlight.batch)
      .catch((error: unknown) =>
        this.logger.warn({ err: errorMessage(error) }, 'audit spool: could not drop a segment'),
      )
      .finally(() => {
        if (this.inFlight === inFlight) this.inFlight = undefined;
        this.pump();
      });
  }

  private pump(): void {
    if (!this.live || this.inFlight !== undefined) return;
    if (this.reading) {
      this.again = true;
      return;
    }
    this.reading = true;
    this.again = false;
    const generation = this.generation;
    this.spool
      .read(this.maxRecords)
      .then((batch) => {
        if (batch === undefined || generation !== this.generation || !this.live || this.inFlight !== undefined) return;
        const id = this.nextId++;
        this.inFlight = { id, batch };
        if (!this.send({ batchId: id, recordsJson: [...batch.lines] })) this.inFlight = undefined;
      })
      .catch((error: unknown) => this.logger.error({ err: errorMessage(error) }, 'audit spool: read failed'))
      .finally(() => {
        this.reading = false;
        if (this.again || generation !== this.generation) this.pump();
      });
  }
}
