import { matchesAuditFilter } from '../../services/audit-feed.ts';
import type { AuditEventView } from '../../services/audit-queries.ts';
import { parseFilter } from '../../services/audit-queries.ts';
import type { Approval } from '../../services/approvals.ts';
import type { GraphqlContext } from '../context.ts';
import { eventStream } from '../subscriptions/event-stream.ts';

/** Live streams over graphql-ws (`ws://…/graphql`); roles in FIELD_ROLES like every field. */
export const subscriptionResolvers = {
  Subscription: {
    auditEventAdded: {
      subscribe: (_: unknown, args: { filter?: unknown }, ctx: GraphqlContext) => {
        const filter = parseFilter(args.filter);
        return eventStream<AuditEventView>(
          (push) => ctx.services.auditFeed.onStored(push),
          (event) => matchesAuditFilter(filter, event),
        );
      },
      resolve: (event: AuditEventView) => event,
    },
    approvalRequested: {
      subscribe: (_: unknown, _args: unknown, ctx: GraphqlContext) =>
        eventStream<Approval>((push) => ctx.services.approvals.onRequested(push)),
      resolve: (approval: Approval) => approval,
    },
  },
};
