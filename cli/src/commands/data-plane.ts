import { z } from 'zod';
import { createLogger } from '../../../common/src/index.ts';
import { startDataPlane } from '../../../data-plane/src/index.ts';
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
  const options = readOptions(dataPlaneOptionTable, argv, process.env);
  const logger = createLogger({ level: options.logLevel });
  const node = await startDataPlane(dataPlaneOptions(options, { controlPlaneAddress: options.controlPlane, nodeToken: options.nodeToken }, logger));
  process.stdout.write(`Portcullis data plane ${node.nodeId}\n  MCP endpoint: ${node.mcpUrl}\n`);
  closeOnSignals(() => node.close(), logger);
}
