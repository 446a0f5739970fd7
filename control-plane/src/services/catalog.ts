import { randomUUID } from 'node:crypto';
import type { EntityManager } from 'typeorm';
import { z } from 'zod';
import { PortcullisError, ErrorCode, type Logger } from '../../../common/src/index.ts';
import {
  Tool,
  ToolDefinitionChange,
  UpstreamNodeStatus,
  type PromptSummaryJson,
  type ResourceSummaryJson,
  type ResourceTemplateSummaryJson,
  type ToolChangeKind,
  type UpstreamCatalogList,
  type UpstreamStateName,
} from '../db/entities.ts';
import { applyCatalogLists, catalogListsOf, type ReportedCatalogList } from './catalog-lists.ts';
import { UPSTREAM_HASH_COLUMNS, upstreamRowHash } from '../config/upstream-hash.ts';
import { withConfigChange, type ConfigStore } from './config-change.ts';
import {
  collisionError,
  collisionsOf,
  describeCollisions,
  nameCollisions,
  type NameCollision,
} from './exposed-names.ts';
import { MAX_PAGE_SIZE, keysetPage, type Page } from './pagination.ts';
import { parseId } from './validation.ts';

export interface UpstreamReportInput {
  upstreamId: string;
  configHash: string;
  state: UpstreamStateName;
  error: string;
  hasCatalog: boolean;
  tools: Array<{ name: string; definitionJson: string; definitionSha256: string }>;
  serverName: string;
  serverVersion: string;
  protocolVersion: string;
  /** The other catalogs, summarized; a kind is stored only when its has* flag is set. Omitted: none. */
  hasPrompts?: boolean;
  prompts?: PromptSummaryJson[];
  promptsTotal?: number;
  hasResources?: boolean;
  resources?: ResourceSummaryJson[];
  resourcesTotal?: number;
  hasResourceTemplates?: boolean;
  resourceTemplates?: ResourceTemplateSummaryJson[];
  resourceTemplatesTotal?: number;
}

/** The prompts, resources and templates lists a report carries. */
function reportedLists(report: UpstreamReportInput): ReportedCatalogList[] {
  const lists: ReportedCatalogList[] = [];
  if (report.hasPrompts)
    lists.push({ kind: 'PROMPTS', entries: report.prompts ?? [], total: report.promptsTotal ?? 0 });
  if (report.hasResources)
    lists.push({ kind: 'RESOURCES', entries: report.resources ?? [], total: report.resourcesTotal ?? 0 });
  if (report.hasResourceTemplates)
    lists.push({
      kind: 'RESOURCE_TEMPLATES',
      entries: report.resourceTemplates ?? [],
      total: report.resourceTemplatesTotal ?? 0,
    });
  return lists;
}

/** An MCP Tool object as an upstream lists it (extra fields kept). */
const toolDefinitionSchema = z.looseObject({
  name: z.string().min(1).max(128),
  description: z.string().optional(),
  inputSchema: z.looseObject({}).optional(),
});

export type ReportOutcome = 'stored' | 'unknown-upstream' | 'stale-config';

interface ReportedTool {
  name: string;
  description: string | null;
  definition: Record<string, unknown>;
  /** The node's definition_sha256; '' when the node sent none (then nothing is pinned). */
  sha256: string;
}

interface StoredToolRow {
  id: string;
  name: string;
  pinned_sha256: string | null;
  pending_sha256: string | null;
  listed: boolean;
}

/** The target state of a changed tool row. */
interface ToolWrite {
  id: string;
  name: string;
  description: string | null;
  definition: Record<string, unknown>;
  pinned_sha256: string | null;
  pending_definition: Record<string, unknown> | null;
  pending_sha256: string | null;
  listed: boolean;
  /** Held back: the stored accepted definition and description stay. */
  keep: boolean;
}

interface HistoryWrite {
  tool_id: string;
  tool_name: string;
  kind: ToolChangeKind;
  old_sha256: string | null;
  new_sha256: string | null;
  definition: Record<string, unknown> | null;
}

/**
 * The tools each upstream offers, their pinned definitions, and how each node sees each upstream.
 *
 * Pinning: the first definition_sha256 a node reports for a tool is pinned. A later report of
 * another hash, on an upstream with pinning on, leaves the pin and the accepted definition alone and
 * holds the new definition as pending (nodes hold the tool back, since its hash no longer matches
 * the pin in their snapshot) until an operator accepts it. Every catalog change is recorded in
 * tool_definition_changes, on pinning upstreams or not.
 */
