import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../../common/src/index.ts';
import type { UpstreamReport } from '../../proto/gen/portcullis/v1/config.ts';
import { ConfigClient } from './config/config-client.ts';
import type { AppliedConfig } from './config/applied-config.ts';
import { createDataPlaneServer } from './http/server.ts';
import type { UpstreamConnection } from './upstream/upstream-connection.ts';
import { UpstreamPool } from './upstream/upstream-pool.ts';

export const SOFTWARE_VERSION = '0.1.0';

export interface DataPlaneOptions {
  /** host:port of the control plane's gRPC config stream. */
  controlPlaneAddress: string;
  nodeToken: string;
  /** Stable node name; defaults to `<hostname>-<port>`. */
  nodeId: string;
  host: string;
  /** 0 picks a free port. */
  port: number;
  maxBodyBytes: number;
  snapshotCache: string | undefined;
  upstreamConnectTimeoutMs: number;
  upstreamCallTimeoutMs: number;
  logger: Logger;
}

export interface DataPlane {
  readonly nodeId: string;
  /** The agents' endpoint, e.g. http://127.0.0.1:8080/mcp */
  readonly mcpUrl: string;
  /** The configuration being served, if any. */
  readonly config: AppliedConfig | undefined;
  close(): Promise<void>;
}

function toReport(connection: UpstreamConnection): UpstreamReport {
  const status = connection.current;
  return {
    upstreamId: connection.config.id,
    configHash: connection.config.configHash,
    state: status.state,
    error: status.error ?? '',
    hasCatalog: status.tools !== undefined,
    tools: (status.tools ?? []).map((tool) => ({ name: tool.name, definitionJson: JSON.stringify(tool), definitionSha256: '' })),
    serverName: status.serverName ?? '',
    serverVersion: status.serverVersion ?? '',
    protocolVersion: status.protocolVersion ?? '',
  };
}

/**
 * Starts one data-plane node: it listens for agents at once (answering 503 until it has a
 * snapshot), follows the control plane's config stream, and keeps its upstream pool in step
 * with each snapshot.
 */
export async function startDataPlane(options: DataPlaneOptions): Promise<DataPlane> {
  const logger = options.logger.child({ plane: 'data', node: options.nodeId });
  let configClient: ConfigClient | undefined;
  const pool = new UpstreamPool({
    clientInfo: { name: 'portcullis', version: SOFTWARE_VERSION },
    timeouts: { connectMs: options.upstreamConnectTimeoutMs, callMs: options.upstreamCallTimeoutMs },
    logger,
    onStatus: (connection) => configClient?.report(toReport(connection)),
  });
  const http = createDataPlaneServer({
    getConfig: () => configClient?.config,
    tools: pool,
    logger,
    maxBodyBytes: options.maxBodyBytes,
    serverInfo: { name: 'portcullis', version: SOFTWARE_VERSION },
  });
  http.server.listen(options.port, options.host);
  await once(http.server, 'listening');
  const address = http.server.address() as AddressInfo;
  const mcpUrl = `http://${options.host.includes(':') ? `[${options.host}]` : options.host}:${address.port}/mcp`;

  configClient = new ConfigClient({
    address: options.controlPlaneAddress,
    nodeToken: options.nodeToken,
    nodeId: options.nodeId,
    softwareVersion: SOFTWARE_VERSION,
    mcpUrl,
    cacheFile: options.snapshotCache,
    logger,
    onApplied: (config) => {
      pool.apply(config.upstreams);
      configClient?.retainReports(new Set(config.upstreams.map((u) => u.id)));
      http.configChanged();
    },
  });
  await configClient.start();
  logger.info({ mcpUrl }, 'data plane listening');

  let closing: Promise<void> | undefined;
  return {
    nodeId: options.nodeId,
    mcpUrl,
    get config() {
      return configClient?.config;
    },
    close() {
      closing ??= (async () => {
        configClient?.close();
        await http.close();
        await pool.close();
      })();
      return closing;
    },
  };
}
