import type { GraphqlContext } from '../context.ts';

interface AuditEventsArgs {
  filter?: unknown;
  first?: unknown;
  after?: unknown;
}

interface UsageArgs {
  groupBy?: unknown;
  period?: unknown;
  filter?: unknown;
}

export const auditResolvers = {
  Query: {
    auditEvents: (_: unknown, args: AuditEventsArgs, ctx: GraphqlContext) =>
      ctx.services.audit.events(args.filter, args.first, args.after),
    usage: (_: unknown, args: UsageArgs, ctx: GraphqlContext) =>
      ctx.services.audit.usage(args.groupBy, args.period, args.filter),
    runCost: (_: unknown, args: { parentId?: unknown }, ctx: GraphqlContext) =>
      ctx.services.audit.runCost(args.parentId),
    auditSettings: (_: unknown, __: unknown, ctx: GraphqlContext) => ctx.services.auditSettings.get(),
  },
  Mutation: {
    setAuditSettings: (_: unknown, args: { input?: unknown }, ctx: GraphqlContext) =>
      ctx.services.auditSettings.set(args.input ?? {}),
  },
};
