import 'reflect-metadata';
import { Column, Entity, PrimaryColumn } from 'typeorm';

// Every column names its `type`: tsx/esbuild emit no decorator metadata for TypeORM to infer it.
// Tables are created by the versioned migrations in ./migrations, never by `synchronize`.

export type TransportName = 'STDIO' | 'STREAMABLE_HTTP' | 'SSE';
export type UpstreamStateName = 'CONNECTING' | 'READY' | 'DEGRADED' | 'DOWN' | 'DISABLED';

/** A name and a (secret) value: an environment variable or an HTTP header. */
export interface KeyValuePair {
  name: string;
  value: string;
}

@Entity({ name: 'teams' })
export class Team {
  @PrimaryColumn({ type: 'uuid' })
  id!: string;

  @Column({ type: 'text' })
  name!: string;

  @Column({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;
}

@Entity({ name: 'upstreams' })
export class Upstream {
  @PrimaryColumn({ type: 'uuid' })
  id!: string;

  @Column({ type: 'text' })
  name!: string;

  @Column({ type: 'text' })
  transport!: TransportName;

  @Column({ type: 'text', nullable: true })
  command!: string | null;

  @Column({ type: 'jsonb' })
  args!: string[];

  @Column({ type: 'jsonb' })
  env!: KeyValuePair[];

  @Column({ type: 'text', nullable: true })
  url!: string | null;

  @Column({ type: 'jsonb' })
  headers!: KeyValuePair[];

  @Column({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;
}

@Entity({ name: 'tools' })
export class Tool {
  @PrimaryColumn({ type: 'uuid' })
  id!: string;

  @Column({ name: 'upstream_id', type: 'uuid' })
  upstreamId!: string;

  @Column({ type: 'text' })
  name!: string;

  @Column({ type: 'text', nullable: true })
  description!: string | null;

  /** The whole MCP Tool object as the upstream listed it. */
  @Column({ type: 'jsonb' })
  definition!: Record<string, unknown>;

  @Column({ name: 'first_seen_at', type: 'timestamptz' })
  firstSeenAt!: Date;

  @Column({ name: 'last_seen_at', type: 'timestamptz' })
  lastSeenAt!: Date;
}

@Entity({ name: 'virtual_keys' })
export class VirtualKey {
  @PrimaryColumn({ type: 'uuid' })
  id!: string;

  @Column({ type: 'text' })
  name!: string;

  /** The first characters of the secret, to tell keys apart. */
  @Column({ type: 'text' })
  prefix!: string;

  /** SHA-256 of the secret; the secret itself is never stored. */
  @Column({ name: 'secret_sha256', type: 'bytea' })
  secretSha256!: Buffer;

  @Column({ name: 'team_id', type: 'uuid', nullable: true })
  teamId!: string | null;

  @Column({ name: 'allowed_tools', type: 'jsonb' })
  allowedTools!: string[];

  @Column({ name: 'revoked_at', type: 'timestamptz', nullable: true })
  revokedAt!: Date | null;

  @Column({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;
}

@Entity({ name: 'data_plane_nodes' })
export class DataPlaneNode {
  /** The node's --node-id. */
  @PrimaryColumn({ type: 'text' })
  id!: string;

  @Column({ name: 'mcp_url', type: 'text', nullable: true })
  mcpUrl!: string | null;

  @Column({ name: 'software_version', type: 'text', nullable: true })
  softwareVersion!: string | null;

  @Column({ type: 'boolean' })
  connected!: boolean;

  /** Identifies the stream the node is connected on, so an old stream ending cannot mark a reconnected node down. */
  @Column({ name: 'stream_id', type: 'uuid', nullable: true })
  streamId!: string | null;

  @Column({ name: 'applied_version', type: 'text', nullable: true })
  appliedVersion!: string | null;

  @Column({ name: 'last_error', type: 'text', nullable: true })
  lastError!: string | null;

  @Column({ name: 'connected_at', type: 'timestamptz', nullable: true })
  connectedAt!: Date | null;

  @Column({ name: 'last_seen_at', type: 'timestamptz' })
  lastSeenAt!: Date;
}

@Entity({ name: 'upstream_node_status' })
export class UpstreamNodeStatus {
  @PrimaryColumn({ name: 'upstream_id', type: 'uuid' })
  upstreamId!: string;

  @PrimaryColumn({ name: 'node_id', type: 'text' })
  nodeId!: string;

  @Column({ type: 'text' })
  state!: UpstreamStateName;

  @Column({ type: 'text', nullable: true })
  error!: string | null;

  @Column({ name: 'server_name', type: 'text', nullable: true })
  serverName!: string | null;

  @Column({ name: 'server_version', type: 'text', nullable: true })
  serverVersion!: string | null;

  @Column({ name: 'protocol_version', type: 'text', nullable: true })
  protocolVersion!: string | null;

  @Column({ name: 'updated_at', type: 'timestamptz' })
  updatedAt!: Date;
}

@Entity({ name: 'settings' })
export class Setting {
  @PrimaryColumn({ type: 'text' })
  key!: string;

  @Column({ type: 'text' })
  value!: string;
}

/** The single-row configuration revision, bumped in the same transaction as every config change. */
@Entity({ name: 'config_revision' })
export class ConfigRevision {
  @PrimaryColumn({ type: 'smallint' })
  id!: number;

  /** bigint: pg returns it as a decimal string. */
  @Column({ type: 'bigint' })
  version!: string;
}

export const ENTITIES = [Team, Upstream, Tool, VirtualKey, DataPlaneNode, UpstreamNodeStatus, Setting, ConfigRevision];
