import 'reflect-metadata';
import { Column, Entity, PrimaryColumn } from 'typeorm';

// Every column names its `type`: tsx/esbuild emit no decorator metadata for TypeORM to infer it.
// Tables are created by the versioned migrations in ./migrations, never by `synchronize`.

export type TransportName = 'STDIO' | 'STREAMABLE_HTTP' | 'SSE';
/** A key's code-mode setting: follow each upstream's, on for every upstream, or never. */
export type CodeModeName = 'INHERIT' | 'ON' | 'OFF';
export type AuditContentName = 'INHERIT' | 'ON' | 'OFF';
export type UpstreamStateName = 'CONNECTING' | 'READY' | 'DEGRADED' | 'DOWN' | 'DISABLED';

/** A name and a (secret) value: an environment variable or an HTTP header. */
export interface KeyValuePair {
  name: string;
  value: string;
}

/** How an env variable or header is stored: the value sealed (secrets/secret-box.ts), or '' when empty. */
export interface StoredSecretPair {
  name: string;
  secret: string;
}

export type CatalogListKind = 'PROMPTS' | 'RESOURCES' | 'RESOURCE_TEMPLATES';

export interface PromptSummaryJson {
  name: string;
  title: string;
  description: string;
  arguments: Array<{ name: string; description: string; required: boolean }>;
}

export interface ResourceSummaryJson {
  uri: string;
  name: string;
  title: string;
  description: string;
  mimeType: string;
  size: number;
}

export interface ResourceTemplateSummaryJson {
  uriTemplate: string;
  name: string;
  title: string;
  description: string;
  mimeType: string;
}

export type CatalogSummaryJson = PromptSummaryJson | ResourceSummaryJson | ResourceTemplateSummaryJson;

export type ToolChangeKind = 'ADDED' | 'CHANGED' | 'HELD_BACK' | 'REVERTED' | 'ACCEPTED' | 'REMOVED';

/**
 * Allow-lists and deny-lists as stored (see AccessLists in config.proto). An absent allow-list:
 * tools everything ("*"); prompts by the tool allow-list; resources of the upstreams the tool
 * allow-list grants anything on. Absent deny-lists deny nothing.
 */
export interface AccessListsJson {
  allowedTools?: string[];
  deniedTools?: string[];
  allowedPrompts?: string[];
  deniedPrompts?: string[];
  allowedResources?: string[];
  deniedResources?: string[];
}

/** Per-minute rate limits as stored (see RateLimits in config.proto); absent = none. */
export interface RateLimitsJson {
  requestsPerMinute?: number;
  toolCallsPerMinute?: number;
  burst?: number;
}

@Entity({ name: 'customers' })
export class Customer {
  @PrimaryColumn({ type: 'uuid' })
  id!: string;

  @Column({ type: 'text' })
  name!: string;

  @Column({ name: 'rate_limits', type: 'jsonb' })
  rateLimits!: RateLimitsJson;

