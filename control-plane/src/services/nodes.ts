import type { DataSource } from 'typeorm';
import { DataPlaneNode } from '../db/entities.ts';
import { MAX_PAGE_SIZE, type Page } from './pagination.ts';

export interface NodeHelloInfo {
  nodeId: string;
  softwareVersion: string;
  mcpUrl: string;
  appliedVersion: string;
}

/** How often each replica marks its connected nodes as seen (ms). */
export const NODE_HEARTBEAT_INTERVAL_MS = 15_000;

/** Data-plane nodes as the control plane knows them. */
export class NodeService {
  /**
   * How often replicas mark their connected nodes as seen: a node not seen for three intervals is
   * counted stale even while its row says connected (its replica died without saying so).
   */
  heartbeatIntervalMs = NODE_HEARTBEAT_INTERVAL_MS;

  constructor(private readonly dataSource: DataSource) {}

  /** Marks the nodes on these live streams as seen now (one statement for all of a replica's streams). */
  async seen(streamIds: readonly string[]): Promise<void> {
    if (streamIds.length === 0) return;
    await this.dataSource.query(
      `UPDATE data_plane_nodes SET last_seen_at = now() WHERE connected AND stream_id = ANY($1::uuid[])`,
      [streamIds],
    );
  }

  /**
   * How long `node` may have gone without configuration changes, in whole seconds: 0 while it is
   * connected, runs `currentVersion` and was seen within three heartbeats; otherwise the time since
   * it was last seen.
   */
  configAgeSeconds(node: DataPlaneNode, currentVersion: string, now = Date.now()): number {
    const sinceSeen = Math.max(0, now - node.lastSeenAt.getTime());
    if (node.connected && node.appliedVersion === currentVersion && sinceSeen <= 3 * this.heartbeatIntervalMs) return 0;
    return Math.floor(sinceSeen / 1000);
  }

  /** Records a node's new stream (it replaces any earlier stream of the same node). */
  async connected(hello: NodeHelloInfo, streamId: string): Promise<void> {
    await this.dataSource.query(
      `INSERT INTO data_plane_nodes (id, mcp_url, software_version, connected, stream_id, applied_version, last_error,
       connected_at, last_seen_at)
       VALUES ($1, $2, $3, true, $4, $5, NULL, now(), now())
       ON CONFLICT (id) DO UPDATE SET mcp_url = EXCLUDED.mcp_url, software_version = EXCLUDED.software_version,
         connected = true,
         stream_id = EXCLUDED.stream_id, applied_version = COALESCE(EXCLUDED.applied_version,
           data_plane_nodes.applied_version),
         last_error = NULL, connected_at = now(), last_seen_at = now()`,
      [hello.nodeId, hello.mcpUrl || null, hello.softwareVersion || null, streamId, hello.appliedVersion || null],
    );
  }

  /** The node applied `version` (ACK) or refused it with `error` (NACK, it keeps its previous one). */
  async acknowledged(nodeId: string, version: string, accepted: boolean, error: string): Promise<void> {
    if (accepted) {
      await this.dataSource.query(
        `UPDATE data_plane_nodes SET applied_version = $2, last_error = NULL, last_seen_at = now() WHERE id = $1`,
        [nodeId, version],
      );
    } else {
      const reason = `version ${version} refused: ${error || 'no reason given'}`.slice(0, 4096);
      await this.dataSource.query(`UPDATE data_plane_nodes SET last_error = $2, last_seen_at = now() WHERE id = $1`, [
        nodeId,
        reason,
      ]);
    }
  }

  /**
   * Records the answers of several nodes in one statement (one commit). Each entry is what a node's
   * answers since the last write add up to (see `AckBatcher`): the version it now runs, if it accepted
   * one, and its last refusal, if its newest answer was one (null clears the error).
   */
  async recordAnswers(
    answers: ReadonlyArray<{ nodeId: string; appliedVersion: string | null; lastError: string | null }>,
  ): Promise<void> {
    if (answers.length === 0) return;
    await this.dataSource.query(
      `UPDATE data_plane_nodes n SET applied_version = coalesce(a.applied_version, n.applied_version),
       last_error = a.last_error, last_seen_at = now()
       FROM unnest($1::text[], $2::text[], $3::text[]) AS a(node_id, applied_version, last_error)
       WHERE n.id = a.node_id`,
      [
        answers.map((a) => a.nodeId),
        answers.map((a) => a.appliedVersion),
        answers.map((a) => (a.lastError === null ? null : a.lastError.slice(0, 4096))),
      ],
    );
  }

  /** The stream ended; a newer stream of the same node (perhaps on another replica) is left alone. */
  async disconnected(nodeId: string, streamId: string): Promise<void> {
    await this.dataSource.query(
      `UPDATE data_plane_nodes SET connected = false, last_seen_at = now() WHERE id = $1 AND stream_id = $2`,
      [nodeId, streamId],
    );
  }

  /** Nodes by id, one page (see `Page`); `after` is a node id. */
  async list(page: Page = { first: MAX_PAGE_SIZE, after: null }): Promise<DataPlaneNode[]> {
    const query = this.dataSource
      .getRepository(DataPlaneNode)
      .createQueryBuilder('n')
      .orderBy('n.id', 'ASC')
      .take(page.first);
    if (page.after !== null) query.where('n.id > :after', { after: page.after });
    return query.getMany();
  }
}
