import { createLogger, type Logger } from '../../../common/src/index.ts';
import { SOFTWARE_VERSION, startDataPlane, type DataPlane } from '../../../data-plane/src/index.ts';
import { startTracing, type Tracing } from '../../../common/src/tracing.ts';
import { helpText, readOptions } from '../options.ts';
import { closeOnSignals } from './lifecycle.ts';
import { dataPlaneOptions, dataPlaneSettings, logLevel } from './settings.ts';
import {
  controlPlaneConnectionSettings,
  nodeTokenSettings,
  readControlPlaneConnection,
  readNodeToken,
} from './stream-settings.ts';

export const dataPlaneOptionTable = {
  ...controlPlaneConnectionSettings,
  ...nodeTokenSettings,
  ...dataPlaneSettings,
  logLevel,
};

export const dataPlaneHelp = helpText(
  'Usage: portcullis data-plane [options]',
  "Runs one data-plane node: the MCP endpoint agents connect to. It follows the control plane's config stream and " +
    'keeps serving its last snapshot when the control plane is away.',
  dataPlaneOptionTable,
);

export async function runDataPlane(argv: readonly string[]): Promise<void> {
  const { node, logger } = await startDataPlaneFromArgs(argv, process.env);
  closeOnSignals(async () => {
    await node.close();
    await (await processTracing(logger))?.shutdown();
  }, logger);
}

/**
 * One node from `portcullis data-plane` arguments (and environment), started, its endpoint printed
 * (the line scripts wait for). Several may run in one process (bench/src/scenarios/node-group.ts).
 */
export async function startDataPlaneFromArgs(
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
): Promise<{ node: DataPlane; logger: Logger }> {
  const options = readOptions(dataPlaneOptionTable, argv, env);
  // A node with a client certificate may be authenticated by it alone (the control plane decides).
  const nodeToken = readNodeToken(options, options.controlPlaneCert === undefined);
  const connection = readControlPlaneConnection(options, nodeToken);
  const logger = createLogger({ level: options.logLevel });
  const node = await startDataPlane({
    ...dataPlaneOptions(options, connection, logger),
    tracing: await processTracing(logger),
  });
  const metrics = node.metricsUrl === undefined ? '' : `  Metrics:      ${node.metricsUrl}\n`;
  process.stdout.write(`Portcullis data plane ${node.nodeId}\n  MCP endpoint: ${node.mcpUrl}\n${metrics}`);
  return { node, logger };
}

let tracing: Promise<Tracing | undefined> | undefined;

/**
 * The process's OpenTelemetry traces, started once (several nodes may run in one process): on when the
 * standard `OTEL_*` variables name an exporter or an OTLP endpoint, else undefined and no SDK loaded.
 */
export function processTracing(logger: Logger): Promise<Tracing | undefined> {
  tracing ??= startTracing('portcullis-data-plane', SOFTWARE_VERSION, logger);
  return tracing;
}
