import type { GraphQLFormattedError, GraphQLSchema } from 'graphql';
import { isEnumType } from 'graphql';
import { unwrapResolverError } from '@apollo/server/errors';
import { PortcullisError, ErrorCode, errorMessage, type Logger } from '../../../common/src/index.ts';
import { SECRET_UNREADABLE } from '../secrets/index.ts';
import { REVISION_MISMATCH } from '../declarative/apply.ts';
import { DatabaseErrorCode, databaseFailure } from '../db/failures.ts';
import { asLimitRefusal, PAYLOAD_TOO_LARGE, QUERY_LIMIT_EXCEEDED } from './limits.ts';
import { RESULT_TOO_LARGE } from './result-budget.ts';
import { SUBSCRIBER_TOO_SLOW, TOO_MANY_SUBSCRIPTIONS } from './subscriptions/event-stream.ts';

/** Codes whose messages are safe and useful to show; everything else is masked. */
const PUBLIC_CODES = new Set<string>([
  ErrorCode.BAD_USER_INPUT,
  ErrorCode.NOT_FOUND,
  ErrorCode.CONFLICT,
  ErrorCode.UNAUTHENTICATED,
  ErrorCode.FORBIDDEN,
  // The database was away or too slow; the message says whether the change was applied.
  DatabaseErrorCode.UNAVAILABLE,
  DatabaseErrorCode.TIMEOUT,
  // Names the key id and the field, never a value: the operator must fix the control plane's keys.
  SECRET_UNREADABLE,
  // The limit, what was found and the flag raising it: nothing the admin did not send.
  QUERY_LIMIT_EXCEEDED,
  RESULT_TOO_LARGE,
  // Subscriptions: the client read too slowly, or too many are open; the message says the limit.
  SUBSCRIBER_TOO_SLOW,
  TOO_MANY_SUBSCRIPTIONS,
  PAYLOAD_TOO_LARGE,
  // applyConfig: the configuration changed since the plan; the message gives both revisions.
  REVISION_MISMATCH,
  'GRAPHQL_PARSE_FAILED',
  'GRAPHQL_VALIDATION_FAILED',
  'PERSISTED_QUERY_NOT_FOUND',
  'PERSISTED_QUERY_NOT_SUPPORTED',
  'OPERATION_RESOLUTION_FAILURE',
  'BAD_REQUEST',
]);

/**
 * The GraphQL edge of the error model: a PortcullisError becomes `extensions.code` (plus `field`
 * when it names one); GraphQL's own request errors pass through; anything else is logged and
 * shown only as INTERNAL_SERVER_ERROR.
 */
export function createErrorFormatter(schema: GraphQLSchema, logger: Logger) {
  return function formatError(formatted: GraphQLFormattedError, error: unknown): GraphQLFormattedError {
    const unwrapped = unwrapResolverError(error);
    // A read that failed on the database says so (a change says it already, with what became of it).
    const original =
      unwrapped instanceof PortcullisError
        ? unwrapped
        : (databaseFailure(unwrapped, 'try again once it is back') ?? unwrapped);
    if (original instanceof PortcullisError) {
      if (!PUBLIC_CODES.has(original.code)) return mask(formatted, original, logger);
      const field = original.details?.['field'];
      const limit = original.details?.['limit'];
      return {
        message: original.message,
        ...(formatted.locations ? { locations: formatted.locations } : {}),
        ...(formatted.path ? { path: formatted.path } : {}),
        extensions: {
          code: original.code,
          ...(typeof field === 'string' ? { field } : {}),
          ...(typeof limit === 'number' ? { limit } : {}),
        },
      };
    }
    const refusal = asLimitRefusal(formatted);
    if (refusal) return refusal;
    const code = formatted.extensions?.['code'];
    if (typeof code === 'string' && PUBLIC_CODES.has(code)) {
      const { stacktrace: _stacktrace, ...extensions } = formatted.extensions ?? {};
      // Variable coercion errors say where: `Variable "$input" got invalid value … at "input.transport"`.
      const variable = /^Variable "\$(\w+)" got invalid value .*?(?: at "([^"]+)")?;/.exec(formatted.message);
      const field = variable ? (variable[2] ?? variable[1]) : undefined;
      return {
        ...formatted,
        message: explainEnum(formatted.message, schema),
        extensions: { ...extensions, ...(field ? { field } : {}) },
      };
    }
    return mask(formatted, original, logger);
  };
}

function mask(formatted: GraphQLFormattedError, original: unknown, logger: Logger): GraphQLFormattedError {
  logger.error({ err: errorMessage(original), path: formatted.path }, 'GraphQL request failed');
  return {
    message: 'Internal server error; the control plane logged the details',
    ...(formatted.path ? { path: formatted.path } : {}),
    extensions: { code: ErrorCode.INTERNAL },
  };
}

/** Adds the allowed values to GraphQL's "Value X does not exist in Y enum" message. */
function explainEnum(message: string, schema: GraphQLSchema): string {
  const match = /Value "?([^"]*)"? does not exist in "(\w+)" enum/.exec(message);
  const type = match?.[2] ? schema.getType(match[2]) : undefined;
  if (!type || !isEnumType(type)) return message;
  return `${message} Use one of: ${type
    .getValues()
    .map((value) => value.name)
    .join(', ')}.`;
}
