import type {
  CatalogListKind,
  CatalogSummaryJson,
  PromptSummaryJson,
  ResourceSummaryJson,
  ResourceTemplateSummaryJson,
  Tool,
  ToolDefinitionChange,
  UpstreamCatalogList,
  UpstreamNodeStatus,
} from '../../db/entities.ts';
import { exposedName } from '../../services/exposed-names.ts';
import { DEFAULT_CHANGES, parseFirst, parsePage } from '../../services/pagination.ts';
import type { UpstreamExtras, UpstreamView } from '../../services/upstreams.ts';
import type { GraphqlContext, PageArgs } from '../context.ts';

/** Reported text left empty by the upstream reads as null. */
const orNull = (value: string) => (value === '' ? null : value);

async function listEntries(
  upstream: UpstreamView,
  kind: CatalogListKind,
  ctx: GraphqlContext,
): Promise<CatalogSummaryJson[]> {
  const lists = await ctx.loaders.catalogListsOfUpstream.load(upstream.id);
  return lists.find((list) => list.kind === kind)?.entries ?? [];
}

/** A prompt with the upstream it belongs to (for its exposed name). */
interface PromptView extends PromptSummaryJson {
  upstream: UpstreamView;
}

const summaryFields = {
  title: (entry: { title: string }) => orNull(entry.title),
  description: (entry: { description: string }) => orNull(entry.description),
};

/** createUpstream/updateUpstream input: the upstream's settings, and optionally its execution policy rules. */
type UpstreamInputArgs = { policies?: unknown } & Record<string, unknown>;

/**
 * The `policies` of an upstream's input, validated before anything is written, as a writer of them
 * (replacing the upstream's rules) in the same configuration change; undefined when not given.
 */
function policiesOf(input: UpstreamInputArgs, ctx: GraphqlContext): UpstreamExtras | undefined {
  if (input?.policies == null) return undefined;
  const rules = ctx.services.executionPolicies.parseRules(input.policies, 'upstream', 'input.policies');
  return async (manager, id) => {
    await ctx.services.executionPolicies.replace(manager, { kind: 'upstream', id }, rules);
  };
}

