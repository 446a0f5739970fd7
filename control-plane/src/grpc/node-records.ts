import type { Logger } from '../../../common/src/index.ts';
import { databaseFailureKind } from '../db/failures.ts';
import { WriteBehind } from '../db/write-behind.ts';
import type { UpstreamReportInput } from '../services/catalog.ts';
import type { NodeHelloInfo, NodeService } from '../services/nodes.ts';

/** A write needing a node's row came before the row could be written (the database is away). */
class NodeRowPending extends Error {}

type NodeEvent =
  | { kind: 'connected'; hello: NodeHelloInfo; streamId: string }
  | { kind: 'disconnected'; nodeId: string; streamId: string };

/**
 * What the config streams write about nodes and need not wait for: that a node connected or
 * disconnected, and its upstream reports. During a database outage these wait and are retried
 * (see WriteBehind), and the streams, the snapshots and the relays between nodes go on without them.
 */
export class NodeRecords {
  private readonly presence: WriteBehind<string, NodeEvent[]>;
  private readonly reports: WriteBehind<string, { nodeId: string; report: UpstreamReportInput }>;

  constructor(
    nodes: Pick<NodeService, 'connected' | 'disconnected'>,
    private readonly applyReport: (nodeId: string, report: UpstreamReportInput) => Promise<unknown>,
    private readonly logger: Logger,
  ) {
    this.presence = new WriteBehind({
      what: 'node connections',
      logger,
      write: async (batch) => {
        for (const events of batch) {
          for (const event of events) {
            if (event.kind === 'connected') await nodes.connected(event.hello, event.streamId);
            else await nodes.disconnected(event.nodeId, event.streamId);
          }
        }
      },
      // In order; a newer stream's hello makes what came before it moot.
      fold: (older, newer) => (newer[0]?.kind === 'connected' ? newer : [...older, ...newer].slice(-2)),
    });
    this.reports = new WriteBehind({
      what: 'upstream reports',
      logger,
      write: async (batch) => {
        for (const { nodeId, report } of batch) await this.applyOrDrop(nodeId, report);
      },
    });
  }

  connected(hello: NodeHelloInfo, streamId: string): void {
    this.presence.put(hello.nodeId, [{ kind: 'connected', hello, streamId }]);
  }

  disconnected(nodeId: string, streamId: string): void {
    this.presence.put(nodeId, [{ kind: 'disconnected', nodeId, streamId }]);
  }

  /**
   * Resolves once every one of `nodeIds` has its connection written; rejects while one still waits
   * (the database is away), so that a write depending on the node's row is retried after it.
   */
  async presenceWritten(nodeIds: readonly string[]): Promise<void> {
    if (!nodeIds.some((id) => this.presence.has(id))) return;
    await this.presence.flush();
    const waiting = nodeIds.filter((id) => this.presence.has(id));
    if (waiting.length > 0)
      throw new NodeRowPending(`the connections of ${waiting.length} node(s) are not written yet`);
  }

  /**
   * Stores a node's report of one upstream: at once when the database answers, else later (a newer
   * report of the same upstream from the same node replaces one still waiting). Rejects only for a
   * report the database refused for what it says.
   */
  async report(nodeId: string, report: UpstreamReportInput): Promise<void> {
    const key = `${nodeId}\n${report.upstreamId}`;
    // Behind an older one still waiting, a report waits too, so that the newer is stored last.
    if (this.reports.pendingCount > 0) return this.reports.put(key, { nodeId, report });
    try {
      await this.presenceWritten([nodeId]);
      await this.applyReport(nodeId, report);
    } catch (error) {
      if (!retryable(error)) throw error;
      this.reports.put(key, { nodeId, report });
    }
  }

  /** One last attempt at what waits. */
  async close(): Promise<void> {
    await Promise.all([this.presence.close(), this.reports.close()]);
  }

  /** A retried report the database refuses for what it says is dropped (a retry would fail again). */
  private async applyOrDrop(nodeId: string, report: UpstreamReportInput): Promise<void> {
    try {
      await this.presenceWritten([nodeId]);
      await this.applyReport(nodeId, report);
    } catch (error) {
      if (retryable(error)) throw error;
      this.logger.warn(
        { node: nodeId, upstreamId: report.upstreamId, err: error instanceof Error ? error.message : String(error) },
        'dropped an upstream report the database refused',
      );
    }
  }
}

/** The database was away: trying again later can succeed. */
function retryable(error: unknown): boolean {
  return error instanceof NodeRowPending || databaseFailureKind(error) !== undefined;
}
