import { join } from 'node:path';
import type { DataSource } from 'typeorm';
import { z } from 'zod';
import { PortcullisError, ErrorCode, startMetricsServer, type Logger } from '../../common/src/index.ts';
import { ControlPlaneMetrics } from './observability/metrics.ts';
import { loadOrCreateAdminToken } from './admin-token.ts';
import { adminOidcSchema, type AdminOidcOptions } from './admins/admin-oidc.ts';
import { InProcessChangeBus, PgNotifyChangeBus, type ConfigChangeBus } from './config/change-bus.ts';
import { SnapshotPublisher } from './config/snapshot-publisher.ts';
import { openDatabase } from './db/data-source.ts';
import { startEmbeddedDatabase, type EmbeddedConnection } from './db/embedded.ts';
import { DEFAULT_DATABASE_TIMEOUTS, type DatabaseTimeouts } from './db/timeouts.ts';
import type { GraphqlLimits } from './graphql/limits.ts';
import { startGraphqlServer } from './graphql/server.ts';
import type { Tracing } from '../../common/src/tracing.ts';
import { ConfigStreamService } from './grpc/config-service.ts';
import { NodeHeartbeat } from './grpc/node-heartbeat.ts';
import { startGrpcServer, type GrpcTls } from './grpc/server.ts';
import { loadSecretBox, sealPlaintextAndCheck } from './secrets/index.ts';
import { AuditStore } from './services/audit-store.ts';
import { createServices } from './services/index.ts';
import { EndedSessionStore } from './services/ended-sessions.ts';
import { ensureSessionKeys } from './services/settings.ts';

export interface ControlPlaneOptions {
  /** `postgres://…` of a real server. Omitted: an embedded database under `dataDir`. */
  databaseUrl?: string;
  /** Postgres schema for every table (created when missing). Default `public`. */
  databaseSchema?: string;
  /** The embedded database (`<dataDir>/pg`) and the generated admin token live here. */
  dataDir: string;
  graphqlHost: string;
  /** 0: OS-assigned (see `ControlPlane.graphqlUrl`). */
  graphqlPort: number;
  grpcHost: string;
  /** 0: OS-assigned (see `ControlPlane.grpcAddress`). */
  grpcPort: number;
  /** Omitted: generated once and kept in `<dataDir>/admin-token` (mode 0600). The bootstrap token: role admin. */
  adminToken?: string;
  /** OIDC sign-in for the GraphQL API (roles from a claim); omitted: admin tokens only. */
  adminOidc?: AdminOidcOptions | undefined;
  /**
   * PORTCULLIS_SECRET_KEY: the AES-256-GCM key sealing upstream credentials at rest, 32 bytes as 64
   * hex characters or base64, optionally `<kid>:<key>` (without a kid, the id is the first 8 hex
   * characters of the key's SHA-256). Every replica needs the same key. Omitted (development):
   * generated once and kept in `<dataDir>/secret-key` (mode 0600).
   */
  secretKey?: string;
  /** PORTCULLIS_SECRET_KEYS_PREVIOUS (comma-separated): earlier keys, same forms; they still decrypt, never encrypt. */
  previousSecretKeys?: string[];
  /**
   * Shared secret data-plane nodes present on the config stream. Required unless `grpcTls.clientCa`
   * is given (nodes are then authenticated by certificate; with both, nodes need both).
   */
  nodeToken?: string;
  /** TLS of the config stream (and mTLS with `clientCa`); plaintext when omitted. */
  grpcTls?: GrpcTls;
  /** How often this replica marks its connected nodes as seen (ms). Default 15000. */
  nodeHeartbeatIntervalMs?: number;
  logger: Logger;
  /** How long connecting to the database (or waiting for a pooled connection) may take (ms). Default 5000. */
  databaseConnectTimeoutMs?: number;
  /** How long one statement, and one whole configuration change, may take (ms). Default 10000. */
  databaseStatementTimeoutMs?: number;
  /** How long the database lets a transaction sit idle before ending it (ms). Default 10000. */
  databaseIdleInTransactionTimeoutMs?: number;
  /** How often the revision is re-read as a safety net for lost announcements (ms). Default 5000. */
  snapshotPollIntervalMs?: number;
  /** How often ended sessions past their expiry are deleted from the database (ms). Default 600000. */
  endedSessionPruneIntervalMs?: number;
  /** How long nodes' ACKs wait to be stored together (ms). Default ACK_WINDOW_MS (25). */
  ackWindowMs?: number;
  /** Audit records are kept this many whole days, then their day partitions dropped (hourly). Omitted: kept forever. */
  auditRetentionDays?: number;
  /** What one GraphQL request may ask for; omitted fields: DEFAULT_GRAPHQL_LIMITS. */
  graphqlLimits?: Partial<GraphqlLimits>;
  /** Serve Prometheus metrics on this address (off when undefined; never on the GraphQL port). */
  metricsListen?: { host: string; port: number; token?: string } | undefined;
  /** Spans of GraphQL requests and audit ingest (OpenTelemetry; see common/src/tracing.ts); undefined: none. */
  tracing?: Tracing | undefined;
}

