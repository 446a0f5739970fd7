import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { z } from 'zod';
import { createLogger } from '../../../common/src/index.ts';
import { startControlPlane } from '../../../control-plane/src/index.ts';
import { startDataPlane } from '../../../data-plane/src/index.ts';
import { processTracing } from './data-plane.ts';
import { helpText, readOptions } from '../options.ts';
import { persistentSecret } from '../secrets.ts';
import { closeOnSignals } from './lifecycle.ts';
import {
  controlPlaneSettings,
  graphqlLimits,
  dataPlaneOptions,
  dataPlaneSettings,
  logLevel,
  sseOptions,
} from './settings.ts';
import { nodeTokenSettings, readNodeToken } from './stream-settings.ts';

export const devOptionTable = {
  ...controlPlaneSettings,
  ...dataPlaneSettings,
  nodeToken: {
    ...nodeTokenSettings.nodeToken,
    description: `${nodeTokenSettings.nodeToken.description}; generated once and kept in the data dir when unset`,
  },
  nodeTokenFile: nodeTokenSettings.nodeTokenFile,
  logLevel: {
    ...logLevel,
    schema: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('warn'),
    defaultLabel: 'warn',
  },
};

export const devHelp = helpText(
  'Usage: portcullis dev [options]',
  'Runs a whole gateway in one process: the control plane (GraphQL, gRPC) and one data-plane node (MCP). Without ' +
    'DATABASE_URL it keeps an embedded PostgreSQL in the data dir. This is what `npm start` runs.',
  devOptionTable,
);

export async function runDev(argv: readonly string[]): Promise<void> {
  const started = performance.now();
  const options = readOptions(devOptionTable, argv, process.env);
  // Settings that only make sense together are checked before anything starts.
  sseOptions(options);
  const logger = createLogger({ level: options.logLevel });
  const token = readNodeToken(options, false) ?? (await persistentSecret(join(options.dataDir, 'node-token'), 'pcn_'));
  const controlPlane = await startControlPlane({
    ...options,
    graphqlLimits: graphqlLimits(options),
    nodeToken: token,
    logger,
    // One SDK per process: the control plane's spans go out under the same service as the node's.
    tracing: await processTracing(logger),
  });
  const grpcPort = controlPlane.grpcAddress.slice(controlPlane.grpcAddress.lastIndexOf(':') + 1);
  // Plaintext on loopback: both ends are this process, the stream never leaves the host, and nothing
  // but root (who can read this process's memory anyway) can watch loopback traffic. The token
  // still keeps other local users' processes off the stream.
  const connection = { controlPlaneAddress: `127.0.0.1:${grpcPort}`, nodeToken: token };
  const dataPlane = await startDataPlane({
    ...dataPlaneOptions(options, connection, logger),
    tracing: await processTracing(logger),
  });
  // "Running" should mean an agent can connect: wait (briefly) for the node's first configuration.
  await dataPlane.whenConfigured(10_000);
  const database = options.databaseUrl
    ? 'PostgreSQL (DATABASE_URL)'
    : `embedded PostgreSQL in ${join(options.dataDir, 'pg')}`;
  process.stdout.write(
    [
      `Portcullis is running (ready in ${Math.round(performance.now() - started)} ms)`,
      `  MCP endpoint (agents):  ${dataPlane.mcpUrl}`,
      `  GraphQL API (admin):    ${controlPlane.graphqlUrl}`,
      `  gRPC config stream:     ${controlPlane.grpcAddress} (plaintext, loopback)`,
      ...(dataPlane.metricsUrl === undefined ? [] : [`  Metrics:                ${dataPlane.metricsUrl}`]),
      `  Database:               ${database}`,
      `  Admin token:            ${controlPlane.adminToken}`,
      '',
      'Register an upstream and create a key with GraphQL (see README.md), then point an MCP client',
      `at ${dataPlane.mcpUrl} with "Authorization: Bearer <key>". Ctrl-C stops.`,
      '',
    ].join('\n'),
  );
  closeOnSignals(async () => {
    await dataPlane.close();
    await controlPlane.close();
    await (await processTracing(logger))?.shutdown();
  }, logger);
}
