import type { Approval, ApprovalStatus } from '../../services/approvals.ts';
import type { GraphqlContext } from '../context.ts';

/**
 * Who decided, as recorded: the caller's role and name (the bootstrap admin token, a per-person
 * admin token's name, or a sign-in's subject). Only `admin` and `operator` reach here (FIELD_ROLES).
 */
function decider(ctx: GraphqlContext): string {
  return `${ctx.admin.role}:${ctx.admin.subject}`;
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
