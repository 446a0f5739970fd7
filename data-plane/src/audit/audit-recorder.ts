import type { Logger } from '../../../common/src/index.ts';
import type { AuditContent } from './audit-content.ts';
import {
  auditRow,
  newAuditRecord,
  type AuditStamp,
  type AuditKind,
  type AuditRecord,
  type AuditStatus,
} from './audit-record.ts';
import type { AuditSpool } from './audit-spool.ts';

/** What a node does while its audit spool is full: refuse new operations, or serve and count the records lost. */
export type SpoolFullPolicy = 'refuse' | 'serve';

export interface AuditRecorderOptions {
  readonly node: string;
  readonly spool: AuditSpool;
  readonly content: AuditContent;
  readonly whenFull: SpoolFullPolicy;
  readonly logger: Logger;
}

/**
 * The one way to emit an audit record on a node (the record API):
 *
 *   const record = recorder.start('tool_call', 'ok');   // id, time, node set
 *   record.keyId = …; record.upstream = …;               // fill what is known
 *   await recorder.record(record);                       // in the spool before the answer is sent
 *
 * `content` says whether arguments and results may be kept for an (upstream, key) and truncates
 * them. `admits()` is false while the spool is full and the node is set to refuse: the pipeline's
 * record step then refuses the operation before it runs.
 */
export class AuditRecorder {
  readonly content: AuditContent;
  readonly node: string;
  private fullSince: number | undefined;

  constructor(private readonly options: AuditRecorderOptions) {
    this.content = options.content;
    this.node = options.node;
  }

  get spool(): AuditSpool {
    return this.options.spool;
  }

  start(kind: AuditKind, status: AuditStatus, stamp?: AuditStamp): AuditRecord {
    return newAuditRecord(this.node, kind, status, stamp);
  }

  /** Whether a new operation may run: false only when the spool is full and the policy is to refuse. */
  admits(): boolean {
    if (!this.options.spool.full) {
      if (this.fullSince !== undefined) this.recovered();
      return true;
    }
    this.noteFull();
    return this.options.whenFull !== 'refuse';
  }

  /**
   * Spools the record; resolves once it is in the spool file (the promise is shared by every record of
   * its write and never rejects: a failed write is logged and counted by the spool), or undefined at
   * once when the spool is full (the record is then counted as dropped).
   */
  record(record: AuditRecord): Promise<void> | undefined {
    return this.spoolLine(auditRow(record));
  }

  /** `record` for a record already serialized (one JSON row or object, no newline). */
  spoolLine(line: string): Promise<void> | undefined {
    const written = this.options.spool.append(line);
    if (written === false) {
      this.noteFull();
      return undefined;
    }
    return written;
  }

  private noteFull(): void {
    if (this.fullSince !== undefined) return;
    this.fullSince = Date.now();
    this.options.logger.error(
      { bytes: this.options.spool.sizeBytes, policy: this.options.whenFull },
      this.options.whenFull === 'refuse'
        ? 'audit spool full: refusing new calls until the control plane takes the backlog'
        : 'audit spool full: serving on, records are dropped and counted (portcullis_audit_records_dropped_total)',
    );
  }

  private recovered(): void {
    this.options.logger.warn(
      { fullForMs: Date.now() - (this.fullSince ?? Date.now()), dropped: this.options.spool.dropped },
      'audit spool has room again',
    );
    this.fullSince = undefined;
  }
}
