import { readFile } from 'node:fs/promises';
import { ApolloServer, type ApolloServerPlugin } from '@apollo/server';
import type { ControlPlaneMetrics } from '../observability/metrics.ts';
import { ApolloServerPluginLandingPageDisabled } from '@apollo/server/plugin/disabled';
import fastifyApollo, { fastifyApolloDrainPlugin } from '@as-integrations/fastify';
import Fastify, { type FastifyError, type FastifyReply, type FastifyRequest } from 'fastify';
import { makeExecutableSchema } from '@graphql-tools/schema';
import type { Logger } from '../../../common/src/index.ts';
import { listenError } from '../listen-error.ts';
import { AdminOidc, type AdminOidcOptions } from '../admins/admin-oidc.ts';
import { authenticateAdmin } from '../admins/authenticate-admin.ts';
import { guardFields } from '../admins/roles.ts';
import type { ControlPlaneServices } from '../services/index.ts';
import { createContext, type GraphqlContext } from './context.ts';
import { createErrorFormatter } from './errors.ts';
import { armorProtection, DEFAULT_GRAPHQL_LIMITS, PAYLOAD_TOO_LARGE, type GraphqlLimits } from './limits.ts';
import { resolvers } from './resolvers/index.ts';
import { chargeListFields } from './result-budget.ts';
import { traceOperations } from './tracing-plugin.ts';
import { startSubscriptionServer } from './websocket.ts';
import type { Tracing } from '../../../common/src/tracing.ts';

/** The GraphQL contract, at the repository root. */
export const SCHEMA_PATH = new URL('../../../schema.graphql', import.meta.url);

export interface GraphqlServerOptions {
  host: string;
  port: number;
  /** The bootstrap admin token (role admin). */
  adminToken: string;
  /** OIDC sign-in for admins (roles from a claim); undefined: admin tokens only. */
  adminOidc?: AdminOidcOptions;
  services: ControlPlaneServices;
  logger: Logger;
  /** Omitted fields: DEFAULT_GRAPHQL_LIMITS. */
  limits?: Partial<GraphqlLimits>;
  /** Counts requests by operation type and outcome; absent, nothing is counted. */
  metrics?: ControlPlaneMetrics;
  /** A span per GraphQL request (OpenTelemetry, when OTEL_* asks for it); absent, none. */
  tracing?: Tracing | undefined;
}

export interface GraphqlServerHandle {
  /** http://host:port/graphql */
  readonly url: string;
  close(): Promise<void>;
}

/**
 * Apollo Server on fastify: `POST /graphql` (admin token required), subscriptions over graphql-ws
 * on `ws://…/graphql` (the token in connection_init) and `GET /healthz`.
 */
