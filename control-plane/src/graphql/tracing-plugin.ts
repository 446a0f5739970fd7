import type { ApolloServerPlugin } from '@apollo/server';
import type { TraceSpan, Tracing } from '../../../common/src/tracing.ts';
import type { GraphqlContext } from './context.ts';

/**
 * One span (kind SERVER) per GraphQL request over HTTP, continuing the caller's `traceparent` header:
 * named `graphql <operation type>` once the operation is known (`graphql` when it never parsed), with
 * the operation's type and name, and status ERROR when the response carries errors.
 */
export function traceOperations(tracing: Tracing): ApolloServerPlugin<GraphqlContext> {
  return {
    async requestDidStart({ request }) {
      const span: TraceSpan = tracing.request('graphql', request.http?.headers.get('traceparent'), {
        'graphql.operation.name': request.operationName ?? undefined,
      });
      return {
        async didResolveOperation({ operation, operationName }) {
          if (operation === undefined) return;
          span.rename(`graphql ${operation.operation}`);
          span.annotate({
            'graphql.operation.type': operation.operation,
            'graphql.operation.name': operationName ?? undefined,
          });
        },
        async willSendResponse({ errors }) {
          const first = errors?.[0];
          if (first !== undefined)
            span.fail(first.message, {
              'graphql.error.code': String(first.extensions?.['code'] ?? 'INTERNAL_SERVER_ERROR'),
            });
          span.end();
        },
      };
    },
  };
}