export interface ControlPlane {
  /** `http://host:port/graphql` */
  readonly graphqlUrl: string;
  /** `host:port` of the gRPC ConfigService. */
  readonly grpcAddress: string;
  /** The admin token in force (given, or read from / generated into `<dataDir>/admin-token`). */
  readonly adminToken: string;
  /** The database URL in use; for the embedded database a placeholder (it is reachable only in process). */
  readonly databaseUrl: string;
  /** Id of the secret key sealing new credentials (never the key). */
  readonly secretKeyId: string;
  /** `http://host:port/metrics` when metricsListen was given. */
  readonly metricsUrl: string | undefined;
  close(): Promise<void>;
}

const port = z
  .number()
  .int('must be an integer port')
  .min(0, 'must be 0 (OS-assigned) to 65535')
  .max(65535, 'must be 0 (OS-assigned) to 65535');
const optionsSchema = z.object({
  databaseUrl: z
    .string()
    .refine(
      (value) => URL.canParse(value) && /^postgres(ql)?:$/.test(new URL(value).protocol),
      'must be a postgres:// URL, e.g. postgres://user@127.0.0.1:5432/portcullis',
    )
    .optional(),
  databaseSchema: z.string().optional(),
  dataDir: z
    .string()
    .min(1, 'is empty; give a directory for the embedded database and generated secrets, e.g. ./.portcullis/data'),
  graphqlHost: z.string().min(1, 'is empty; e.g. 127.0.0.1'),
  graphqlPort: port,
  grpcHost: z.string().min(1, 'is empty; e.g. 127.0.0.1'),
  grpcPort: port,
  adminToken: z
    .string()
    .min(16, 'is shorter than 16 characters; use a long random token (or omit it to have one generated)')
    .optional(),
  adminOidc: adminOidcSchema.optional(),
  secretKey: z
    .string()
    .min(1, 'is empty; give 32 bytes as hex or base64 (openssl rand -base64 32), or omit it to have one generated')
    .optional(),
  previousSecretKeys: z.array(z.string().min(1, 'is empty; remove the empty entry')).optional(),
  nodeToken: z
    .string()
    .min(16, 'is shorter than 16 characters; use a long random token shared with the data-plane nodes')
    .optional(),
  grpcTls: z
    .object({
      certChain: z.instanceof(Buffer),
      privateKey: z.instanceof(Buffer),
      clientCa: z.instanceof(Buffer).optional(),
    })
    .optional(),
  nodeHeartbeatIntervalMs: z.number().int().min(10, 'must be at least 10 ms').optional(),
  databaseConnectTimeoutMs: z.number().int().min(100, 'must be at least 100 ms').optional(),
  databaseStatementTimeoutMs: z.number().int().min(100, 'must be at least 100 ms').optional(),
  databaseIdleInTransactionTimeoutMs: z.number().int().min(100, 'must be at least 100 ms').optional(),
  snapshotPollIntervalMs: z.number().int().min(0).optional(),
  endedSessionPruneIntervalMs: z.number().int().min(1, 'must be at least 1 ms').optional(),
  auditRetentionDays: z.number().int().min(1, 'must be at least 1 day').optional(),
  ackWindowMs: z
    .number()
    .int()
    .min(0)
    .max(60_000, 'must be at most 60000 ms: an ACK is stored at most this late')
    .optional(),
});

