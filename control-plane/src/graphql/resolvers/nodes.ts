import type { DataPlaneNode } from '../../db/entities.ts';
import { parsePage } from '../../services/pagination.ts';
import type { GraphqlContext, PageArgs } from '../context.ts';

/** The newest configuration version, read once per request however many nodes are listed. */
const versionOfRequest = new WeakMap<GraphqlContext, Promise<string>>();
function currentVersion(ctx: GraphqlContext): Promise<string> {
  let version = versionOfRequest.get(ctx);
  if (version === undefined) {
    version = ctx.services.configVersion();
    versionOfRequest.set(ctx, version);
  }
  return version;
}

export const nodeResolvers = {
  Query: {
    nodes: (_: unknown, args: PageArgs, ctx: GraphqlContext) => ctx.services.nodes.list(parsePage(args)),
    config: async (_: unknown, __: unknown, ctx: GraphqlContext) => ({ version: await ctx.services.configVersion() }),
  },
  DataPlaneNode: {
    upstreams: (node: DataPlaneNode, _: unknown, ctx: GraphqlContext) => ctx.loaders.statusOfNode.load(node.id),
    configAgeSeconds: async (node: DataPlaneNode, _: unknown, ctx: GraphqlContext) =>
      ctx.services.nodes.configAgeSeconds(node, await currentVersion(ctx)),
  },
};
