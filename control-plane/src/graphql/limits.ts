import type { ApolloServerPlugin } from '@apollo/server';
import { ApolloArmor } from '@escape.tech/graphql-armor';
import { GraphQLError, type GraphQLFormattedError, type ValidationContext, type ValidationRule } from 'graphql';

/** armor's rejection callback (its types package is not a direct dependency). */
type RejectCallback = (context: ValidationContext | null, error: GraphQLError) => void;

/** `extensions.code` of a query refused for its shape (depth, cost, aliases, directives, tokens). */
export const QUERY_LIMIT_EXCEEDED = 'QUERY_LIMIT_EXCEEDED';
/** `extensions.code` of a request body over the size limit (HTTP 413). */
export const PAYLOAD_TOO_LARGE = 'PAYLOAD_TOO_LARGE';

/**
 * What one GraphQL request may ask for. The shape limits are checked before anything runs
 * (graphql-armor validation rules, and its token-counting parser); the list-item budget while
 * the answer is built (see ResultBudget); the body size by the HTTP server before parsing.
 */
export interface GraphqlLimits {
  /** Nesting of selections, the operation's fields counting 1. */
  maxDepth: number;
  /** graphql-armor's cost: each object and scalar field costs, weighted by depth. */
  maxCost: number;
  /** Aliased fields in one operation (each alias of a list re-runs it). */
  maxAliases: number;
  /** Directives in one operation. */
  maxDirectives: number;
  /** Lexical tokens in the query text (counted while parsing, so a huge query stops early). */
  maxTokens: number;
  /** List items the whole answer may hold (all lists, all levels). */
  maxListItems: number;
  /** Bytes of the HTTP request body. */
  maxBodyBytes: number;
}

export const DEFAULT_GRAPHQL_LIMITS: Readonly<GraphqlLimits> = Object.freeze({
  maxDepth: 8,
  maxCost: 5000,
  maxAliases: 30,
  maxDirectives: 20,
  maxTokens: 2000,
  maxListItems: 50_000,
  maxBodyBytes: 1024 * 1024,
});

/** The CLI flag raising each limit, named in refusals. */
const FLAGS: Record<Exclude<keyof GraphqlLimits, 'maxListItems' | 'maxBodyBytes'>, string> = {
  maxDepth: '--graphql-max-depth',
  maxCost: '--graphql-max-cost',
  maxAliases: '--graphql-max-aliases',
  maxDirectives: '--graphql-max-directives',
  maxTokens: '--graphql-max-tokens',
};

/** armor says "Syntax Error: Query depth limit of 8 exceeded, found 11."; keep the facts, add the fix. */
function refusal(limit: keyof typeof FLAGS, armorError: GraphQLError): GraphQLError {
  const facts = armorError.message.replace(/^Syntax Error: /, '');
  return new GraphQLError(`${facts} Ask for less in one request, or raise ${FLAGS[limit]} on the control plane.`, {
    extensions: { code: QUERY_LIMIT_EXCEEDED, limit, http: { status: 400 } },
  });
}

/** Reports a validation-rule refusal as our error (armor's own would say BAD_USER_INPUT). */
function reportAs(limit: keyof typeof FLAGS): { propagateOnRejection: false; onReject: RejectCallback[] } {
  return {
    propagateOnRejection: false,
    onReject: [
      (context, error) => {
        if (context) context.reportError(refusal(limit, error));
      },
    ],
  };
}

/** graphql-armor's protections at these limits, as Apollo plugins and validation rules. */
export function armorProtection(limits: GraphqlLimits): {
  plugins: ApolloServerPlugin[];
  validationRules: ValidationRule[];
} {
  const armor = new ApolloArmor({
    maxDepth: { n: limits.maxDepth, exposeLimits: true, ...reportAs('maxDepth') },
    costLimit: { maxCost: limits.maxCost, exposeLimits: true, ...reportAs('maxCost') },
    maxAliases: { n: limits.maxAliases, exposeLimits: true, ...reportAs('maxAliases') },
    maxDirectives: { n: limits.maxDirectives, exposeLimits: true, ...reportAs('maxDirectives') },
    // Counted by graphql-js's own parser instead (Apollo's `parseOptions`): armor's token plugin throws
    // from a hook Apollo runs outside its parse error handling, so its refusal went out as HTTP 500.
    maxTokens: { enabled: false },
    // "Did you mean …" is useful to an admin and reveals nothing an admin cannot introspect.
    blockFieldSuggestion: { enabled: false },
  });
  const { plugins, validationRules } = armor.protect();
  // armor is built against Apollo's CommonJS typings and we load Apollo as ESM: the same plugin
  // interface in two declaration files, so the compiler needs telling.
  return { plugins: plugins as unknown as ApolloServerPlugin[], validationRules };
}

/** graphql-js's words when a document has more tokens than `maxTokens` (sic: "more that"). */
const TOO_MANY_TOKENS = /^Syntax Error: Document contains more that? (\d+) tokens\./;

/**
 * Apollo re-labels every validation error GRAPHQL_VALIDATION_FAILED, and the parser's token limit
 * is a syntax error (GRAPHQL_PARSE_FAILED): give our refusals their code back, and the token
 * refusal its fix. Undefined for any other error.
 */
export function asLimitRefusal(formatted: GraphQLFormattedError): GraphQLFormattedError | undefined {
  const tokens = TOO_MANY_TOKENS.exec(formatted.message);
  if (tokens)
    return {
      message:
        `Token limit of ${tokens[1]} exceeded. Ask for less in one request, or raise ${FLAGS.maxTokens} ` +
        'on the control plane.',
      extensions: { code: QUERY_LIMIT_EXCEEDED, limit: 'maxTokens' },
    };
  const named = formatted.extensions?.['limit'];
  if (typeof named !== 'string' || !Object.hasOwn(FLAGS, named)) return undefined;
  return { message: formatted.message, extensions: { code: QUERY_LIMIT_EXCEEDED, limit: named } };
}
