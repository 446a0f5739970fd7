import { readFile } from 'node:fs/promises';
import { ApolloServer } from '@apollo/server';
import { ApolloServerPluginLandingPageDisabled } from '@apollo/server/plugin/disabled';
import fastifyApollo, { fastifyApolloDrainPlugin } from '@as-integrations/fastify';
import Fastify from 'fastify';
import { buildSchema, GraphQLError } from 'graphql';
import type { Logger } from '../../../common/src/index.ts';
import { listenError } from '../listen-error.ts';
import { bearerMatches } from '../auth.ts';
import type { ControlPlaneServices } from '../services/index.ts';
import { createContext, type GraphqlContext } from './context.ts';
import { createErrorFormatter } from './errors.ts';
import { resolvers } from './resolvers/index.ts';

/** The GraphQL contract, at the repository root. */
export const SCHEMA_PATH = new URL('../../../schema.graphql', import.meta.url);

export interface GraphqlServerOptions {
  host: string;
  port: number;
  adminToken: string;
  services: ControlPlaneServices;
  logger: Logger;
}

export interface GraphqlServerHandle {
  /** http://host:port/graphql */
  readonly url: string;
  close(): Promise<void>;
}

/** Apollo Server on fastify: `POST /graphql` (admin token required) and `GET /healthz`. */
export async function startGraphqlServer(options: GraphqlServerOptions): Promise<GraphqlServerHandle> {
  const typeDefs = await readFile(SCHEMA_PATH, 'utf8');
  const app = Fastify({ logger: false, bodyLimit: 1024 * 1024 });
  const apollo = new ApolloServer<GraphqlContext>({
    typeDefs,
    resolvers,
    formatError: createErrorFormatter(buildSchema(typeDefs), options.logger),
    includeStacktraceInErrorResponses: false,
    // The process owner (the CLI) handles signals and closes every part in order; Apollo's own
    // handler would stop only GraphQL and then re-raise the signal.
    stopOnTerminationSignals: false,
    plugins: [fastifyApolloDrainPlugin(app), ApolloServerPluginLandingPageDisabled()],
  });
  await apollo.start();

  app.get('/healthz', async () => ({ status: 'ok' }));
  await app.register(fastifyApollo(apollo), {
    path: '/graphql',
    method: ['POST', 'GET'],
    context: async (request) => {
      if (!bearerMatches(request.headers.authorization, options.adminToken)) {
        throw new GraphQLError('Missing or wrong admin token; send the header "Authorization: Bearer <admin token>"', {
          extensions: { code: 'UNAUTHENTICATED', http: { status: 401 } },
        });
      }
      return createContext(options.services);
    },
  });

  try {
    await app.listen({ host: options.host, port: options.port });
  } catch (error) {
    await apollo.stop().catch(() => undefined);
    throw listenError(error, 'graphqlHost/graphqlPort', `${options.host}:${options.port}`);
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  const urlHost = options.host.includes(':') ? `[${options.host}]` : options.host === '0.0.0.0' ? '127.0.0.1' : options.host;
  let closing: Promise<void> | undefined;
  return {
    url: `http://${urlHost}:${port}/graphql`,
    close() {
      closing ??= (async () => {
        await app.close();
        await apollo.stop();
      })();
      return closing;
    },
  };
}
