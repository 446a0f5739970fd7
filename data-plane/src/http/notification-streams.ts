import type { ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { AppliedConfig } from '../config/applied-config.ts';
import type { AllowList } from '../policy/allow-list.ts';
import type { ToolViews } from '../mcp/tool-views.ts';

/** Same interval as the SDK's SSE keep-alive comments. */
export const DEFAULT_SSE_KEEP_ALIVE_MS = 15_000;

const LIST_CHANGED_EVENT = `event: message\ndata: ${JSON.stringify({ jsonrpc: '2.0', method: 'notifications/tools/list_changed' })}\n\n`;

interface OpenStream {
  readonly res: ServerResponse;
  /** The presented secret, to re-authenticate the stream against a new snapshot. Never logged. */
  readonly secret: string;
  readonly keyId: string;
  readonly signingKeyId: string;
  allowList: AllowList;
  /** The serialized tool list this stream's agent last could see. */
  lastView: string;
  readonly keepAlive: NodeJS.Timeout;
}

export interface OpenStreamOptions {
  readonly secret: string;
  readonly keyId: string;
  readonly signingKeyId: string;
  readonly allowList: AllowList;
  readonly sessionId: string;
}

/**
 * The 2025-era `GET /mcp` notification streams this node holds. Each stream remembers the tool
 * list its key could last see and is sent `notifications/tools/list_changed` whenever that list
 * changes, be it through the upstream catalog or a new snapshot. A stream whose key is revoked or
 * whose session key was rotated out is ended (the agent re-initializes).
 */
export class NotificationStreams {
  private readonly streams = new Set<OpenStream>();

  constructor(
    private readonly views: ToolViews,
    private readonly logger: Logger,
    private readonly keepAliveMs: number = DEFAULT_SSE_KEEP_ALIVE_MS,
  ) {}

  get size(): number {
    return this.streams.size;
  }

  open(res: ServerResponse, options: OpenStreamOptions): void {
    res.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
      'mcp-session-id': options.sessionId,
    });
    res.flushHeaders();
    const keepAlive = setInterval(() => res.write(': keep-alive\n\n'), this.keepAliveMs);
    keepAlive.unref();
    const stream: OpenStream = {
      res,
      secret: options.secret,
      keyId: options.keyId,
      signingKeyId: options.signingKeyId,
      allowList: options.allowList,
      lastView: this.views.viewFor(options.allowList).json,
      keepAlive,
    };
    this.streams.add(stream);
    res.on('close', () => this.forget(stream));
  }

  /** The merged catalog changed: tell each stream whose visible list changed. */
  toolsChanged(): void {
    for (const stream of this.streams) this.refresh(stream);
  }

  /** A new snapshot is being served: re-authenticate every stream and tell those whose view changed. */
  configChanged(config: AppliedConfig | undefined): void {
    for (const stream of this.streams) {
      const principal = config?.authenticate(stream.secret);
      const stillSigned = config?.sessionKeys.some((k) => k.id === stream.signingKeyId) ?? false;
      if (principal === undefined || principal.keyId !== stream.keyId || !stillSigned) {
        this.logger.info({ keyId: stream.keyId }, 'closing notification stream: key or session no longer valid');
        this.end(stream);
        continue;
      }
      stream.allowList = principal.allowList;
      this.refresh(stream);
    }
  }

  closeAll(): void {
    for (const stream of this.streams) this.end(stream);
  }

  private refresh(stream: OpenStream): void {
    const view = this.views.viewFor(stream.allowList).json;
    if (view === stream.lastView) return;
    stream.lastView = view;
    stream.res.write(LIST_CHANGED_EVENT);
  }

  private end(stream: OpenStream): void {
    this.forget(stream);
    stream.res.end();
  }

  private forget(stream: OpenStream): void {
    clearInterval(stream.keepAlive);
    this.streams.delete(stream);
  }
}
