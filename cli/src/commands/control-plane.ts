import { createLogger } from '../../../common/src/index.ts';
import { startTracing } from '../../../common/src/tracing.ts';
import { SOFTWARE_VERSION } from '../../../common/src/version.ts';
import { startControlPlane } from '../../../control-plane/src/index.ts';
import { helpText, readOptions } from '../options.ts';
import { closeOnSignals } from './lifecycle.ts';
import { metricsListenOption, metricsSettings } from './node-health-settings.ts';
import { adminOidc, controlPlaneSettings, graphqlLimits, logLevel } from './settings.ts';
import { grpcTlsSettings, nodeTokenSettings, readGrpcTls, readNodeToken } from './stream-settings.ts';

export const controlPlaneOptionTable = {
  ...controlPlaneSettings,
  ...nodeTokenSettings,
  ...grpcTlsSettings,
  ...metricsSettings,
  logLevel,
};

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
  // Off (no SDK loaded) unless the standard OTEL_* variables name an exporter or an OTLP endpoint.
  const tracing = await startTracing('portcullis-control-plane', SOFTWARE_VERSION, logger);
  const plane = await startControlPlane({
    ...options,
    graphqlLimits: graphqlLimits(options),
    adminOidc: adminOidc(options),
    nodeToken,
    grpcTls,
    metricsListen: metricsListenOption(options),
    logger,
    tracing,
  });
  const security = grpcTls === undefined ? ' (plaintext)' : grpcTls.clientCa === undefined ? ' (TLS)' : ' (mTLS)';
  const adminToken = options.adminToken ? '(as given in --admin-token / PORTCULLIS_ADMIN_TOKEN)' : plane.adminToken;
  process.stdout.write(
    `Portcullis control plane\n  GraphQL:     ${plane.graphqlUrl}\n  gRPC:        ` +
      `${plane.grpcAddress}${security}\n` +
      (plane.metricsUrl === undefined ? '' : `  Metrics:     ${plane.metricsUrl}\n`) +
      `  Admin token: ${adminToken}\n`,
  );
  closeOnSignals(async () => {
    await plane.close();
    await tracing?.shutdown();
  }, logger);
}
