import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { freePort, startCli, waitForHttp, type RunningProcess } from './processes.ts';

/** A control plane running as its own process, on ports fixed up front so it can be restarted in place. */
export class ControlPlaneProcess {
  process: RunningProcess | undefined;
  readonly adminToken = `adm_${randomBytes(16).toString('hex')}`;
  readonly nodeToken = `node_${randomBytes(16).toString('hex')}`;

  private constructor(
    readonly databaseUrl: string,
    readonly schema: string,
    readonly graphqlPort: number,
    readonly grpcPort: number,
    private readonly extra: { args?: readonly string[]; env?: NodeJS.ProcessEnv },
  ) {}

  /**
   * `extra.args` are more flags (e.g. TLS); `extra.env` overrides the environment (PORTCULLIS_NODE_TOKEN: '' drops the
   * token).
   */
  static async start(
    databaseUrl: string,
    schema: string,
    extra: { args?: readonly string[]; env?: NodeJS.ProcessEnv } = {},
  ): Promise<ControlPlaneProcess> {
    const plane = new ControlPlaneProcess(databaseUrl, schema, await freePort(), await freePort(), extra);
    await plane.restart();
    return plane;
  }

  get graphqlUrl(): string {
    return `http://127.0.0.1:${this.graphqlPort}/graphql`;
  }

  get grpcAddress(): string {
    return `127.0.0.1:${this.grpcPort}`;
  }

  /** `http://host:port/metrics` when started with `--metrics-listen` (as the running process printed it). */
  get metricsUrl(): string | undefined {
    return /Metrics:\s+(\S+)/.exec(this.process?.log ?? '')?.[1];
  }

  /** Starts (again) on the same ports and database; resolves when GraphQL answers. */
  async restart(): Promise<void> {
    this.process = startCli(
      'control plane',
      [
        'control-plane',
        '--database-url',
        this.databaseUrl,
        '--database-schema',
        this.schema,
        '--graphql-port',
        String(this.graphqlPort),
        '--grpc-port',
        String(this.grpcPort),
        '--admin-token',
        this.adminToken,
        '--log-level',
        'warn',
        ...(this.extra.args ?? []),
      ],
      { PORTCULLIS_NODE_TOKEN: this.nodeToken, ...this.extra.env },
    );
    await ready(this.process, async (child) => {
      await child.waitFor(/GraphQL:/);
      await waitForHttp(`http://127.0.0.1:${this.graphqlPort}/healthz`);
    });
  }

  async stop(): Promise<void> {
    await this.process?.stop();
  }
}

/** A data-plane node running as its own process. */
export class DataPlaneProcess {
  private constructor(
    readonly process: RunningProcess,
    readonly nodeId: string,
    readonly port: number,
    /** `http://host:port/metrics` when the node was started with `--metrics-listen`. */
    readonly metricsUrl: string | undefined,
    /** The node's audit spool directory (a fresh one unless `--audit-spool-dir` was given). */
    readonly spoolDir: string,
    private readonly ownSpool: boolean,
  ) {}

  static async start(
    controlPlane: Pick<ControlPlaneProcess, 'grpcAddress' | 'nodeToken'>,
    nodeId: string,
    extraArgs: readonly string[] = [],
    env: NodeJS.ProcessEnv = {},
  ): Promise<DataPlaneProcess> {
    const port = await freePort();
    const given = extraArgs.indexOf('--audit-spool-dir');
    const spoolDir = given === -1 ? await mkdtemp(join(tmpdir(), 'pcs-spool-')) : extraArgs[given + 1]!;
    const child = startCli(
      `data plane ${nodeId}`,
      [
        'data-plane',
        '--control-plane',
        controlPlane.grpcAddress,
        '--node-id',
        nodeId,
        '--port',
        String(port),
        '--log-level',
        'warn',
        ...(given === -1 ? ['--audit-spool-dir', spoolDir] : []),
        ...extraArgs,
      ],
      { PORTCULLIS_NODE_TOKEN: controlPlane.nodeToken, ...env },
    );
    await ready(child, async () => {
      // Generous: on a loaded machine (shared CI cores) a node's start has taken over 20 s.
      await child.waitFor(/MCP endpoint:/, 60_000);
      await waitForHttp(`http://127.0.0.1:${port}/readyz`);
    });
    return new DataPlaneProcess(child, nodeId, port, /Metrics:\s+(\S+)/.exec(child.log)?.[1], spoolDir, given === -1);
  }

  get mcpUrl(): string {
    return `http://127.0.0.1:${this.port}/mcp`;
  }

  async stop(): Promise<void> {
    await this.process.stop();
    if (this.ownSpool) await rm(this.spoolDir, { recursive: true, force: true });
  }
}

/** Waits until `child` is ready; a child that never gets there is stopped, not left running past the test. */
async function ready(child: RunningProcess, until: (child: RunningProcess) => Promise<void>): Promise<void> {
  try {
    await until(child);
  } catch (error) {
    await child.kill();
    throw error;
  }
}

/** A raw JSON-RPC POST to /mcp, as an agent without an SDK would send it; `headers` add to or override its own. */
export async function postMcp(
  mcpUrl: string | URL,
  body: unknown,
  headers: Record<string, string> = {},
  signal?: AbortSignal,
): Promise<Response> {
  return fetch(mcpUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
    ...(signal ? { signal } : {}),
  });
}

/** A 2025-era initialize request: the cheapest authenticated MCP request. */
export const INITIALIZE = {
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'probe', version: '1' } },
};

/** Whether the node accepts this key right now (200 to an initialize; 401 means refused). */
export async function accepts(mcpUrl: string, key: string): Promise<boolean> {
  const response = await postMcp(mcpUrl, INITIALIZE, { authorization: `Bearer ${key}` });
  await response.body?.cancel();
  if (response.status !== 200 && response.status !== 401) throw new Error(`unexpected status ${response.status}`);
  return response.status === 200;
}
