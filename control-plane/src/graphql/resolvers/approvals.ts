import type { Approval, ApprovalStatus } from '../../services/approvals.ts';
import type { GraphqlContext } from '../context.ts';

/**
 * Who decides, as recorded. Every GraphQL request is authenticated with the admin token today;
 * when roles land (issue: OAuth and admin roles), this is the one place that checks the caller has
 * the `operator` (or `admin`) role and names them.
 */
function decider(_ctx: GraphqlContext): string {
  return 'admin';
}

export const approvalResolvers = {
  Query: {
    approvals: (_: unknown, args: { status?: ApprovalStatus | null; first?: number | null }, ctx: GraphqlContext) =>
      ctx.services.approvals.list(args.status ?? undefined, args.first ?? undefined),
  },
  Mutation: {
    approveCall: (_: unknown, args: { id: string; reason?: string | null }, ctx: GraphqlContext) =>
      ctx.services.approvals.decide(args.id, true, args.reason, decider(ctx)),
    denyCall: (_: unknown, args: { id: string; reason?: string | null }, ctx: GraphqlContext) =>
      ctx.services.approvals.decide(args.id, false, args.reason, decider(ctx)),
  },
  Approval: {
    argumentsJson: (approval: Approval) => JSON.stringify(approval.arguments ?? {}),
  },
};
