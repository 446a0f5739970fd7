import { GraphQLScalarType, Kind, type ValueNode } from 'graphql';
import type { GraphqlContext } from '../context.ts';

function literal(ast: ValueNode): unknown {
  switch (ast.kind) {
    case Kind.STRING:
    case Kind.BOOLEAN:
      return ast.value;
    case Kind.INT:
    case Kind.FLOAT:
      return Number(ast.value);
    case Kind.LIST:
      return ast.values.map(literal);
    case Kind.OBJECT:
      return Object.fromEntries(ast.fields.map((field) => [field.name.value, literal(field.value)]));
    default:
      return null;
  }
}

/** JSON: any JSON value, as is (the document's own schema checks it). */
export const JsonScalar = new GraphQLScalarType({
  name: 'JSON',
  serialize: (value) => value,
  parseValue: (value) => value,
  parseLiteral: literal,
});

export const declarativeResolvers = {
  Query: {
    exportConfig: (_: unknown, __: unknown, ctx: GraphqlContext) => ctx.services.config.export(),
  },
  Mutation: {
    applyConfig: (
      _: unknown,
      args: { document: unknown; dryRun?: boolean | null; prune?: boolean | null; expectedRevision?: string | null },
      ctx: GraphqlContext,
    ) =>
      ctx.services.config.apply(args.document, {
        dryRun: args.dryRun ?? false,
        prune: args.prune ?? false,
        expectedRevision: args.expectedRevision ?? null,
      }),
  },
};
