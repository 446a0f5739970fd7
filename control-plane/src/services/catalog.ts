import type { DataSource } from 'typeorm';
import { z } from 'zod';
import type { Logger } from '../../../common/src/index.ts';
import { Tool, UpstreamNodeStatus, type KeyValuePair, type TransportName, type UpstreamStateName } from '../db/entities.ts';
import { upstreamConfigHash } from '../config/upstream-hash.ts';

export interface UpstreamReportInput {
  upstreamId: string;
  configHash: string;
  state: UpstreamStateName;
  error: string;
  hasCatalog: boolean;
  tools: Array<{ name: string; definitionJson: string }>;
  serverName: string;
  serverVersion: string;
  protocolVersion: string;
}

/** An MCP Tool object as an upstream lists it (extra fields kept). */
const toolDefinitionSchema = z.looseObject({
  name: z.string().min(1).max(128),
  description: z.string().optional(),
  inputSchema: z.looseObject({}).optional(),
});

export type ReportOutcome = 'stored' | 'unknown-upstream' | 'stale-config';

/** The tools each upstream offers and how each node sees each upstream. */
export class CatalogService {
  constructor(
    private readonly dataSource: DataSource,
    private readonly logger: Logger,
  ) {}

  /**
   * Stores a node's report on one upstream: its state for that node and, when the report carries a
   * catalog, the upstream's tools (new ones added, listed ones updated, unlisted ones removed).
   * Reports on upstreams that no longer exist, or on connection settings since replaced, are ignored.
   */
  async applyReport(nodeId: string, report: UpstreamReportInput): Promise<ReportOutcome> {
    const tools = report.hasCatalog ? this.parseTools(report) : [];
    return this.dataSource.transaction(async (manager) => {
      const rows: Array<{ transport: TransportName; command: string | null; args: string[]; env: KeyValuePair[]; url: string | null; headers: KeyValuePair[] }> =
        await manager.query(`SELECT transport, command, args, env, url, headers FROM upstreams WHERE id = $1 FOR SHARE`, [report.upstreamId]);
      const upstream = rows[0];
      if (!upstream) return 'unknown-upstream';
      if (report.configHash && report.configHash !== upstreamConfigHash(upstream)) return 'stale-config';
      await manager.query(
        `INSERT INTO upstream_node_status (upstream_id, node_id, state, error, server_name, server_version, protocol_version, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, now())
         ON CONFLICT (upstream_id, node_id) DO UPDATE SET state = EXCLUDED.state, error = EXCLUDED.error, server_name = EXCLUDED.server_name,
           server_version = EXCLUDED.server_version, protocol_version = EXCLUDED.protocol_version, updated_at = now()`,
        [report.upstreamId, nodeId, report.state, report.error || null, report.serverName || null, report.serverVersion || null, report.protocolVersion || null],
      );
      if (report.hasCatalog) {
        await manager.query(
          `INSERT INTO tools (upstream_id, name, description, definition, first_seen_at, last_seen_at)
           SELECT $1, t.name, t.description, t.definition, now(), now()
           FROM jsonb_to_recordset($2::jsonb) AS t(name text, description text, definition jsonb)
           ON CONFLICT (upstream_id, name) DO UPDATE SET description = EXCLUDED.description, definition = EXCLUDED.definition, last_seen_at = now()`,
          [report.upstreamId, JSON.stringify(tools)],
        );
        await manager.query(`DELETE FROM tools WHERE upstream_id = $1 AND NOT (name = ANY($2::text[]))`, [report.upstreamId, tools.map((tool) => tool.name)]);
      }
      return 'stored';
    });
  }

  private parseTools(report: UpstreamReportInput): Array<{ name: string; description: string | null; definition: Record<string, unknown> }> {
    const byName = new Map<string, { name: string; description: string | null; definition: Record<string, unknown> }>();
    for (const tool of report.tools) {
      let definition: unknown;
      try {
        definition = JSON.parse(tool.definitionJson);
      } catch {
        definition = undefined;
      }
      const parsed = toolDefinitionSchema.safeParse(definition);
      if (!parsed.success || parsed.data.name !== tool.name) {
        this.logger.warn({ upstreamId: report.upstreamId, tool: tool.name.slice(0, 128) }, 'ignored a reported tool whose definition is not an MCP Tool object named like it');
        continue;
      }
      byName.set(tool.name, { name: tool.name, description: parsed.data.description ?? null, definition: parsed.data });
    }
    return [...byName.values()];
  }

  async toolsOf(upstreamIds: readonly string[]): Promise<Tool[]> {
    if (upstreamIds.length === 0) return [];
    return this.dataSource
      .getRepository(Tool)
      .createQueryBuilder('t')
      .where('t.upstreamId IN (:...ids)', { ids: [...upstreamIds] })
      .orderBy('t.name', 'ASC')
      .getMany();
  }

  async allTools(): Promise<Tool[]> {
    return this.dataSource.getRepository(Tool).find({ order: { name: 'ASC' } });
  }

  async statusOf(upstreamIds: readonly string[]): Promise<UpstreamNodeStatus[]> {
    if (upstreamIds.length === 0) return [];
    return this.dataSource
      .getRepository(UpstreamNodeStatus)
      .createQueryBuilder('s')
      .where('s.upstreamId IN (:...ids)', { ids: [...upstreamIds] })
      .orderBy('s.nodeId', 'ASC')
      .getMany();
  }
}
