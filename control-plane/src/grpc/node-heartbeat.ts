import { errorMessage, type Logger } from '../../../common/src/index.ts';
import type { NodeService } from '../services/nodes.ts';

/**
 * Every interval, marks the nodes streaming from this replica as seen, so that GraphQL `nodes`
 * tells a connected node from one whose replica died without marking it disconnected. A failed write
 * (database away) is logged and tried again next time; it never touches the streams.
 */
export class NodeHeartbeat {
  private readonly timer: NodeJS.Timeout;
  private running: Promise<void> | undefined;

  constructor(nodes: NodeService, liveStreams: () => ReadonlyArray<{ streamId: string }>, logger: Logger, intervalMs: number) {
    this.timer = setInterval(() => {
      if (this.running) return;
      this.running = nodes
        .seen(liveStreams().map((s) => s.streamId))
        .catch((error: unknown) => logger.warn({ err: errorMessage(error) }, 'could not mark connected nodes as seen'))
        .finally(() => (this.running = undefined));
    }, intervalMs);
    this.timer.unref();
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }
}
