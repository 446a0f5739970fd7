import 'reflect-metadata';
import type { Duplex } from 'node:stream';
import pg from 'pg';
import { DataSource } from 'typeorm';
import { PortcullisError, ErrorCode } from '../../../common/src/index.ts';
import { ENTITIES } from './entities.ts';
import { DEFAULT_DATABASE_TIMEOUTS, poolTimeoutOptions, type DatabaseTimeouts } from './timeouts.ts';
import { Initial1732500000000 } from './migrations/1732500000000-initial.ts';
import { UpstreamSettingsAndPinning1733000000000 } from './migrations/1733000000000-upstream-settings-and-pinning.ts';
import { VirtualKeyChangeStamps1733500000000 } from './migrations/1733500000000-virtual-key-change-stamps.ts';
import { EndedSessions1734100000000 } from './migrations/1734100000000-ended-sessions.ts';
import { UpstreamCatalogLists1734200000000 } from './migrations/1734200000000-upstream-catalog-lists.ts';
import { ConfigChangeDeadline1734300000000 } from './migrations/1734300000000-config-change-deadline.ts';
import { UpstreamProtocolVersion1796324238367 } from './migrations/1796324238367-upstream-protocol-version.ts';
import { AuditEvents1797000000000 } from './migrations/1797000000000-audit-events.ts';
import { AdminTokens1797200000000 } from './migrations/1797200000000-admin-tokens.ts';
import { IdentitiesAndKeyLifecycle1797100000000 } from './migrations/1797100000000-identities-and-key-lifecycle.ts';
import { ToolPrices1797100000001 } from './migrations/1797100000001-tool-prices.ts';
import { Budgets1797100000002 } from './migrations/1797100000002-budgets.ts';
import { ExecutionPolicies1797300000000 } from './migrations/1797300000000-execution-policies.ts';
import { Approvals1797300000001 } from './migrations/1797300000001-approvals.ts';
import { CodeMode1797400000000 } from './migrations/1797400000000-code-mode.ts';
import { AuditModelCost1797600000000 } from './migrations/1797600000000-audit-model-cost.ts';
import { ManagedObjects1797700000000 } from './migrations/1797700000000-managed-objects.ts';
import { ApprovalVia1797800000000 } from './migrations/1797800000000-approval-via.ts';
import { BudgetAuditedSpend1798000000000 } from './migrations/1798000000000-budget-audited-spend.ts';
import { AuditContent1798200000000 } from './migrations/1798200000000-audit-content.ts';
import { AuditTimePrimaryKey1798300000000 } from './migrations/1798300000000-audit-time-primary-key.ts';
import { AuditChainGaps1798400000000 } from './migrations/1798400000000-audit-chain-gaps.ts';

/** Versioned migrations, in order. Append; never edit one that has shipped. */
export const MIGRATIONS = [
  Initial1732500000000,
  UpstreamSettingsAndPinning1733000000000,
  VirtualKeyChangeStamps1733500000000,
  EndedSessions1734100000000,
  UpstreamCatalogLists1734200000000,
  ConfigChangeDeadline1734300000000,
  UpstreamProtocolVersion1796324238367,
  AuditEvents1797000000000,
  IdentitiesAndKeyLifecycle1797100000000,
  ToolPrices1797100000001,
  Budgets1797100000002,
  AdminTokens1797200000000,
  ExecutionPolicies1797300000000,
  Approvals1797300000001,
  CodeMode1797400000000,
  AuditModelCost1797600000000,
  ManagedObjects1797700000000,
  ApprovalVia1797800000000,
  BudgetAuditedSpend1798000000000,
  AuditContent1798200000000,
  AuditTimePrimaryKey1798300000000,
  AuditChainGaps1798400000000,
];

const SCHEMA_PATTERN = /^[a-z_][a-z0-9_]{0,62}$/;