export const upstreamResolvers = {
  Query: {
    upstreams: async (_: unknown, args: PageArgs, ctx: GraphqlContext) => {
      const upstreams = await ctx.services.upstreams.list(parsePage(args));
      // Tools and statuses below point back at these: answer those from what was just read.
      for (const upstream of upstreams) ctx.loaders.upstream.prime(upstream.id, upstream);
      return upstreams;
    },
    upstream: (_: unknown, args: { id: string }, ctx: GraphqlContext) => ctx.services.upstreams.get(args.id),
    tools: (_: unknown, args: PageArgs & { heldBack?: boolean | null }, ctx: GraphqlContext) =>
      ctx.services.catalog.allTools(
        { heldBack: args.heldBack ?? null },
        parsePage({ first: args.first, after: args.after }),
      ),
    tool: (_: unknown, args: { id: string }, ctx: GraphqlContext) => ctx.services.catalog.getTool(args.id),
  },
  Mutation: {
    createUpstream: (_: unknown, args: { input: UpstreamInputArgs }, ctx: GraphqlContext) =>
      ctx.services.upstreams.create(args.input, policiesOf(args.input, ctx)),
    updateUpstream: (_: unknown, args: { id: string; input: UpstreamInputArgs }, ctx: GraphqlContext) =>
      ctx.services.upstreams.update(args.id, args.input, policiesOf(args.input, ctx)),
    setUpstreamEnabled: (_: unknown, args: { id: string; enabled: boolean }, ctx: GraphqlContext) =>
      ctx.services.upstreams.setEnabled(args.id, args.enabled),
    deleteUpstream: (_: unknown, args: { id: string }, ctx: GraphqlContext) => ctx.services.upstreams.delete(args.id),
    acceptToolDefinition: (_: unknown, args: { toolId: string; sha256?: string | null }, ctx: GraphqlContext) =>
      ctx.services.catalog.acceptDefinition(args.toolId, args.sha256),
    rotateSecrets: (_: unknown, __: unknown, ctx: GraphqlContext) => ctx.services.upstreams.rotateSecrets(),
  },
  Upstream: {
    tools: (upstream: UpstreamView, _: unknown, ctx: GraphqlContext) => ctx.loaders.toolsOfUpstream.load(upstream.id),
    prompts: async (upstream: UpstreamView, _: unknown, ctx: GraphqlContext): Promise<PromptView[]> =>
      ((await listEntries(upstream, 'PROMPTS', ctx)) as PromptSummaryJson[]).map((prompt) => ({ ...prompt, upstream })),
    resources: (upstream: UpstreamView, _: unknown, ctx: GraphqlContext) => listEntries(upstream, 'RESOURCES', ctx),
    resourceTemplates: (upstream: UpstreamView, _: unknown, ctx: GraphqlContext) =>
      listEntries(upstream, 'RESOURCE_TEMPLATES', ctx),
    catalogLists: (upstream: UpstreamView, _: unknown, ctx: GraphqlContext) =>
      ctx.loaders.catalogListsOfUpstream.load(upstream.id),
    status: (upstream: UpstreamView, _: unknown, ctx: GraphqlContext) => ctx.loaders.statusOfUpstream.load(upstream.id),
    catalogError: async (upstream: UpstreamView, _: unknown, ctx: GraphqlContext) =>
      (await ctx.loaders.collisions.load(upstream.id))?.message ?? null,
    collidingNames: async (upstream: UpstreamView, _: unknown, ctx: GraphqlContext) =>
      (await ctx.loaders.collisions.load(upstream.id))?.names ?? [],
  },
  Tool: {
    exposedName: async (tool: Tool, _: unknown, ctx: GraphqlContext) => {
      const upstream = await ctx.loaders.upstream.load(tool.upstreamId);
      return exposedName(upstream?.name ?? '?', tool.name, upstream?.exposeUnprefixed ?? false);
    },
    inputSchema: (tool: Tool) => JSON.stringify(tool.definition['inputSchema'] ?? { type: 'object' }),
    definition: (tool: Tool) => JSON.stringify(tool.definition),
    upstream: async (tool: Tool, _: unknown, ctx: GraphqlContext) => ctx.loaders.upstream.load(tool.upstreamId),
    heldBack: (tool: Tool) => tool.pendingSha256 !== null,
    pendingDefinition: (tool: Tool) =>
      tool.pendingDefinition === null ? null : JSON.stringify(tool.pendingDefinition),
    changes: (tool: Tool, args: { first?: number | null }, ctx: GraphqlContext) =>
      ctx.loaders.changesOfTool(parseFirst(args.first, DEFAULT_CHANGES)).load(tool.id),
  },
  UpstreamPrompt: {
    ...summaryFields,
    exposedName: (prompt: PromptView) =>
      exposedName(prompt.upstream.name, prompt.name, prompt.upstream.exposeUnprefixed),
  },
  UpstreamPromptArgument: { description: (argument: { description: string }) => orNull(argument.description) },
  UpstreamResource: {
    ...summaryFields,
    name: (resource: ResourceSummaryJson) => orNull(resource.name),
    mimeType: (resource: ResourceSummaryJson) => orNull(resource.mimeType),
    size: (resource: ResourceSummaryJson) => (resource.size > 0 ? resource.size : null),
  },
  UpstreamResourceTemplate: {
    ...summaryFields,
    name: (template: ResourceTemplateSummaryJson) => orNull(template.name),
    mimeType: (template: ResourceTemplateSummaryJson) => orNull(template.mimeType),
  },
  UpstreamCatalogList: {
    count: (list: UpstreamCatalogList) => list.entries.length,
    truncated: (list: UpstreamCatalogList) => list.total > list.entries.length,
  },
  ToolDefinitionChange: {
    definition: (change: ToolDefinitionChange) =>
      change.definition === null ? null : JSON.stringify(change.definition),
  },
  UpstreamNodeStatus: {
    nodeId: (row: UpstreamNodeStatus) => row.nodeId,
    upstream: (row: UpstreamNodeStatus, _: unknown, ctx: GraphqlContext) => ctx.loaders.upstream.load(row.upstreamId),
  },
};
