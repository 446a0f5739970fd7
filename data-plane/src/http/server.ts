import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { AppliedConfig } from '../config/applied-config.ts';
import { McpDispatcher, type ServerInfo } from '../mcp/dispatcher.ts';
import { RpcErrorCode } from '../mcp/protocol.ts';
import { ToolViews } from '../mcp/tool-views.ts';
import type { ToolRouter } from '../upstream/tool-router.ts';
import { createMcpEndpoint } from './mcp-endpoint.ts';
import { DEFAULT_SSE_KEEP_ALIVE_MS, NotificationStreams } from './notification-streams.ts';
import { sendJson, sendRpcError } from './respond.ts';

export interface DataPlaneServerOptions {
  /** The snapshot being served right now, or undefined before the first one arrived. */
  readonly getConfig: () => AppliedConfig | undefined;
  readonly tools: ToolRouter;
  readonly logger: Logger;
  /** Largest accepted request body; larger ones get 413. */
  readonly maxBodyBytes: number;
  /** What the gateway calls itself in initialize / server/discover. */
  readonly serverInfo: ServerInfo;
  /** Interval of SSE keep-alive comments on GET streams (default 15 s, as the SDK). */
  readonly sseKeepAliveMs?: number;
}

/** The data plane's HTTP server and the hooks the node wiring calls. */
export interface DataPlaneServer {
  /** The node:http server, not listening yet: the caller picks host and port. */
  readonly server: Server;
  /**
   * Call after a new snapshot was swapped in (getConfig() now returns it): notification streams
   * are re-authenticated, ended when their key was revoked or their session key rotated out, and
   * sent `notifications/tools/list_changed` when their key's view of the tools changed.
   */
  configChanged(): void;
  /** How many 2025-era GET notification streams this node holds. */
  readonly notificationStreamCount: number;
  /** Ends the notification streams, stops listening and resolves once every connection is gone. */
  close(): Promise<void>;
}

const HEALTHY = JSON.stringify({ status: 'ok' });
const READY = JSON.stringify({ status: 'ready' });
const NOT_READY = JSON.stringify({ status: 'not_ready', reason: 'no configuration snapshot yet' });
const NOT_FOUND = JSON.stringify({ error: { code: 'NOT_FOUND', message: 'Not found: the MCP endpoint is /mcp' } });

/**
 * Creates (without listening) the HTTP server agents talk to: `POST/GET/DELETE /mcp`, `GET /healthz`,
 * `GET /readyz`. The hot path is node:http plus pre-serialized responses; no SDK server is built
 * per request and nothing about a session is kept in this process, except the GET notification
 * streams it holds open.
 */
export function createDataPlaneServer(options: DataPlaneServerOptions): DataPlaneServer {
  const { getConfig, tools, logger } = options;
  const views = new ToolViews(tools);
  const streams = new NotificationStreams(views, logger, options.sseKeepAliveMs ?? DEFAULT_SSE_KEEP_ALIVE_MS);
  const unsubscribe = views.onChanged(() => streams.toolsChanged());
  const dispatcher = new McpDispatcher({ tools, views, serverInfo: options.serverInfo, logger });
  const mcp = createMcpEndpoint({ getConfig, dispatcher, streams, maxBodyBytes: options.maxBodyBytes, logger });

  function route(req: IncomingMessage, res: ServerResponse): void {
    const url = req.url ?? '/';
    const query = url.indexOf('?');
    const path = query === -1 ? url : url.slice(0, query);
    if (path === '/mcp') {
      mcp(req, res).catch((error: unknown) => {
        logger.error({ err: error }, 'MCP request failed');
        if (!res.headersSent) sendRpcError(res, 500, RpcErrorCode.InternalError, 'Internal error');
        else res.destroy();
      });
      return;
    }
    if (req.method === 'GET' && path === '/healthz') return sendJson(res, 200, HEALTHY);
    if (req.method === 'GET' && path === '/readyz') return getConfig() === undefined ? sendJson(res, 503, NOT_READY) : sendJson(res, 200, READY);
    sendJson(res, 404, NOT_FOUND);
  }

  const server = createServer(route);
  let closing: Promise<void> | undefined;
  return {
    server,
    configChanged: () => streams.configChanged(getConfig()),
    get notificationStreamCount() {
      return streams.size;
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        unsubscribe();
        views.close();
        streams.closeAll();
        if (!server.listening) return resolve();
        server.close(() => resolve());
        server.closeIdleConnections();
      });
      return closing;
    },
  };
}
