import type { VirtualKeyView } from '../../services/virtual-keys.ts';
import { parsePage } from '../../services/pagination.ts';
import type { GraphqlContext, PageArgs } from '../context.ts';
import { accessListResolvers, rateLimitsView } from './teams.ts';

export const virtualKeyResolvers = {
  Query: {
    virtualKeys: (_: unknown, args: PageArgs, ctx: GraphqlContext) => ctx.services.virtualKeys.list(parsePage(args)),
    virtualKey: (_: unknown, args: { id: string }, ctx: GraphqlContext) => ctx.services.virtualKeys.get(args.id),
  },
  Mutation: {
    createVirtualKey: (_: unknown, args: { input: unknown }, ctx: GraphqlContext) =>
      ctx.services.virtualKeys.create(args.input),
    createVirtualKeys: (_: unknown, args: { inputs: unknown[] }, ctx: GraphqlContext) =>
      ctx.services.virtualKeys.createMany(args.inputs),
    revokeVirtualKey: (_: unknown, args: { id: string }, ctx: GraphqlContext) =>
      ctx.services.virtualKeys.revoke(args.id),
    updateVirtualKey: (_: unknown, args: { id: string; input: unknown }, ctx: GraphqlContext) =>
      ctx.services.virtualKeys.update(args.id, args.input),
    rotateVirtualKey: (_: unknown, args: { id: string; gracePeriodSeconds?: number | null }, ctx: GraphqlContext) =>
      ctx.services.virtualKeys.rotate(args.id, args.gracePeriodSeconds),
    setVirtualKeyEnabled: (_: unknown, args: { id: string; enabled: boolean }, ctx: GraphqlContext) =>
      ctx.services.virtualKeys.setEnabled(args.id, args.enabled),
  },
  VirtualKey: {
    team: (key: VirtualKeyView, _: unknown, ctx: GraphqlContext) =>
      key.teamId ? ctx.loaders.team.load(key.teamId) : null,
    revoked: (key: VirtualKeyView) => key.revokedAt !== null,
    expired: (key: VirtualKeyView) => key.expiresAt !== null && key.expiresAt.getTime() <= Date.now(),
    ...accessListResolvers((key: VirtualKeyView) => ({ ...key.access, allowedTools: key.allowedTools })),
    rateLimits: (key: VirtualKeyView) => rateLimitsView(key.rateLimits),
  },
};
