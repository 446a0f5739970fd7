import { randomUUID } from 'node:crypto';
import { status, type ServerDuplexStream, type ServiceError } from '@grpc/grpc-js';
import { PortcullisError, ErrorCode, errorMessage, type Logger } from '../../../common/src/index.ts';
import {
  ConfigServiceService,
  ConnectResponse,
  type ConnectRequest,
  type Snapshot,
} from '../../../proto/gen/portcullis/v1/config.ts';
import { bearerMatches } from '../auth.ts';
import type { SnapshotPublisher } from '../config/snapshot-publisher.ts';
import type { CatalogService } from '../services/catalog.ts';
import type { NodeService } from '../services/nodes.ts';
import { parseNodeMessage, type NodeMessage } from './messages.ts';

export interface ConfigServiceDeps {
  nodeToken: string;
  publisher: SnapshotPublisher;
  nodes: NodeService;
  catalog: CatalogService;
  logger: Logger;
}

type ConnectCall = ServerDuplexStream<ConnectRequest, ConnectResponse>;

/** Encoded once per snapshot and shared by every stream that sends it. */
const encodedSnapshots = new WeakMap<Snapshot, Buffer>();

/**
 * ConfigService's definition with a response serializer that encodes each snapshot once, however
 * many nodes it is sent to.
 */
export const configServiceDefinition = {
  connect: {
    ...ConfigServiceService.connect,
    responseSerialize(value: ConnectResponse): Buffer {
      const snapshot = value.kind?.$case === 'snapshot' ? value.kind.value : undefined;
      if (!snapshot) return Buffer.from(ConnectResponse.encode(value).finish());
      let encoded = encodedSnapshots.get(snapshot);
      if (!encoded) {
        encoded = Buffer.from(ConnectResponse.encode(value).finish());
        encodedSnapshots.set(snapshot, encoded);
      }
      return encoded;
    },
  },
};

const GRPC_STATUS: Record<string, status> = {
  [ErrorCode.BAD_USER_INPUT]: status.INVALID_ARGUMENT,
  [ErrorCode.UNAUTHENTICATED]: status.UNAUTHENTICATED,
  [ErrorCode.FORBIDDEN]: status.PERMISSION_DENIED,
  [ErrorCode.NOT_FOUND]: status.NOT_FOUND,
  [ErrorCode.CONFLICT]: status.ALREADY_EXISTS,
};

/** The ConfigService: one long-lived Connect stream per data-plane node. */
export class ConfigStreamService {
  private readonly streams = new Set<NodeStream>();

  constructor(private readonly deps: ConfigServiceDeps) {}

  readonly implementation = {
    connect: (call: ConnectCall) => this.connect(call),
  };

  private connect(call: ConnectCall): void {
    const authorization = call.metadata.get('authorization')[0];
    if (!bearerMatches(typeof authorization === 'string' ? authorization : undefined, this.deps.nodeToken)) {
      this.deps.logger.warn({ peer: call.getPeer() }, 'refused a config stream with a missing or wrong node token');
      endWithError(call, new PortcullisError(ErrorCode.UNAUTHENTICATED, 'the node token is missing or wrong; send metadata "authorization: Bearer <node token>" with the token the control plane was started with'));
      return;
    }
    const stream = new NodeStream(call, this.deps, () => this.streams.delete(stream));
    this.streams.add(stream);
  }

  /** Waits for every stream's bookkeeping (marking nodes disconnected) after the server went down. */
  async drain(): Promise<void> {
    await Promise.all([...this.streams].map((stream) => stream.finished));
  }
}

function endWithError(call: ConnectCall, error: unknown): void {
  const serviceError: Partial<ServiceError> =
    error instanceof PortcullisError
      ? { code: GRPC_STATUS[error.code] ?? status.INTERNAL, details: GRPC_STATUS[error.code] ? error.message : 'internal error' }
      : { code: status.INTERNAL, details: 'internal error' };
  call.emit('error', serviceError);
}

