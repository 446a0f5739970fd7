import { z } from 'zod';
import { createLogger, type Logger } from '../../../common/src/index.ts';
import { startDataPlane, type DataPlane } from '../../../data-plane/src/index.ts';
import { helpText, readOptions } from '../options.ts';
import { closeOnSignals } from './lifecycle.ts';
import { dataPlaneOptions, dataPlaneSettings, logLevel, nodeToken } from './settings.ts';

export const dataPlaneOptionTable = {
  controlPlane: {
    flag: 'control-plane',
    env: 'PORTCULLIS_CONTROL_PLANE',
    description: 'host:port of the control plane gRPC config stream',
    schema: z.string().regex(/^[^\s:]+:\d+$/, 'must be host:port').default('127.0.0.1:4001'),
    defaultLabel: '127.0.0.1:4001',
  },
  nodeToken,
  ...dataPlaneSettings,
  logLevel,
};

export const dataPlaneHelp = helpText('Usage: portcullis data-plane [options]', 'Runs one data-plane node: the MCP endpoint agents connect to. It follows the control plane\'s config stream and keeps serving its last snapshot when the control plane is away.', dataPlaneOptionTable);

export async function runDataPlane(argv: readonly string[]): Promise<void> {
  const { node, logger } = await startDataPlaneFromArgs(argv, process.env);
  closeOnSignals(() => node.close(), logger);
}

/**
 * One node from `portcullis data-plane` arguments (and environment), started, its endpoint printed
 * (the line scripts wait for). Several may run in one process (bench/src/scenarios/node-group.ts).
 */
export async function startDataPlaneFromArgs(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<{ node: DataPlane; logger: Logger }> {
  const options = readOptions(dataPlaneOptionTable, argv, env);
  const logger = createLogger({ level: options.logLevel });
  const node = await startDataPlane(dataPlaneOptions(options, { controlPlaneAddress: options.controlPlane, nodeToken: options.nodeToken }, logger));
  process.stdout.write(`Portcullis data plane ${node.nodeId}\n  MCP endpoint: ${node.mcpUrl}\n`);
  return { node, logger };
}