function isLoopback(host: string): boolean {
  return host === 'localhost' || host.startsWith('127.') || host === '::1' || host === '[::1]';
}

/** Starts the control plane: database (and migrations), config stream, GraphQL API. */
export async function startControlPlane(options: ControlPlaneOptions): Promise<ControlPlane> {
  const parsed = optionsSchema.safeParse(options);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = issue?.path.map(String).join('.') ?? 'options';
    throw new PortcullisError(
      ErrorCode.BAD_CONFIG,
      `control plane option ${field}: ${issue?.message ?? 'is invalid'}`,
      { field },
    );
  }
  if (options.nodeToken === undefined && options.grpcTls?.clientCa === undefined) {
    throw new PortcullisError(
      ErrorCode.BAD_CONFIG,
      'control plane option nodeToken: is required unless nodes are authenticated by client certificate ' +
        '(grpcTls.clientCa)',
      { field: 'nodeToken' },
    );
  }
  const started = performance.now();
  const logger = options.logger.child({ plane: 'control' });
  const cleanups: Array<() => Promise<void>> = [];
  const closeAll = async () => {
    for (const cleanup of cleanups.reverse()) {
      try {
        await cleanup();
      } catch (error) {
        logger.warn(
          { err: error instanceof Error ? error.message : String(error) },
          'control plane shutdown step failed',
        );
      }
    }
    cleanups.length = 0;
  };

  try {
    const adminToken = options.adminToken ?? (await loadOrCreateAdminToken(options.dataDir));
    const { box, generatedPath } = await loadSecretBox(options);
    const schema = options.databaseSchema ?? 'public';

    let connection: { url: string; stream?: EmbeddedConnection['stream'] } | undefined =
      options.databaseUrl === undefined ? undefined : { url: options.databaseUrl };
    const embedded = connection === undefined;
    if (connection === undefined) {
      const database = await startEmbeddedDatabase({ dataDir: join(options.dataDir, 'pg') });
      cleanups.push(() => database.close());
      connection = database.connection;
    }
    const databaseUrl = connection.url;

    const timeouts: DatabaseTimeouts = {
      connectMs: options.databaseConnectTimeoutMs ?? DEFAULT_DATABASE_TIMEOUTS.connectMs,
      statementMs: options.databaseStatementTimeoutMs ?? DEFAULT_DATABASE_TIMEOUTS.statementMs,
      idleInTransactionMs: options.databaseIdleInTransactionTimeoutMs ?? DEFAULT_DATABASE_TIMEOUTS.idleInTransactionMs,
    };
    const dataSource: DataSource = await openDatabase({
      ...connection,
      schema,
      poolSize: embedded ? 1 : 10,
      embedded,
      timeouts,
    });
    cleanups.push(() => dataSource.destroy());
    await ensureSessionKeys(dataSource);
    const secrets = await sealPlaintextAndCheck(dataSource.manager, box);
    if (generatedPath !== undefined && !embedded) {
      logger.warn(
        { path: generatedPath, kid: box.currentKid },
        'no secretKey given: upstream credentials are encrypted with a key generated into the data directory; set ' +
          'PORTCULLIS_SECRET_KEY (the same on every replica) in production',
      );
    }
    if (secrets.sealed > 0)
      logger.info(
        { count: secrets.sealed, kid: box.currentKid },
        'encrypted upstream credentials stored in plaintext by an earlier version',
      );
    if (secrets.underPreviousKeys > 0)
      logger.info(
        { count: secrets.underPreviousKeys, kid: box.currentKid },
        'some upstream credentials are under previous secret keys; run the rotateSecrets mutation to re-encrypt ' +
          'them under the current one',
      );

    const changes: ConfigChangeBus = embedded
      ? new InProcessChangeBus()
      : await PgNotifyChangeBus.start({ url: databaseUrl, schema, logger });
    cleanups.push(() => changes.close());

    const services = createServices({ dataSource, changes, changeTimeoutMs: timeouts.statementMs }, box, logger);
    // Tools that nodes do not expose because another upstream took their names: say so at startup too.
    await services.catalog.warnCollisions();
    const metrics = new ControlPlaneMetrics();
    const publisher = new SnapshotPublisher({
      dataSource,
      changes,
      box,
      logger,
      onPublished: (version, buildMs) =>
        metrics.snapshotPublished(version, buildMs === undefined ? undefined : buildMs / 1000),
      pollIntervalMs: options.snapshotPollIntervalMs ?? 5000,
    });
    cleanups.push(() => publisher.close());
    await publisher.start();

    const endedSessions = await EndedSessionStore.start(
      dataSource,
      logger,
      options.endedSessionPruneIntervalMs === undefined ? {} : { pruneIntervalMs: options.endedSessionPruneIntervalMs },
    );
    cleanups.push(() => endedSessions.close());

    const auditStore = new AuditStore(dataSource, logger, services.auditFeed, !embedded);
    const retentionDays = options.auditRetentionDays;
    if (retentionDays !== undefined) {
      const applyRetention = () =>
        auditStore
          .dropBefore(new Date(Date.now() - retentionDays * 24 * 60 * 60 * 1000))
          .catch((error: unknown) => logger.warn({ err: error }, 'audit retention failed; tried again in an hour'));
      void applyRetention();
      const retention = setInterval(applyRetention, 60 * 60 * 1000);
      retention.unref();
      cleanups.push(async () => clearInterval(retention));
    }
    const streams = new ConfigStreamService({
      nodeToken: options.nodeToken,
      publisher,
      nodes: services.nodes,
      catalog: services.catalog,
      logger,
      relayBus: changes,
      endedSessions,
      ackWindowMs: options.ackWindowMs,
      budgets: services.budgets,
      approvals: services.approvals,
      audit: auditStore,
      metrics,
      tracing: options.tracing,
    });
    metrics.configStreams({ liveNodes: () => new Set(streams.liveStreams().map((s) => s.nodeId)).size });
    metrics.approvals(services.approvals);
    metrics.auditInsertRetries(auditStore);
    const grpc = await startGrpcServer(streams, options.grpcHost, options.grpcPort, options.grpcTls);
    cleanups.push(() => grpc.close());
    if (options.grpcTls === undefined && !isLoopback(options.grpcHost)) {
      logger.warn(
        { grpcHost: options.grpcHost },
        'the config stream carries every upstream credential and the session signing key in plaintext on a ' +
          'non-loopback address; give the control plane a certificate (grpcTls) or keep the network private',
      );
    }
    if (options.nodeHeartbeatIntervalMs !== undefined)
      services.nodes.heartbeatIntervalMs = options.nodeHeartbeatIntervalMs;
    const heartbeat = new NodeHeartbeat(
      services.nodes,
      () => streams.liveStreams(),
      logger,
      services.nodes.heartbeatIntervalMs,
    );
    cleanups.push(() => heartbeat.close());

    const graphql = await startGraphqlServer({
      host: options.graphqlHost,
      port: options.graphqlPort,
      adminToken,
      ...(options.adminOidc === undefined ? {} : { adminOidc: options.adminOidc }),
      services,
      logger,
      limits: options.graphqlLimits,
      metrics,
      tracing: options.tracing,
    });
    cleanups.push(() => graphql.close());
    const metricsServer =
      options.metricsListen === undefined
        ? undefined
        : await startMetricsServer({ ...options.metricsListen, metrics, logger });
    if (metricsServer !== undefined) cleanups.push(() => metricsServer.close());

    logger.info(
      {
        graphqlUrl: graphql.url,
        grpcAddress: grpc.address,
        metricsUrl: metricsServer?.url,
        database: embedded ? 'embedded' : 'postgres',
        schema,
        configVersion: publisher.current().version,
        ms: Math.round(performance.now() - started),
      },
      'control plane ready',
    );
    let closing: Promise<void> | undefined;
    return {
      graphqlUrl: graphql.url,
      grpcAddress: grpc.address,
      adminToken,
      databaseUrl,
      secretKeyId: box.currentKid,
      metricsUrl: metricsServer?.url,
      close() {
        closing ??= closeAll().then(() => logger.info('control plane stopped'));
        return closing;
      },
    };
  } catch (error) {
    await closeAll();
    throw error;
  }
}
