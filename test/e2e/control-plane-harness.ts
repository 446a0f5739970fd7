// Test environment for the control plane's own tests: an in-process control plane on a fresh
// Postgres schema (or the embedded database) and real grpc-js node clients on its config stream.
import { credentials, Metadata, type ClientDuplexStream, type ServiceError } from '@grpc/grpc-js';
import { createLogger } from '../../common/src/index.ts';
import { startControlPlane, type ControlPlane, type ControlPlaneOptions } from '../../control-plane/src/index.ts';
import {
  type AuditAck,
  ConfigServiceClient,
  type ConnectRequest,
  type ConnectResponse,
  type Snapshot,
  type SnapshotDelta,
} from '../../proto/gen/portcullis/v1/config.ts';
import type { TestSchema } from '../support/database.ts';

export const NODE_TOKEN = 'node-token-for-tests-0123456789';
export const ADMIN_TOKEN = 'admin-token-for-tests-0123456789';
/** 32 bytes, hex: the secret key tests seal upstream credentials with. */
export const SECRET_KEY = '4f'.repeat(32);

export function testLogger() {
  return createLogger({ level: process.env['PORTCULLIS_LOG_LEVEL'] ?? 'silent' });
}

/** Starts a control plane on the test schema (ports OS-assigned). */
export async function startOnSchema(
  schema: TestSchema,
  overrides: Partial<ControlPlaneOptions> = {},
): Promise<ControlPlane> {
  return startControlPlane({
    databaseUrl: schema.url,
    databaseSchema: schema.name,
    dataDir: '/nonexistent-unused',
    graphqlHost: '127.0.0.1',
    graphqlPort: 0,
    grpcHost: '127.0.0.1',
    grpcPort: 0,
    adminToken: ADMIN_TOKEN,
    nodeToken: NODE_TOKEN,
    secretKey: SECRET_KEY,
    logger: testLogger(),
    ...overrides,
  });
}

export interface GqlResult<T> {
  status: number;
  data: T | null | undefined;
  errors: Array<{ message: string; extensions?: Record<string, unknown> }> | undefined;
}

export async function gql<T = any>(
  plane: { graphqlUrl: string },
  query: string,
  variables: Record<string, unknown> = {},
  token: string | null = ADMIN_TOKEN,
): Promise<GqlResult<T>> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (token !== null) headers['authorization'] = `Bearer ${token}`;
  const response = await fetch(plane.graphqlUrl, {
    method: 'POST',
    headers,
    body: JSON.stringify({ query, variables }),
  });
  const body = (await response.json()) as { data?: T | null; errors?: GqlResult<T>['errors'] };
  return { status: response.status, data: body.data, errors: body.errors };
}

/** Like `gql`, but throws on any error. */
export async function gqlOk<T = any>(
  plane: { graphqlUrl: string },
  query: string,
  variables: Record<string, unknown> = {},
  token: string = ADMIN_TOKEN,
): Promise<T> {
  const result = await gql<T>(plane, query, variables, token);
  if (result.errors?.length || !result.data)
    throw new Error(`GraphQL failed (${result.status}): ${JSON.stringify(result.errors)}`);
  return result.data;
}

/** A data-plane node's side of the config stream, driven by hand. */
export class TestNode {
  readonly snapshots: Snapshot[] = [];
  readonly deltas: SnapshotDelta[] = [];
  /** Every message received, in order. */
  readonly received: ConnectResponse[] = [];
  /** The status the stream ended with, once it ended. */
  readonly ended: Promise<{ code: number; details: string }>;
  private readonly waiters = new Set<() => void>();
  private readonly client: ConfigServiceClient;
  private readonly call: ClientDuplexStream<ConnectRequest, ConnectResponse>;