export class CatalogService {
  constructor(
    private readonly store: ConfigStore,
    private readonly logger: Logger,
  ) {}

  /**
   * Stores a node's report on one upstream: its state for that node and, when the report carries a
   * catalog, the upstream's tools. Reports on upstreams that no longer exist, or on connection
   * settings since replaced, are ignored. The revision moves only when the pins nodes are sent
   * changed (a tool seen for the first time on a pinning upstream); an unchanged catalog moves nothing.
   */
  async applyReport(nodeId: string, report: UpstreamReportInput): Promise<ReportOutcome> {
    const tools = report.hasCatalog ? this.parseTools(report) : [];
    const lists = reportedLists(report);
    return withConfigChange(this.store, async (manager) => {
      const rows: Array<
        Parameters<typeof upstreamRowHash>[0] & {
          name: string;
          pin_tool_definitions: boolean;
          expose_unprefixed: boolean;
        }
      > = await manager.query(
        `SELECT name, pin_tool_definitions, expose_unprefixed, ${UPSTREAM_HASH_COLUMNS} FROM upstreams WHERE id = ` +
          `$1 ${report.hasCatalog || lists.length > 0 ? 'FOR NO KEY UPDATE' : 'FOR SHARE'}`,
        [report.upstreamId],
      );
      const upstream = rows[0];
      if (!upstream) return { result: 'unknown-upstream' as const, changed: false };
      if (report.configHash && report.configHash !== upstreamRowHash(upstream))
        return { result: 'stale-config' as const, changed: false };
      await manager.query(
        `INSERT INTO upstream_node_status (upstream_id, node_id, state, error, server_name, server_version,
         protocol_version, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, now())
         ON CONFLICT (upstream_id, node_id) DO UPDATE SET state = EXCLUDED.state, error = EXCLUDED.error,
           server_name = EXCLUDED.server_name,
           server_version = EXCLUDED.server_version, protocol_version = EXCLUDED.protocol_version, updated_at = now()`,
        [
          report.upstreamId,
          nodeId,
          report.state,
          report.error || null,
          report.serverName || null,
          report.serverVersion || null,
          report.protocolVersion || null,
        ],
      );
      const changedLists = await applyCatalogLists(manager, report.upstreamId, nodeId, lists);
      if (changedLists.length > 0)
        this.logger.debug(
          { node: nodeId, upstream: upstream.name, lists: changedLists },
          'upstream catalog lists changed',
        );
      if (!report.hasCatalog) return { result: 'stored' as const, changed: false };
      const applied = await this.applyCatalog(manager, report.upstreamId, upstream.pin_tool_definitions, nodeId, tools);
      if (applied.added && applied.changes > 0) {
        const collisions = await collisionsOf(
          manager,
          { id: report.upstreamId, name: upstream.name },
          upstream.expose_unprefixed,
        );
        if (collisions.length > 0) {
          this.logger.warn(
            { node: nodeId, upstream: upstream.name, collisions: collisions.map((c) => c.name) },
            `upstream catalog collides: ${describeCollisions(collisions)}`,
          );
        }
      }
      return { result: 'stored' as const, changed: applied.pinsChanged };
    });
  }

