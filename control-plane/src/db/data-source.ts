import 'reflect-metadata';
import pg from 'pg';
import { DataSource } from 'typeorm';
import { PortcullisError, ErrorCode } from '../../../common/src/index.ts';
import { ENTITIES } from './entities.ts';
import { Initial1732500000000 } from './migrations/1732500000000-initial.ts';
import { UpstreamSettingsAndPinning1733000000000 } from './migrations/1733000000000-upstream-settings-and-pinning.ts';
import { VirtualKeyChangeStamps1733500000000 } from './migrations/1733500000000-virtual-key-change-stamps.ts';
import { EndedSessions1734100000000 } from './migrations/1734100000000-ended-sessions.ts';
import { UpstreamCatalogLists1734200000000 } from './migrations/1734200000000-upstream-catalog-lists.ts';
import { UpstreamProtocolVersion1796324238367 } from './migrations/1796324238367-upstream-protocol-version.ts';

/** Versioned migrations, in order. Append; never edit one that has shipped. */
export const MIGRATIONS = [Initial1732500000000, UpstreamSettingsAndPinning1733000000000, VirtualKeyChangeStamps1733500000000, EndedSessions1734100000000, UpstreamCatalogLists1734200000000, UpstreamProtocolVersion1796324238367];

const SCHEMA_PATTERN = /^[a-z_][a-z0-9_]{0,62}$/;

export interface OpenDatabaseOptions {
  /** `postgres://…` connection URL. */
  url: string;
  /** Postgres schema holding every table; created when missing. Default `public`. */
  schema?: string;
  /** Connections in the pool. The embedded database serializes everything through one session: use 1. */
  poolSize: number;
  /** True for the embedded (PGlite) database: no advisory lock, `search_path` set on its single session. */
  embedded: boolean;
}

/** Checks a schema name before it is quoted into SQL. */
export function validateSchemaName(schema: string): string {
  if (!SCHEMA_PATTERN.test(schema)) {
    throw new PortcullisError(
      ErrorCode.BAD_CONFIG,
      `databaseSchema "${schema}" is not a plain lower-case identifier; use letters a-z, digits and "_" (at most 63 characters, not starting with a digit)`,
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
  const lockClient = options.embedded ? undefined : await lockForMigrations(options.url, schema);
  try {
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
      poolSize: options.poolSize,
      applicationName: 'portcullis-control-plane',
      extra: options.embedded ? {} : { options: `-c search_path="${schema}"` },
      logging: false,
    });
    await dataSource.initialize();
    try {
      if (options.embedded) {
        await dataSource.query(`CREATE SCHEMA IF NOT EXISTS "${schema}"`);
        await dataSource.query(`SET search_path TO "${schema}"`);
      }
      await dataSource.runMigrations({ transaction: 'all' });
    } catch (error) {
      await dataSource.destroy().catch(() => undefined);
      throw error;
    }
    return dataSource;
  } finally {
    if (lockClient) await lockClient.end().catch(() => undefined);
  }
}

/** Creates the schema if missing and takes the migration lock; ending the client releases it. */
async function lockForMigrations(url: string, schema: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url, application_name: 'portcullis-migrations' });
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
