import type { Logger } from '../../../common/src/index.ts';
import { WriteBehind } from '../db/write-behind.ts';
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
export function foldAnswer(
  previous: FoldedAnswer | undefined,
  nodeId: string,
  version: string,
  accepted: boolean,
  error: string,
): FoldedAnswer {
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

/** Two folded answers of one node, older then newer, as one. */
function combineAnswers(older: FoldedAnswer, newer: FoldedAnswer): FoldedAnswer {
  return newer.appliedVersion === null ? { ...newer, appliedVersion: older.appliedVersion } : newer;
}

/**
 * Writes nodes' ACKs and NACKs to the database in batches: the first answer starts a short window
 * (`ACK_WINDOW_MS`), and everything that arrives in it, or while a write is in flight, goes into one
 * write. Sixteen nodes ACKing one revision cost one commit instead of one each, which on the
 * embedded database (one session, synchronous writes in the control plane's own thread) is most of
 * the work of a change. A failed write (the database away) is retried in the background: a node's
 * stream never waits for, or ends with, the record of its answers.
 */
export class AckBatcher {
  private readonly writes: WriteBehind<string, FoldedAnswer>;

  /**
   * `rowsWritten` resolves once the nodes' own rows are stored (their connection is written behind
   * too): an answer written before its node's row would update nothing and be lost.
   */
  constructor(
    nodes: Pick<NodeService, 'recordAnswers'>,
    logger: Logger,
    rowsWritten: (nodeIds: readonly string[]) => Promise<void>,
    windowMs = ACK_WINDOW_MS,
  ) {
    this.writes = new WriteBehind({
      what: 'node answers',
      logger,
      write: async (batch) => {
        await rowsWritten(batch.map((answer) => answer.nodeId));
        await nodes.recordAnswers(batch);
      },
      fold: combineAnswers,
      windowMs,
    });
  }

  record(nodeId: string, version: string, accepted: boolean, error: string): void {
    this.writes.put(nodeId, foldAnswer(undefined, nodeId, version, accepted, error));
  }

  /** Writes what waits now, without waiting for the window. */
  flush(): Promise<void> {
    return this.writes.flush();
  }

  /** Writes every answer waiting (at shutdown: nothing waits for the window), once. */
  close(): Promise<void> {
    return this.writes.close();
  }
}
