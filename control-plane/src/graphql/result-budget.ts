import {
  defaultFieldResolver,
  getNullableType,
  isListType,
  isObjectType,
  type GraphQLFieldResolver,
  type GraphQLSchema,
} from 'graphql';
import { PortcullisError } from '../../../common/src/index.ts';

/** `extensions.code` of a request whose answer would hold more list items than the budget. */
export const RESULT_TOO_LARGE = 'RESULT_TOO_LARGE';

/**
 * How many list items one request may resolve, all lists and levels together. Depth and cost
 * limits judge the query's shape; this judges the answer: `upstreams { tools { upstream { tools } } }`
 * is shallow and cheap to validate, but multiplies the tools of every upstream by themselves.
 * Once spent, the list that overdrew it fails (the error names the limit and the fix) and every
 * later list resolves empty, so the rest of the query does no more work.
 */
export class ResultBudget {
  private remaining: number;
  private spent = false;

  constructor(readonly limit: number) {
    this.remaining = limit;
  }

  get exhausted(): boolean {
    return this.spent;
  }

  /** Takes `count` items from the budget; throws RESULT_TOO_LARGE the first time it is overdrawn. */
  charge(count: number, path: string): void {
    this.remaining -= count;
    if (this.remaining >= 0 || this.spent) return;
    this.spent = true;
    throw new PortcullisError(
      RESULT_TOO_LARGE,
      `the answer would hold more than ${this.limit} list items (limit reached at ${path}); select fewer nested ` +
        `lists, ` +
        'page the top-level lists with first/after, or raise --graphql-max-list-items',
      { limit: this.limit },
    );
  }
}

type Resolver = GraphQLFieldResolver<unknown, { budget: ResultBudget }>;
type ResolverMap = Record<string, unknown>;

/**
 * Wraps the resolver of every list-typed field of the schema's object types (default resolvers
 * included) so that each list it returns is charged to the request's ResultBudget.
 */
export function chargeListFields<T extends ResolverMap>(schema: GraphQLSchema, resolvers: T): T {
  const wrapped: ResolverMap = { ...resolvers };
  for (const type of Object.values(schema.getTypeMap())) {
    // Mutations have done their work by the time a list comes back; only reads are budgeted.
    if (!isObjectType(type) || type.name.startsWith('__') || type === schema.getMutationType()) continue;
    for (const field of Object.values(type.getFields())) {
      if (!isListType(getNullableType(field.type))) continue;
      const own: Record<string, unknown> = { ...(wrapped[type.name] as Record<string, unknown> | undefined) };
      const resolve = (own[field.name] as Resolver | undefined) ?? (defaultFieldResolver as Resolver);
      const charged: Resolver = async (parent, args, context, info) => {
        if (context.budget.exhausted) return [];
        const value: unknown = await resolve(parent, args, context, info);
        if (Array.isArray(value)) context.budget.charge(value.length, `${type.name}.${field.name}`);
        return value;
      };
      own[field.name] = charged;
      wrapped[type.name] = own;
    }
  }
  return wrapped as T;
}