  private async applyCatalog(
    manager: EntityManager,
    upstreamId: string,
    pinning: boolean,
    nodeId: string,
    tools: readonly ReportedTool[],
  ): Promise<{ pinsChanged: boolean; added: boolean; changes: number }> {
    const stored: StoredToolRow[] = await manager.query(
      `SELECT id, name, pinned_sha256, pending_sha256, listed FROM tools WHERE upstream_id = $1 FOR UPDATE`,
      [upstreamId],
    );
    const byName = new Map(stored.map((row) => [row.name, row]));
    const inserts: ToolWrite[] = [];
    const updates: ToolWrite[] = [];
    const history: HistoryWrite[] = [];
    let pinsChanged = false;
    let added = false;
    const record = (
      tool: { id: string; name: string },
      kind: ToolChangeKind,
      oldSha: string | null,
      newSha: string | null,
      definition: Record<string, unknown> | null,
    ) =>
      history.push({
        tool_id: tool.id,
        tool_name: tool.name,
        kind,
        old_sha256: oldSha || null,
        new_sha256: newSha || null,
        definition,
      });

    for (const tool of tools) {
      const row = byName.get(tool.name);
      const sha = tool.sha256 || null;
      if (!row) {
        const write: ToolWrite = {
          id: randomUUID(),
          name: tool.name,
          description: tool.description,
          definition: tool.definition,
          pinned_sha256: sha,
          pending_definition: null,
          pending_sha256: null,
          listed: true,
          keep: false,
        };
        inserts.push(write);
        record(write, 'ADDED', null, sha, tool.definition);
        if (pinning && sha) pinsChanged = true;
        added = true;
        continue;
      }
      // Latest listing, unless it is held back below.
      const write: ToolWrite = {
        id: row.id,
        name: tool.name,
        description: tool.description,
        definition: tool.definition,
        pinned_sha256: row.pinned_sha256,
        pending_definition: null,
        pending_sha256: null,
        listed: true,
        keep: false,
      };
      if (!row.listed) {
        record(row, 'ADDED', row.pinned_sha256, sha, tool.definition);
        added = true;
      }
      if (sha === null) {
        // A node that computes no hash: the catalog is kept, the pin is left as it is.
      } else if (row.pinned_sha256 === null) {
        write.pinned_sha256 = sha;
        if (pinning) pinsChanged = true;
      } else if (row.pinned_sha256 === sha) {
        if (row.pending_sha256 !== null) record(row, 'REVERTED', row.pending_sha256, sha, tool.definition);
      } else if (pinning) {
        // Held back: the accepted definition stays, the new one waits for an operator.
        if (row.pending_sha256 !== sha) record(row, 'HELD_BACK', row.pinned_sha256, sha, tool.definition);
        write.pending_definition = tool.definition;
        write.pending_sha256 = sha;
        write.keep = true;
      } else {
        record(row, 'CHANGED', row.pinned_sha256, sha, tool.definition);
        write.pinned_sha256 = sha;
      }
      updates.push(write);
    }
    const listedNames = new Set(tools.map((tool) => tool.name));
    const unlisted = stored.filter((row) => row.listed && !listedNames.has(row.name));
    for (const row of unlisted) record(row, 'REMOVED', row.pinned_sha256, null, null);

    if (inserts.length > 0) {
      await manager.query(
        `INSERT INTO tools (id, upstream_id, name, description, definition, pinned_sha256, listed, first_seen_at,
         last_seen_at)
         SELECT t.id, $1, t.name, t.description, t.definition, t.pinned_sha256, true, now(), now()
         FROM jsonb_to_recordset($2::jsonb)
           AS t(id uuid, name text, description text, definition jsonb, pinned_sha256 text)`,
        [upstreamId, JSON.stringify(inserts)],
      );
    }
    if (updates.length > 0) {
      await manager.query(
        `UPDATE tools AS t SET
           definition = CASE WHEN u.keep THEN t.definition ELSE u.definition END,
           description = CASE WHEN u.keep THEN t.description ELSE u.description END,
           pinned_sha256 = u.pinned_sha256, pending_definition = u.pending_definition,
             pending_sha256 = u.pending_sha256,
           listed = true, last_seen_at = now()
         FROM jsonb_to_recordset($1::jsonb) AS u(id uuid, definition jsonb, description text, pinned_sha256 text,
           pending_definition jsonb, pending_sha256 text, keep boolean)
         WHERE t.id = u.id`,
        [JSON.stringify(updates)],
      );
    }
    if (unlisted.length > 0) {
      await manager.query(`UPDATE tools SET listed = false WHERE id = ANY($1::uuid[])`, [
        unlisted.map((row) => row.id),
      ]);
    }
    if (history.length > 0) {
      await manager.query(
        `INSERT INTO tool_definition_changes (upstream_id, tool_id, tool_name, kind, old_sha256, new_sha256, definition,
         node_id, changed_at)
         SELECT $1, h.tool_id, h.tool_name, h.kind, h.old_sha256, h.new_sha256, h.definition, $3, clock_timestamp()
         FROM jsonb_to_recordset($2::jsonb) AS h(tool_id uuid, tool_name text, kind text, old_sha256 text,
           new_sha256 text, definition jsonb, n integer)
         ORDER BY h.n`,
        [upstreamId, JSON.stringify(history.map((entry, n) => ({ ...entry, n }))), nodeId],
      );
    }
    return { pinsChanged, added, changes: inserts.length + history.length };
  }

