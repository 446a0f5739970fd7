import type { VirtualKeyView } from '../../services/virtual-keys.ts';
import { parsePage } from '../../services/pagination.ts';
import type { GraphqlContext, PageArgs } from '../context.ts';

export const virtualKeyResolvers = {
  Query: {
    virtualKeys: (_: unknown, args: PageArgs, ctx: GraphqlContext) => ctx.services.virtualKeys.list(parsePage(args)),
  },
  Mutation: {
    createVirtualKey: (_: unknown, args: { input: unknown }, ctx: GraphqlContext) =>
      ctx.services.virtualKeys.create(args.input),
    createVirtualKeys: (_: unknown, args: { inputs: unknown[] }, ctx: GraphqlContext) =>
      ctx.services.virtualKeys.createMany(args.inputs),
    revokeVirtualKey: (_: unknown, args: { id: string }, ctx: GraphqlContext) =>
      ctx.services.virtualKeys.revoke(args.id),
  },
  VirtualKey: {
    team: (key: VirtualKeyView, _: unknown, ctx: GraphqlContext) =>
      key.teamId ? ctx.loaders.team.load(key.teamId) : null,
    revoked: (key: VirtualKeyView) => key.revokedAt !== null,
  },
};
