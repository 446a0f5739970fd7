import type { DataSource } from 'typeorm';
import { DataPlaneNode } from '../db/entities.ts';

export interface NodeHelloInfo {
  nodeId: string;
  softwareVersion: string;
  mcpUrl: string;
  appliedVersion: string;
}

/** Data-plane nodes as the control plane knows them. */
export class NodeService {
  constructor(private readonly dataSource: DataSource) {}

  /** Records a node's new stream (it replaces any earlier stream of the same node). */
  async connected(hello: NodeHelloInfo, streamId: string): Promise<void> {
    await this.dataSource.query(
      `INSERT INTO data_plane_nodes (id, mcp_url, software_version, connected, stream_id, applied_version, last_error, connected_at, last_seen_at)
       VALUES ($1, $2, $3, true, $4, $5, NULL, now(), now())
       ON CONFLICT (id) DO UPDATE SET mcp_url = EXCLUDED.mcp_url, software_version = EXCLUDED.software_version, connected = true,
         stream_id = EXCLUDED.stream_id, applied_version = COALESCE(EXCLUDED.applied_version, data_plane_nodes.applied_version),
         last_error = NULL, connected_at = now(), last_seen_at = now()`,
      [hello.nodeId, hello.mcpUrl || null, hello.softwareVersion || null, streamId, hello.appliedVersion || null],
    );
  }

  /** The node applied `version` (ACK) or refused it with `error` (NACK, it keeps its previous one). */
  async acknowledged(nodeId: string, version: string, accepted: boolean, error: string): Promise<void> {
    if (accepted) {
      await this.dataSource.query(`UPDATE data_plane_nodes SET applied_version = $2, last_error = NULL, last_seen_at = now() WHERE id = $1`, [nodeId, version]);
    } else {
      const reason = `version ${version} refused: ${error || 'no reason given'}`.slice(0, 4096);
      await this.dataSource.query(`UPDATE data_plane_nodes SET last_error = $2, last_seen_at = now() WHERE id = $1`, [nodeId, reason]);
    }
  }

  /** The stream ended; a newer stream of the same node (perhaps on another replica) is left alone. */
  async disconnected(nodeId: string, streamId: string): Promise<void> {
    await this.dataSource.query(`UPDATE data_plane_nodes SET connected = false, last_seen_at = now() WHERE id = $1 AND stream_id = $2`, [nodeId, streamId]);
  }

  async list(): Promise<DataPlaneNode[]> {
    return this.dataSource.getRepository(DataPlaneNode).find({ order: { id: 'ASC' } });
  }
}
