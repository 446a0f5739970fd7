import type { Server } from 'node:http';
import type { ExecutionArgs, GraphQLFormattedError, GraphQLSchema, ValidationRule } from 'graphql';
import { GraphQLError, getOperationAST, parse, specifiedRules, validate } from 'graphql';
import type { SubscribePayload } from 'graphql-ws';
import { useServer } from 'graphql-ws/use/ws';
import { WebSocketServer } from 'ws';
import { errorMessage, type Logger } from '../../../common/src/index.ts';
import type { Admin } from '../admins/roles.ts';
import type { ControlPlaneServices } from '../services/index.ts';
import { createContext } from './context.ts';
import { TOO_MANY_SUBSCRIPTIONS } from './subscriptions/event-stream.ts';

/** Subscriptions one connection may hold (all connections together: event-stream.ts MAX_OPEN_STREAMS). */
export const MAX_SUBSCRIPTIONS_PER_CONNECTION = 20;
/** The close code of a refused connection_init (graphql-ws's own Unauthorized code). */
export const CLOSE_UNAUTHENTICATED = 4401;

export interface SubscriptionServerOptions {
  httpServer: Server;
  path: string;
  schema: GraphQLSchema;
  services: ControlPlaneServices;
  /** The same check as an HTTP request's Authorization header. */
  authenticate(authorization: string | undefined): Promise<Admin>;
  /** graphql-armor's rules (depth, cost, aliases, directives), as for HTTP. */
  validationRules: readonly ValidationRule[];
  /** The token limit, as for HTTP (counted while parsing). */
  maxTokens: number;
  maxPayloadBytes: number;
  maxListItems: number;
  logger: Logger;
  formatError(formatted: GraphQLFormattedError, error: unknown): GraphQLFormattedError;
  /** Told of each subscribe message: whether it was accepted (metrics). */
  onSubscribe?: (accepted: boolean) => void;
  /**
   * How often every connection's credential is checked again (default 30 s): a token revoked on
   * another replica, or an OIDC token past its expiry, ends the connection within this time. A
   * token revoked on this replica ends its connections at once.
   */
  recheckMs?: number;
}

type Extra = { admin?: Admin };

/** An authenticated connection: its socket and the credential it signed in with, checked again periodically. */
interface Signed {
  readonly socket: { close(code: number, reason: string): void };
  readonly authorization: string | undefined;
  readonly admin: Admin;
}

const DEFAULT_RECHECK_MS = 30_000;
const REVOKED_REASON = 'UNAUTHENTICATED: the admin token was revoked or has expired';

const refusal = (message: string, code: string) => new GraphQLError(message, { extensions: { code } });

/**
 * graphql-ws on the GraphQL HTTP server and path: subscriptions only (queries and mutations stay on
 * HTTP, with their result budget), authenticated at connection_init, validated with the HTTP
 * limits, and capped per connection and in all. Returns the closer (for the drain at shutdown).
 */
export function startSubscriptionServer(options: SubscriptionServerOptions): { close(): Promise<void> } {
  const wss = new WebSocketServer({
    server: options.httpServer,
    path: options.path,
    maxPayload: options.maxPayloadBytes,
  });
  const rules = [...specifiedRules, ...options.validationRules];
  const signed = new Set<Signed>();
  const end = (connection: Signed) => {
    signed.delete(connection);
    connection.socket.close(CLOSE_UNAUTHENTICATED, REVOKED_REASON);
  };
  const stopListening = options.services.adminTokens.onRevoked((tokenId) => {
    for (const connection of signed) if (connection.admin.tokenId === tokenId) end(connection);
  });
  const recheck = setInterval(() => {
    for (const connection of signed) {
      options.authenticate(connection.authorization).then(
        () => undefined,
        (error: unknown) => {
          // Only a refusal ends a connection; a database away for a moment does not.
          if (error instanceof GraphQLError && error.extensions['code'] === 'UNAUTHENTICATED') end(connection);
        },
      );
    }
  }, options.recheckMs ?? DEFAULT_RECHECK_MS).unref();
  const format = (errors: readonly GraphQLError[]) => errors.map((error) => options.formatError(error.toJSON(), error));
  const disposable = useServer<Record<string, unknown>, Extra>(
    {
      // Never put an internal error's message in a close reason.
      isProd: true,
      schema: options.schema,
      onConnect: async (ctx) => {
        const header = ctx.connectionParams?.['authorization'];
        try {
          const authorization = typeof header === 'string' ? header : undefined;
          const admin = await options.authenticate(authorization);
          ctx.extra.admin = admin;
          const connection: Signed = { socket: ctx.extra.socket, authorization, admin };
          signed.add(connection);
          ctx.extra.socket.once('close', () => signed.delete(connection));
          return true;
        } catch (error) {
          // Only a refusal's own message goes out; anything else (the database away) is not the client's business.
          const refused = error instanceof GraphQLError && error.extensions['code'] === 'UNAUTHENTICATED';
          if (!refused)
            options.logger.warn({ err: errorMessage(error) }, 'a WebSocket admin token could not be checked');
          const message = refused ? error.message : 'the token could not be checked; try again';
          // A close reason holds at most 123 bytes.
          ctx.extra.socket.close(CLOSE_UNAUTHENTICATED, `UNAUTHENTICATED: ${message}`.slice(0, 120));
          return false;
        }
      },
      onSubscribe: (ctx, _id, payload) => {
        const answer = subscribe(ctx, payload);
        options.onSubscribe?.(!Array.isArray(answer));
        return answer;
      },
      onNext: (_ctx, _id, _payload, _args, result) =>
        result.errors ? { ...result, errors: format(result.errors) as unknown as GraphQLError[] } : result,
      onError: (_ctx, _id, _payload, errors) => format(errors),
    },
    wss,
  );
  /** A subscribe message's answer: the execution arguments, or the errors refusing it. */
  function subscribe(
    ctx: { subscriptions: Record<string, unknown>; extra: Extra },
    payload: SubscribePayload,
  ): readonly GraphQLError[] | ExecutionArgs {
    {
      if (Object.keys(ctx.subscriptions).length > MAX_SUBSCRIPTIONS_PER_CONNECTION)
        return [
          refusal(
            `A connection holds at most ${MAX_SUBSCRIPTIONS_PER_CONNECTION} subscriptions; complete one first`,
            TOO_MANY_SUBSCRIPTIONS,
          ),
        ];
      let document: ReturnType<typeof parse>;
      try {
        document = parse(payload.query, { maxTokens: options.maxTokens });
      } catch (error) {
        return [error instanceof GraphQLError ? error : refusal('The query does not parse', 'GRAPHQL_PARSE_FAILED')];
      }
      const errors = validate(options.schema, document, rules);
      if (errors.length > 0) return errors;
      if (getOperationAST(document, payload.operationName)?.operation !== 'subscription')
        return [
          refusal(
            'Only subscriptions go over the WebSocket; send queries and mutations with POST /graphql',
            'BAD_REQUEST',
          ),
        ];
      return {
        schema: options.schema,
        document,
        variableValues: payload.variables,
        operationName: payload.operationName,
        contextValue: createContext(options.services, {
          maxListItems: options.maxListItems,
          admin: ctx.extra.admin as Admin,
        }),
      };
    }
  }
  // Called by the drain plugin and by the server's close: once (ws refuses a second close).
  let closing: Promise<void> | undefined;
  return {
    close() {
      clearInterval(recheck);
      stopListening();
      closing ??= Promise.resolve(disposable.dispose());
      return closing;
    },
  };
}