  @Column({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;
}

@Entity({ name: 'teams' })
export class Team {
  @PrimaryColumn({ type: 'uuid' })
  id!: string;

  @Column({ type: 'text' })
  name!: string;

  @Column({ name: 'customer_id', type: 'uuid', nullable: true })
  customerId!: string | null;

  @Column({ type: 'jsonb' })
  access!: AccessListsJson;

  @Column({ name: 'rate_limits', type: 'jsonb' })
  rateLimits!: RateLimitsJson;

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

  /** Values sealed. */
  @Column({ type: 'jsonb' })
  env!: StoredSecretPair[];

  @Column({ type: 'text', nullable: true })
  url!: string | null;

  /** Values sealed. */
  @Column({ type: 'jsonb' })
  headers!: StoredSecretPair[];

  @Column({ type: 'text', nullable: true })
  cwd!: string | null;

  /** Sealed; sent to HTTP upstreams as `Authorization: Bearer <token>`. */
  @Column({ name: 'bearer_token', type: 'text', nullable: true })
  bearerToken!: string | null;

  /** null: the node's default. */
  @Column({ name: 'connect_timeout_ms', type: 'integer', nullable: true })
  connectTimeoutMs!: number | null;

  @Column({ name: 'call_timeout_ms', type: 'integer', nullable: true })
  callTimeoutMs!: number | null;

  @Column({ name: 'health_interval_ms', type: 'integer', nullable: true })
  healthIntervalMs!: number | null;

  @Column({ name: 'health_failure_threshold', type: 'integer', nullable: true })
  healthFailureThreshold!: number | null;

  @Column({ type: 'boolean' })
  enabled!: boolean;

  @Column({ name: 'pin_tool_definitions', type: 'boolean' })
  pinToolDefinitions!: boolean;

  @Column({ name: 'expose_unprefixed', type: 'boolean' })
  exposeUnprefixed!: boolean;

  /** The MCP revision nodes speak to it: `auto`, `legacy`, `modern` or one exact revision. */
  @Column({ name: 'protocol_version', type: 'text', default: 'auto' })
  protocolVersion!: string;

  /** Code mode: keys that inherit it reach this upstream's tools through the code-mode meta-tools. */
  @Column({ name: 'code_mode', type: 'boolean', default: false })
  codeMode!: boolean;

  /** Whether arguments and results of calls to it are recorded (false: never, whatever the key says). */
  @Column({ name: 'audit_content', type: 'boolean', default: true })
  auditContent!: boolean;

  /** Replaced whenever a secret value changes, so the config hash moves without hashing secrets. */
  @Column({ name: 'secrets_version', type: 'uuid' })
  secretsVersion!: string;

  @Column({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;

  @Column({ name: 'updated_at', type: 'timestamptz' })
  updatedAt!: Date;
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

  /** The whole MCP Tool object as the upstream listed it (the accepted one while a change is held back). */
  @Column({ type: 'jsonb' })
  definition!: Record<string, unknown>;

  /** definition_sha256 (as the node computed it) of `definition`: the pin. */
  @Column({ name: 'pinned_sha256', type: 'text', nullable: true })
  pinnedSha256!: string | null;

  /** A changed definition held back until an operator accepts it. */
  @Column({ name: 'pending_definition', type: 'jsonb', nullable: true })
  pendingDefinition!: Record<string, unknown> | null;

  @Column({ name: 'pending_sha256', type: 'text', nullable: true })
  pendingSha256!: string | null;

  /** Whether the upstream's latest catalog lists the tool (unlisted tools keep their pin). */
  @Column({ type: 'boolean' })
  listed!: boolean;

  @Column({ name: 'first_seen_at', type: 'timestamptz' })
  firstSeenAt!: Date;

  @Column({ name: 'last_seen_at', type: 'timestamptz' })
  lastSeenAt!: Date;
}

@Entity({ name: 'tool_definition_changes' })
export class ToolDefinitionChange {
  @PrimaryColumn({ type: 'uuid' })
  id!: string;

  @Column({ name: 'upstream_id', type: 'uuid' })
  upstreamId!: string;

  @Column({ name: 'tool_id', type: 'uuid' })
  toolId!: string;

  @Column({ name: 'tool_name', type: 'text' })
  toolName!: string;

  @Column({ type: 'text' })
  kind!: ToolChangeKind;

  @Column({ name: 'old_sha256', type: 'text', nullable: true })
  oldSha256!: string | null;

  @Column({ name: 'new_sha256', type: 'text', nullable: true })
  newSha256!: string | null;

  /** The definition the change is about (the new one; null for REMOVED). */
  @Column({ type: 'jsonb', nullable: true })
  definition!: Record<string, unknown> | null;

  /** The node whose report showed the change; null for an operator's ACCEPTED. */
  @Column({ name: 'node_id', type: 'text', nullable: true })
  nodeId!: string | null;

  @Column({ name: 'changed_at', type: 'timestamptz' })
  changedAt!: Date;
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

  @Column({ name: 'code_mode', type: 'text', default: 'INHERIT' })
  codeMode!: CodeModeName;

  /** Content logging for this key: INHERIT follows the gateway default (auditSettings.contentDefault). */
  @Column({ name: 'audit_content', type: 'text', default: 'INHERIT' })
  auditContent!: AuditContentName;
  /** Every list but allowedTools (kept in its own column). */
  @Column({ type: 'jsonb' })
  access!: AccessListsJson;

  @Column({ name: 'rate_limits', type: 'jsonb' })
  rateLimits!: RateLimitsJson;

  /** False: left out of snapshots until enabled again (unlike revocation, reversible). */
  @Column({ type: 'boolean' })
  enabled!: boolean;

  @Column({ name: 'expires_at', type: 'timestamptz', nullable: true })
  expiresAt!: Date | null;

  /** The secret the last rotation replaced, accepted until previousSecretExpiresAt. */
  @Column({ name: 'previous_secret_sha256', type: 'bytea', nullable: true })
  previousSecretSha256!: Buffer | null;

  @Column({ name: 'previous_secret_expires_at', type: 'timestamptz', nullable: true })
  previousSecretExpiresAt!: Date | null;

  @Column({ name: 'rotated_at', type: 'timestamptz', nullable: true })
  rotatedAt!: Date | null;

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

/** One of an upstream's prompts, resources or resource templates lists, as a node last reported it. */
@Entity({ name: 'upstream_catalog_lists' })
export class UpstreamCatalogList {
  @PrimaryColumn({ name: 'upstream_id', type: 'uuid' })
  upstreamId!: string;

  @PrimaryColumn({ type: 'text' })
  kind!: CatalogListKind;

  /** Summaries in the upstream's order (at most the node's cap). */
  @Column({ type: 'jsonb' })
  entries!: CatalogSummaryJson[];

  /** How many the upstream listed in all (more than `entries` when the node capped the report). */
  @Column({ type: 'integer' })
  total!: number;

  @Column({ name: 'content_sha256', type: 'text' })
  contentSha256!: string;

  /** Keys (prompt names, URIs, URI templates) the last change added, removed or altered; capped. */
  @Column({ type: 'jsonb' })
  added!: string[];

  @Column({ type: 'jsonb' })
  removed!: string[];

  @Column({ type: 'jsonb' })
  changed!: string[];

  /** The node whose report showed the last change. */
  @Column({ name: 'node_id', type: 'text', nullable: true })
  nodeId!: string | null;

  @Column({ name: 'changed_at', type: 'timestamptz' })
  changedAt!: Date;

  @Column({ name: 'reported_at', type: 'timestamptz' })
  reportedAt!: Date;
}

/** A 2025-era session ended with DELETE /mcp, kept until its id would have expired anyway. */
@Entity({ name: 'ended_sessions' })
export class EndedSession {
  /** SHA-256 of `sessionId` (ids are too long for a btree key). */
  @PrimaryColumn({ name: 'session_sha256', type: 'bytea' })
  sessionSha256!: Buffer;

  @Column({ name: 'session_id', type: 'text' })
  sessionId!: string;

  @Column({ name: 'key_id', type: 'text' })
  keyId!: string;

  /** The node that received the DELETE. */
  @Column({ name: 'from_node_id', type: 'text' })
  fromNodeId!: string;

  @Column({ name: 'expires_at', type: 'timestamptz' })
  expiresAt!: Date;

  @Column({ name: 'ended_at', type: 'timestamptz' })
  endedAt!: Date;
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

export const ENTITIES = [
  Customer,
  Team,
  Upstream,
  Tool,
  ToolDefinitionChange,
  VirtualKey,
  DataPlaneNode,
  UpstreamNodeStatus,
  Setting,
  ConfigRevision,
  EndedSession,
  UpstreamCatalogList,
];
