import { GraphQLError, GraphQLScalarType, Kind } from 'graphql';

function parseDate(value: unknown): Date {
  if (typeof value === 'string' && !Number.isNaN(Date.parse(value))) return new Date(value);
  throw new GraphQLError('DateTime must be an ISO 8601 string, e.g. "2026-01-31T12:00:00Z"', {
    extensions: { code: 'BAD_USER_INPUT' },
  });
}

/** DateTime: ISO 8601 strings on the wire, Date inside. */
export const DateTimeScalar = new GraphQLScalarType<Date, string>({
  name: 'DateTime',
  description: 'An ISO 8601 date and time in UTC, e.g. "2026-01-31T12:00:00.000Z".',
  serialize(value) {
    const date = value instanceof Date ? value : new Date(String(value));
    if (Number.isNaN(date.getTime())) throw new GraphQLError('DateTime cannot represent an invalid date');
    return date.toISOString();
  },
  parseValue: parseDate,
  parseLiteral(ast) {
    return parseDate(ast.kind === Kind.STRING ? ast.value : undefined);
  },
});
