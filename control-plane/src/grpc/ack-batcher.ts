import type { NodeService } from '../services/nodes.ts';

/** What one node's answers since the last write add up to. */
export interface FoldedAnswer {
  nodeId: string;
  /** The newest version it accepted, or null when it accepted none (the stored one stays). */
  appliedVersion: string | null;
  /** Its last refusal when no acceptance came after it, else null (which clears a stored error). */
  lastError: string | null;
}

/** Adds one answer to what a node said before (in order), as `acknowledged` one by one would have left the row. */
export function foldAnswer(previous: FoldedAnswer | undefined, nodeId: string, version: string, accepted: boolean, error: string): FoldedAnswer {
  if (accepted) return { nodeId, appliedVersion: version, lastError: null };
  const lastError = `version ${version} refused: ${error || 'no reason given'}`;
  // A refusal keeps the version already applied (stored, or accepted earlier in this batch).
  return { nodeId, appliedVersion: previous?.appliedVersion ?? null, lastError };
}

/**
 * Writes nodes' ACKs and NACKs to the database in batches, without waiting for a timer: the first
 * answer is written at once, and whatever arrives while a write is in flight goes into the next
 * one. Sixteen nodes ACKing one revision cost two commits instead of sixteen, which on the embedded
 * database (one session, synchronous writes in the control plane's own thread) is most of the work
 * of a change. `record` resolves once the answer is stored.
 */
export class AckBatcher {
  private pending = new Map<string, FoldedAnswer>();
  private waiters: Array<{ resolve: () => void; reject: (error: unknown) => void }> = [];
  private writing = false;

  constructor(private readonly nodes: Pick<NodeService, 'recordAnswers'>) {}

  record(nodeId: string, version: string, accepted: boolean, error: string): Promise<void> {
    this.pending.set(nodeId, foldAnswer(this.pending.get(nodeId), nodeId, version, accepted, error));
    const stored = new Promise<void>((resolve, reject) => this.waiters.push({ resolve, reject }));
    if (!this.writing) void this.drain();
    return stored;
  }

  private async drain(): Promise<void> {
    this.writing = true;
    try {
      while (this.pending.size > 0) {
        const batch = [...this.pending.values()];
        const waiters = this.waiters;
        this.pending = new Map();
        this.waiters = [];
        try {
          await this.nodes.recordAnswers(batch);
          for (const waiter of waiters) waiter.resolve();
        } catch (error) {
          for (const waiter of waiters) waiter.reject(error);
        }
      }
    } finally {
      this.writing = false;
    }
  }
}