  /**
   * Accepts a tool's held-back definition: it becomes the pinned one and the revision moves, so
   * nodes release the tool. `expectedSha256`, when given, must be the pending hash (so an operator
   * accepts what they reviewed, not a newer change). Nothing pending: the tool is returned as it is.
   */
  async acceptDefinition(rawToolId: string, expectedSha256?: string | null): Promise<Tool> {
    const toolId = parseId(rawToolId, 'toolId');
    return withConfigChange(this.store, async (manager) => {
      const rows: Array<{ upstream_id: string }> = await manager.query(`SELECT upstream_id FROM tools WHERE id = $1`, [
        toolId,
      ]);
      if (!rows[0])
        throw new PortcullisError(
          ErrorCode.NOT_FOUND,
          `toolId: no tool has id "${toolId}"; list them with the tools query`,
          { field: 'toolId' },
        );
      // Same lock order as catalog reports: the upstream, then its tools.
      await manager.query(`SELECT id FROM upstreams WHERE id = $1 FOR NO KEY UPDATE`, [rows[0].upstream_id]);
      const tool = await manager.findOne(Tool, { where: { id: toolId }, lock: { mode: 'pessimistic_write' } });
      if (!tool)
        throw new PortcullisError(
          ErrorCode.NOT_FOUND,
          `toolId: no tool has id "${toolId}"; list them with the tools query`,
          { field: 'toolId' },
        );
      if (tool.pendingSha256 === null || tool.pendingDefinition === null) {
        if (expectedSha256 && expectedSha256 !== tool.pinnedSha256) {
          throw new PortcullisError(
            ErrorCode.CONFLICT,
            `sha256: tool "${tool.name}" has no pending definition with that hash; query the tool again and accept ` +
              `what is pending`,
            { field: 'sha256' },
          );
        }
        return { result: tool, changed: false };
      }
      if (expectedSha256 && expectedSha256 !== tool.pendingSha256) {
        throw new PortcullisError(
          ErrorCode.CONFLICT,
          `sha256: the pending definition of tool "${tool.name}" is now ${tool.pendingSha256}, not ` +
            `${expectedSha256}; review pendingDefinition again and accept that hash`,
          { field: 'sha256' },
        );
      }
      const previousSha = tool.pinnedSha256;
      tool.definition = tool.pendingDefinition;
      tool.description =
        typeof tool.pendingDefinition['description'] === 'string' ? tool.pendingDefinition['description'] : null;
      tool.pinnedSha256 = tool.pendingSha256;
      tool.pendingDefinition = null;
      tool.pendingSha256 = null;
      await manager.query(
        `UPDATE tools SET definition = $2, description = $3, pinned_sha256 = $4, pending_definition = NULL, ` +
          `pending_sha256 = NULL WHERE id = $1`,
        [tool.id, JSON.stringify(tool.definition), tool.description, tool.pinnedSha256],
      );
      await manager.query(
        `INSERT INTO tool_definition_changes (upstream_id, tool_id, tool_name, kind, old_sha256, new_sha256, definition,
         node_id, changed_at)
         VALUES ($1, $2, $3, 'ACCEPTED', $4, $5, $6, NULL, clock_timestamp())`,
        [tool.upstreamId, tool.id, tool.name, previousSha, tool.pinnedSha256, JSON.stringify(tool.definition)],
      );
      return { result: tool, changed: true };
    });
  }

  private parseTools(report: UpstreamReportInput): ReportedTool[] {
    const byName = new Map<string, ReportedTool>();
    for (const tool of report.tools) {
      let definition: unknown;
      try {
        definition = JSON.parse(tool.definitionJson);
      } catch {
        definition = undefined;
      }
      const parsed = toolDefinitionSchema.safeParse(definition);
      if (!parsed.success || parsed.data.name !== tool.name) {
        this.logger.warn(
          { upstreamId: report.upstreamId, tool: tool.name.slice(0, 128) },
          'ignored a reported tool whose definition is not an MCP Tool object named like it',
        );
        continue;
      }
      byName.set(tool.name, {
        name: tool.name,
        description: parsed.data.description ?? null,
        definition: parsed.data,
        sha256: tool.definitionSha256,
      });
    }
    return [...byName.values()];
  }

  /** The tools upstreams list now (unlisted tools keep their pins but are not shown). */
  async toolsOf(upstreamIds: readonly string[]): Promise<Tool[]> {
    if (upstreamIds.length === 0) return [];
    return this.store.dataSource
      .getRepository(Tool)
      .createQueryBuilder('t')
      .where('t.upstreamId IN (:...ids)', { ids: [...upstreamIds] })
      .andWhere('t.listed')
      .orderBy('t.name', 'ASC')
      .getMany();
  }