export interface OpenDatabaseOptions {
  /** `postgres://…` connection URL. */
  url: string;
  /** Opens each connection in process instead of over the network (the embedded database). */
  stream?: () => Duplex;
  /** Postgres schema holding every table; created when missing. Default `public`. */
  schema?: string;
  /** Connections in the pool. The embedded database serializes everything through one session: use 1. */
  poolSize: number;
  /** True for the embedded (PGlite) database: no advisory lock, `search_path` set on its single session. */
  embedded: boolean;
  /**
   * How long to wait on the database (DEFAULT_DATABASE_TIMEOUTS when omitted); migrations have no statement timeout.
   */
  timeouts?: DatabaseTimeouts;
}

/** Checks a schema name before it is quoted into SQL. */
export function validateSchemaName(schema: string): string {
  if (!SCHEMA_PATTERN.test(schema)) {
    throw new PortcullisError(
      ErrorCode.BAD_CONFIG,
      `databaseSchema "${schema}" is not a plain lower-case identifier; use letters a-z, digits and "_" (at most 63 ` +
        `characters, not starting with a digit)`,
      { field: 'databaseSchema' },
    );
  }
  return schema;
}

/**
 * Opens the data source and brings its schema up to date. On a real server, migrations run under an
 * advisory lock so that replicas starting together do not race.
 */
export async function openDatabase(options: OpenDatabaseOptions): Promise<DataSource> {
  const schema = validateSchemaName(options.schema ?? 'public');
  const timeouts = options.timeouts ?? DEFAULT_DATABASE_TIMEOUTS;
  const lockClient = options.embedded ? undefined : await lockForMigrations(options.url, schema, timeouts.connectMs);
  try {
    // Migrations get a connection of their own without statement timeouts: one may rewrite a large table.
    const migrating = await initialize(options, schema, 1, { connectionTimeoutMillis: timeouts.connectMs });
    try {
      await migrating.runMigrations({ transaction: 'all' });
    } finally {
      await migrating.destroy();
    }
    return await initialize(options, schema, options.poolSize, poolTimeoutOptions(timeouts, !options.embedded));
  } finally {
    if (lockClient) await lockClient.end().catch(() => undefined);
  }
}

/** A data source over the schema (on the embedded database, the schema is made current on its one session). */
async function initialize(
  options: OpenDatabaseOptions,
  schema: string,
  poolSize: number,
  pool: Record<string, unknown>,
): Promise<DataSource> {
  const dataSource = new DataSource({
    type: 'postgres',
    url: options.url,
    schema,
    entities: ENTITIES,
    migrations: MIGRATIONS,
    migrationsTableName: 'migrations',
    migrationsRun: false,
    synchronize: false,
    installExtensions: false,
    poolSize,
    applicationName: 'portcullis-control-plane',
    extra: { ...pool, ...(options.embedded ? { stream: options.stream } : { options: `-c search_path="${schema}"` }) },
    logging: false,
  });
  await dataSource.initialize();
  if (!options.embedded) return dataSource;
  try {
    await dataSource.query(`CREATE SCHEMA IF NOT EXISTS "${schema}"`);
    await dataSource.query(`SET search_path TO "${schema}"`);
    return dataSource;
  } catch (error) {
    await dataSource.destroy().catch(() => undefined);
    throw error;
  }
}

/** Creates the schema if missing and takes the migration lock; ending the client releases it. */
async function lockForMigrations(url: string, schema: string, connectMs: number): Promise<pg.Client> {
  const client = new pg.Client({
    connectionString: url,
    application_name: 'portcullis-migrations',
    connectionTimeoutMillis: connectMs,
  });
  await client.connect();
  try {
    await client.query(`SELECT pg_advisory_lock(hashtext($1))`, [`portcullis.migrations.${schema}`]);
    await client.query(`CREATE SCHEMA IF NOT EXISTS "${schema}"`);
    return client;
  } catch (error) {
    await client.end().catch(() => undefined);
    throw error;
  }
}