export async function startGraphqlServer(options: GraphqlServerOptions): Promise<GraphqlServerHandle> {
  const typeDefs = await readFile(SCHEMA_PATH, 'utf8');
  const limits: GraphqlLimits = { ...DEFAULT_GRAPHQL_LIMITS, ...options.limits };
  const metrics = options.metrics;
  const app = Fastify({ logger: false, bodyLimit: limits.maxBodyBytes });
  app.setErrorHandler(bodyTooLarge(limits.maxBodyBytes));
  const bare = makeExecutableSchema({ typeDefs });
  const schema = makeExecutableSchema({ typeDefs, resolvers: guardFields(bare, chargeListFields(bare, resolvers)) });
  const armor = armorProtection(limits);
  const adminTokens = options.services.adminTokens;
  const adminOidc = options.adminOidc === undefined ? undefined : new AdminOidc(options.adminOidc);
  const authenticate = (authorization: string | undefined) =>
    authenticateAdmin(authorization, options.adminToken, adminTokens, adminOidc);
  const formatError = createErrorFormatter(schema, options.logger);
  // Subscriptions: graphql-ws on the same server and path (ws://…/graphql).
  const subscriptions = startSubscriptionServer({
    httpServer: app.server,
    path: '/graphql',
    schema,
    services: options.services,
    authenticate,
    validationRules: armor.validationRules,
    maxTokens: limits.maxTokens,
    maxPayloadBytes: limits.maxBodyBytes,
    maxListItems: limits.maxListItems,
    logger: options.logger,
    formatError,
    ...(metrics === undefined
      ? {}
      : { onSubscribe: (accepted: boolean) => metrics.graphqlRequest('subscription', accepted) }),
  });
  const apollo = new ApolloServer<GraphqlContext>({
    schema,
    formatError,
    validationRules: armor.validationRules,
    // graphql-js counts the tokens while it parses, so a huge query stops early (a 400, GRAPHQL_PARSE_FAILED).
    parseOptions: { maxTokens: limits.maxTokens },
    // One operation per request: a JSON array of 1,000 queries would pass every per-query limit.
    allowBatchedHttpRequests: false,
    includeStacktraceInErrorResponses: false,
    // The process owner (the CLI) handles signals and closes every part in order; Apollo's own
    // handler would stop only GraphQL and then re-raise the signal.
    stopOnTerminationSignals: false,
    plugins: [
      fastifyApolloDrainPlugin(app),
      // Ends every subscription and WebSocket before the HTTP server closes.
      { serverWillStart: async () => ({ drainServer: () => subscriptions.close() }) },
      ApolloServerPluginLandingPageDisabled(),
      ...armor.plugins,
      ...(metrics === undefined ? [] : [countRequests(metrics)]),
      ...(options.tracing === undefined ? [] : [traceOperations(options.tracing)]),
    ],
  });
  await apollo.start();

  app.get('/healthz', async () => ({ status: 'ok' }));
  await app.register(fastifyApollo(apollo), {
    path: '/graphql',
    method: ['POST', 'GET'],
    context: async (request) => {
      const admin = await authenticate(request.headers.authorization);
      return createContext(options.services, { maxListItems: limits.maxListItems, admin });
    },
  });

  try {
    await app.listen({ host: options.host, port: options.port });
  } catch (error) {
    await apollo.stop().catch(() => undefined);
    await subscriptions.close().catch(() => undefined);
    throw listenError(error, 'graphqlHost/graphqlPort', `${options.host}:${options.port}`);
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  const urlHost = options.host.includes(':')
    ? `[${options.host}]`
    : options.host === '0.0.0.0'
      ? '127.0.0.1'
      : options.host;
  let closing: Promise<void> | undefined;
  return {
    url: `http://${urlHost}:${port}/graphql`,
    close() {
      closing ??= (async () => {
        // WebSockets first: an upgraded socket would keep the HTTP server from closing.
        await subscriptions.close();
        await app.close();
        await apollo.stop();
      })();
      return closing;
    },
  };
}

/**
 * Fastify refuses a body over `bodyLimit` before anything parses it; answer that refusal in the
 * GraphQL error shape, with the limit and the flag raising it. Other errors keep fastify's answer.
 */
function bodyTooLarge(maxBodyBytes: number) {
  return function onError(error: FastifyError, _request: FastifyRequest, reply: FastifyReply) {
    if (error.code !== 'FST_ERR_CTP_BODY_TOO_LARGE') return reply.send(error);
    return reply.code(413).send({
      errors: [
        {
          message:
            `the request body is over ${maxBodyBytes} bytes; send a smaller request, or raise ` +
            `--graphql-max-body-bytes on the control plane`,
          extensions: { code: PAYLOAD_TOO_LARGE, limit: maxBodyBytes },
        },
      ],
    });
  };
}

/** Counts each HTTP request by its operation type (`unknown` when it never parsed) and whether it had errors. */
function countRequests(metrics: ControlPlaneMetrics): ApolloServerPlugin<GraphqlContext> {
  return {
    async requestDidStart() {
      return {
        async willSendResponse(request) {
          metrics.graphqlRequest(request.operation?.operation ?? 'unknown', (request.errors?.length ?? 0) === 0);
        },
      };
    },
  };
}