  /** Listed tools by name, one page (see `Page`). */
  async allTools(
    filter: { heldBack?: boolean | null } = {},
    page: Page = { first: MAX_PAGE_SIZE, after: null },
  ): Promise<Tool[]> {
    const repository = this.store.dataSource.getRepository(Tool);
    const order = { alias: 't', property: 'name', column: 'name', table: 'tools', what: 'tool' };
    return keysetPage(repository, order, page, (query) => {
      query.andWhere('t.listed');
      if (filter.heldBack === true) query.andWhere('t.pendingSha256 IS NOT NULL');
      if (filter.heldBack === false) query.andWhere('t.pendingSha256 IS NULL');
    });
  }

  async getTool(rawId: string): Promise<Tool | null> {
    const id = parseId(rawId, 'id');
    return this.store.dataSource.getRepository(Tool).findOneBy({ id });
  }

  /** Definition history of each tool, newest first: the newest `perTool` changes of each (one query for all tools). */
  async changesOf(toolIds: readonly string[], perTool: number): Promise<ToolDefinitionChange[]> {
    if (toolIds.length === 0) return [];
    return this.store.dataSource
      .getRepository(ToolDefinitionChange)
      .createQueryBuilder('c')
      .where(
        `c.id IN (SELECT r.id FROM (SELECT h.id, row_number() OVER (PARTITION BY h.tool_id ORDER BY h.changed_at DESC,
         h.id DESC) AS n
           FROM tool_definition_changes h WHERE h.tool_id IN (:...ids)) r WHERE r.n <= :perTool)`,
        { ids: [...toolIds], perTool },
      )
      .orderBy('c.changedAt', 'DESC')
      .addOrderBy('c.id', 'DESC')
      .getMany();
  }

  /** Each upstream's prompts, resources and templates lists, as last reported. */
  async catalogListsOf(upstreamIds: readonly string[]): Promise<UpstreamCatalogList[]> {
    return catalogListsOf(this.store.dataSource, upstreamIds);
  }

  async statusOf(upstreamIds: readonly string[]): Promise<UpstreamNodeStatus[]> {
    if (upstreamIds.length === 0) return [];
    return this.store.dataSource
      .getRepository(UpstreamNodeStatus)
      .createQueryBuilder('s')
      .where('s.upstreamId IN (:...ids)', { ids: [...upstreamIds] })
      .orderBy('s.nodeId', 'ASC')
      .getMany();
  }

  /** Each node's view of every upstream, by node. */
  async statusOfNodes(nodeIds: readonly string[]): Promise<UpstreamNodeStatus[]> {
    if (nodeIds.length === 0) return [];
    return this.store.dataSource
      .getRepository(UpstreamNodeStatus)
      .createQueryBuilder('s')
      .innerJoin('upstreams', 'u', 'u.id = s.upstream_id')
      .where('s.nodeId IN (:...ids)', { ids: [...nodeIds] })
      .orderBy('u.name', 'ASC')
      .getMany();
  }

  /**
   * Logs a warning for each upstream losing exposed names to another (at startup: collisions
   * that arose while this control plane was down, or before the mutations refused them).
   */
  async warnCollisions(): Promise<number> {
    const all = await nameCollisions(this.store.dataSource.manager);
    const names = await this.store.dataSource.manager.query(
      `SELECT id, name FROM upstreams WHERE id = ANY($1::uuid[])`,
      [[...all.keys()]],
    );
    const nameOf = new Map((names as Array<{ id: string; name: string }>).map((row) => [row.id, row.name]));
    for (const [id, list] of all) {
      this.logger.warn(
        { upstream: nameOf.get(id) ?? id, collisions: list.map((c) => c.name) },
        `upstream ${nameOf.get(id) ?? id}: ${collisionError(list)}`,
      );
    }
    return all.size;
  }

  /** Exposed names each upstream loses to an earlier one, per upstream (see `nameCollisions`). */
  async collisions(): Promise<Map<string, { message: string; names: string[] }>> {
    const all = await nameCollisions(this.store.dataSource.manager);
    return new Map(
      [...all].map(([id, list]: [string, NameCollision[]]) => [
        id,
        { message: collisionError(list), names: list.map((c) => c.name) },
      ]),
    );
  }
}
