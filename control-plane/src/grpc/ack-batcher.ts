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
 * How long the first answer of a burst waits for the others. Every node answers a revision within
 * a few ms of the others; without the wait, answers trickling in one by one each found the previous
 * write finished and cost a commit of their own (ten commits for sixteen nodes), made while the
 * revision was still on its way to the slower nodes.
 */
export const ACK_WINDOW_MS = 25;

/**
 * Writes nodes' ACKs and NACKs to the database in batches: the first answer starts a short window
 * (`ACK_WINDOW_MS`), and everything that arrives in it, or while a write is in flight, goes into one
 * write. Sixteen nodes ACKing one revision cost one commit instead of one each, which on the
 * embedded database (one session, synchronous writes in the control plane's own thread) is most of
 * the work of a change. `record` resolves once the answer is stored; `flush` writes what waits.
 */
export class AckBatcher {
  private pending = new Map<string, FoldedAnswer>();
  private waiters: Array<{ resolve: () => void; reject: (error: unknown) => void }> = [];
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> | undefined;

  constructor(
    private readonly nodes: Pick<NodeService, 'recordAnswers'>,
    private readonly windowMs = ACK_WINDOW_MS,
  ) {}

  record(nodeId: string, version: string, accepted: boolean, error: string): Promise<void> {
    this.pending.set(nodeId, foldAnswer(this.pending.get(nodeId), nodeId, version, accepted, error));
    const stored = new Promise<void>((resolve, reject) => this.waiters.push({ resolve, reject }));
    this.schedule();
    return stored;
  }

  /** Writes every answer waiting (at shutdown: nothing waits for the window). */
  async flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    while (this.writing || this.pending.size > 0) await (this.writing ?? this.write());
  }

  /** A write in flight is followed by the next when it is done; otherwise the window starts. */
  private schedule(): void {
    if (this.writing || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.write();
    }, this.windowMs);
    // Pending answers never keep a process alive; shutdown flushes them.
    this.timer.unref();
  }

  private write(): Promise<void> {
    const batch = [...this.pending.values()];
    const waiters = this.waiters;
    this.pending = new Map();
    this.waiters = [];
    this.writing = this.nodes.recordAnswers(batch).then(
      () => waiters.forEach((waiter) => waiter.resolve()),
      (error: unknown) => waiters.forEach((waiter) => waiter.reject(error)),
    ).finally(() => {
      this.writing = undefined;
      if (this.pending.size > 0) void this.write();
    });
    return this.writing;
  }
}
