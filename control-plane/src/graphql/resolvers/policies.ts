import type { GraphqlContext } from '../context.ts';

/** Execution policy rules: set per scope, shown on the upstream, team or key they belong to. */
export const policyResolvers = {
  Mutation: {
    setToolPolicies: (_: unknown, args: { scope: unknown; rules: unknown }, ctx: GraphqlContext) =>
      ctx.services.executionPolicies.set(args.scope, args.rules),
  },
  Upstream: {
    policies: (upstream: { id: string }, _: unknown, ctx: GraphqlContext) =>
      ctx.loaders.policiesOf('upstream').load(upstream.id),
  },
  Team: {
    policies: (team: { id: string }, _: unknown, ctx: GraphqlContext) => ctx.loaders.policiesOf('team').load(team.id),
  },
  VirtualKey: {
    policies: (key: { id: string }, _: unknown, ctx: GraphqlContext) => ctx.loaders.policiesOf('key').load(key.id),
  },
};
