import { createHash, timingSafeEqual } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ErrorCode, PortcullisError, errorMessage } from './errors.ts';
import type { Logger } from './logger.ts';

/** What a metrics server serves: a Prometheus text exposition (a prom-client registry's, say). */
export interface MetricsSource {
  exposition(): Promise<{ contentType: string; body: string }>;
}

export interface MetricsServerOptions {
  readonly host: string;
  /** 0 picks a free port. */
  readonly port: number;
  /** When set, scrapes must send `Authorization: Bearer <token>` (Prometheus `authorization` config). */
  readonly token?: string;
  readonly metrics: MetricsSource;
  readonly logger: Logger;
}

export interface MetricsServer {
  /** `http://host:port/metrics` */
  readonly url: string;
  close(): Promise<void>;
}

/** Compared as SHA-256 digests in constant time, so neither length nor content leaks through timing. */
function bearerMatches(header: string | undefined, expected: string): boolean {
  const presented = header === undefined ? '' : (/^Bearer\s+(.+)$/i.exec(header.trim())?.[1] ?? '');
  const digest = (value: string) => createHash('sha256').update(value).digest();
  return timingSafeEqual(digest(presented), digest(expected)) && presented.length > 0;
}

/**
 * Prometheus metrics on their own listen address, apart from the agent-facing port and the GraphQL
 * API: what a node or the control plane counts (upstream names, call volumes, config versions) is
 * for operators, not for agents. Both planes serve theirs with it (`--metrics-listen`).
 */
export async function startMetricsServer(options: MetricsServerOptions): Promise<MetricsServer> {
  const { metrics, logger, token } = options;
  const route = (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' || path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('Not found: metrics are at GET /metrics\n');
      return;
    }
    if (token !== undefined && !bearerMatches(req.headers.authorization, token)) {
      res
        .writeHead(401, { 'content-type': 'text/plain', 'www-authenticate': 'Bearer realm="metrics"' })
        .end('Unauthorized: send Authorization: Bearer <metrics token>\n');
      return;
    }
    metrics.exposition().then(
      ({ contentType, body }) => res.writeHead(200, { 'content-type': contentType }).end(body),
      (error: unknown) => {
        logger.error({ err: error }, 'metrics exposition failed');
        res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics unavailable\n');
      },
    );
  };
  const server: Server = createServer(route);
  server.listen(options.port, options.host);
  await Promise.race([once(server, 'listening'), once(server, 'error').then(([error]) => Promise.reject(error))]).catch(
    (error: unknown) => {
      throw new PortcullisError(
        ErrorCode.BAD_CONFIG,
        `metrics listen address ${options.host}:${options.port}: ${errorMessage(error)}; pick a free port ` +
          `(--metrics-listen)`,
        { field: 'metricsListen' },
      );
    },
  );
  const { port } = server.address() as AddressInfo;
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;
  return {
    url: `http://${host}:${port}/metrics`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
