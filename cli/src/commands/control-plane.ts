import { createLogger } from '../../../common/src/index.ts';
import { startControlPlane } from '../../../control-plane/src/index.ts';
import { helpText, readOptions } from '../options.ts';
import { closeOnSignals } from './lifecycle.ts';
import { adminOidc, controlPlaneSettings, graphqlLimits, logLevel } from './settings.ts';
import { grpcTlsSettings, nodeTokenSettings, readGrpcTls, readNodeToken } from './stream-settings.ts';

export const controlPlaneOptionTable = { ...controlPlaneSettings, ...nodeTokenSettings, ...grpcTlsSettings, logLevel };

export const controlPlaneHelp = helpText(
  'Usage: portcullis control-plane [options]',
  'Runs the control plane: the GraphQL API over PostgreSQL and the gRPC config stream data-plane nodes follow.',
  controlPlaneOptionTable,
);

export async function runControlPlane(argv: readonly string[]): Promise<void> {
  const options = readOptions(controlPlaneOptionTable, argv, process.env);
  const grpcTls = readGrpcTls(options);
  const nodeToken = readNodeToken(options, grpcTls?.clientCa === undefined);
  const logger = createLogger({ level: options.logLevel });
  const plane = await startControlPlane({
    ...options,
    graphqlLimits: graphqlLimits(options),
    adminOidc: adminOidc(options),
    nodeToken,
    grpcTls,
    logger,
  });
  process.stdout.write(
    `Portcullis control plane\n  GraphQL:     ${plane.graphqlUrl}\n  gRPC:        ${plane.grpcAddress}${grpcTls === undefined ? ' (plaintext)' : grpcTls.clientCa === undefined ? ' (TLS)' : ' (mTLS)'}\n  Admin token: ${options.adminToken ? '(as given in --admin-token / PORTCULLIS_ADMIN_TOKEN)' : plane.adminToken}\n`,
  );
  closeOnSignals(() => plane.close(), logger);
}