  constructor(address: string, token: string) {
    this.client = new ConfigServiceClient(address, credentials.createInsecure());
    const metadata = new Metadata();
    metadata.set('authorization', `Bearer ${token}`);
    this.call = this.client.connect(metadata);
    this.call.on('data', (response: ConnectResponse) => {
      this.received.push(response);
      if (response.kind?.$case === 'snapshot') this.snapshots.push(response.kind.value);
      if (response.kind?.$case === 'delta') this.deltas.push(response.kind.value);
      for (const waiter of this.waiters) waiter();
    });
    this.ended = new Promise((resolve) => {
      this.call.on('error', (error: ServiceError) => resolve({ code: error.code, details: error.details }));
      this.call.on('status', (status) => resolve({ code: status.code, details: status.details }));
    });
  }

  send(message: ConnectRequest): void {
    this.call.write(message);
  }

  hello(
    nodeId: string,
    extra: Partial<{
      mcpUrl: string;
      softwareVersion: string;
      appliedVersion: string;
      acceptsDeltas: boolean;
      nodeTag: string;
    }> = {},
  ): void {
    this.send({
      kind: {
        $case: 'hello',
        value: {
          nodeId,
          mcpUrl: extra.mcpUrl ?? 'http://127.0.0.1:1/mcp',
          softwareVersion: extra.softwareVersion ?? 'test',
          appliedVersion: extra.appliedVersion ?? '',
          acceptsDeltas: extra.acceptsDeltas ?? false,
          nodeTag: extra.nodeTag ?? '',
        },
      },
    });
  }

  /** Resolves with the first received delta matching `predicate` (already received or future). */
  async delta(predicate: (delta: SnapshotDelta) => boolean = () => true, timeoutMs = 5000): Promise<SnapshotDelta> {
    return this.waitFor(
      () => this.deltas.find(predicate),
      timeoutMs,
      () => `no matching delta within ${timeoutMs} ms; received ${this.describeReceived()}`,
    );
  }

  /** What arrived so far, e.g. "snapshot 3, delta 4". */
  describeReceived(): string {
    return (
      this.received
        .map(
          (r) =>
            `${r.kind?.$case ?? 'nothing'} ` +
            `${r.kind !== undefined && 'version' in r.kind.value ? r.kind.value.version : ''}`,
        )
        .join(', ') || 'nothing'
    );
  }

  ack(version: string, accepted = true, error = ''): void {
    this.send({ kind: { $case: 'ack', value: { version, accepted, error } } });
  }

  /** Sends spool lines (rows or objects) as one audit batch. */
  audit(batchId: number, lines: readonly string[]): void {
    const recordsNdjson = Buffer.from(lines.map((line) => `${line}\n`).join(''));
    this.send({ kind: { $case: 'audit', value: { batchId, recordsJson: [], recordsNdjson } } });
  }

  /** Resolves with the acknowledgement of audit batch `batchId` (already received or future). */
  async auditAck(batchId: number, timeoutMs = 10_000): Promise<AuditAck> {
    return this.waitFor(
      () => {
        for (const r of this.received)
          if (r.kind?.$case === 'auditAck' && r.kind.value.batchId === batchId) return r.kind.value;
        return undefined;
      },
      timeoutMs,
      () => `no acknowledgement of audit batch ${batchId} within ${timeoutMs} ms; received ${this.describeReceived()}`,
    );
  }

  /** Resolves with the first received snapshot matching `predicate` (already received or future). */
  async snapshot(predicate: (snapshot: Snapshot) => boolean = () => true, timeoutMs = 5000): Promise<Snapshot> {
    return this.waitFor(
      () => this.snapshots.find(predicate),
      timeoutMs,
      () =>
        `no matching snapshot within ${timeoutMs} ms; received versions ` +
        `${this.snapshots.map((s) => s.version).join(', ') || 'none'}`,
    );
  }

  private async waitFor<T>(found: () => T | undefined, timeoutMs: number, failure: () => string): Promise<T> {
    const existing = found();
    if (existing) return existing;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(failure()));
      }, timeoutMs);
      const check = () => {
        const value = found();
        if (!value) return;
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve(value);
      };
      this.waiters.add(check);
    });
  }

  close(): void {
    this.call.cancel();
    this.client.close();
  }
}