/** One node's stream: hello, snapshots out, ACKs and upstream reports in. */
class NodeStream {
  private readonly streamId = randomUUID();
  private nodeId: string | undefined;
  private lastSentVersion: bigint | undefined;
  private unsubscribe: (() => void) | undefined;
  /** Messages are handled one at a time, in order. */
  private queue: Promise<void> = Promise.resolve();
  private ended = false;
  private readonly logger: Logger;
  private resolveFinished!: () => void;
  readonly finished = new Promise<void>((resolve) => (this.resolveFinished = resolve));

  constructor(
    private readonly call: ConnectCall,
    private readonly deps: ConfigServiceDeps,
    private readonly onFinished: () => void,
  ) {
    this.logger = deps.logger.child({ stream: this.streamId });
    call.on('data', (message: ConnectRequest) => {
      this.queue = this.queue.then(() => (this.ended ? undefined : this.handle(message))).catch((error: unknown) => this.fail(error));
    });
    call.on('end', () => this.finish(true));
    call.on('cancelled', () => this.finish(false));
    call.on('error', () => this.finish(false));
  }

  private async handle(raw: ConnectRequest): Promise<void> {
    const message = parseNodeMessage(raw);
    if (this.nodeId === undefined && message.kind !== 'hello') {
      throw new PortcullisError(ErrorCode.BAD_USER_INPUT, `kind: the first message on a stream must be hello, not ${message.kind}; send NodeHello first`, { field: 'kind' });
    }
    switch (message.kind) {
      case 'hello':
        return this.hello(message.hello);
      case 'ack':
        await this.deps.nodes.acknowledged(this.nodeId!, message.ack.version, message.ack.accepted, message.ack.error);
        if (!message.ack.accepted) this.logger.warn({ node: this.nodeId, version: message.ack.version, reason: message.ack.error }, 'node refused a config snapshot');
        return;
      case 'upstream': {
        const outcome = await this.deps.catalog.applyReport(this.nodeId!, message.report);
        if (outcome !== 'stored') this.logger.debug({ node: this.nodeId, upstreamId: message.report.upstreamId, outcome }, 'ignored an upstream report');
        return;
      }
    }
  }

  private async hello(hello: Extract<NodeMessage, { kind: 'hello' }>['hello']): Promise<void> {
    if (this.nodeId !== undefined) {
      throw new PortcullisError(ErrorCode.BAD_USER_INPUT, 'hello: a stream carries one hello; open a new stream to reconnect', { field: 'hello' });
    }
    this.nodeId = hello.nodeId;
    await this.deps.nodes.connected(hello, this.streamId);
    this.logger.info({ node: hello.nodeId, softwareVersion: hello.softwareVersion, appliedVersion: hello.appliedVersion }, 'node connected');
    if (this.ended) return;
    this.unsubscribe = this.deps.publisher.subscribe((snapshot) => this.send(snapshot));
    this.send(this.deps.publisher.current());
  }

  private send(snapshot: Snapshot): void {
    const version = BigInt(snapshot.version);
    if (this.ended || (this.lastSentVersion !== undefined && version <= this.lastSentVersion)) return;
    this.lastSentVersion = version;
    this.call.write({ kind: { $case: 'snapshot', value: snapshot } });
  }

  private fail(error: unknown): void {
    if (this.ended) return;
    if (!(error instanceof PortcullisError) || error.code === ErrorCode.INTERNAL) {
      this.logger.error({ node: this.nodeId, err: errorMessage(error) }, 'config stream failed');
    } else {
      this.logger.warn({ node: this.nodeId, code: error.code, err: error.message }, 'config stream refused a message');
    }
    endWithError(this.call, error);
    this.finish(false);
  }

  private finish(clientEnded: boolean): void {
    if (this.ended) return;
    this.ended = true;
    this.unsubscribe?.();
    if (clientEnded) this.call.end();
    const nodeId = this.nodeId;
    this.queue
      .then(async () => {
        if (nodeId === undefined) return;
        await this.deps.nodes.disconnected(nodeId, this.streamId);
        this.logger.info({ node: nodeId }, 'node disconnected');
      })
      .catch((error: unknown) => this.logger.warn({ node: nodeId, err: errorMessage(error) }, 'could not mark a node disconnected'))
      .finally(() => {
        this.onFinished();
        this.resolveFinished();
      });
  }
}
