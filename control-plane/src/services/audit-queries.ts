import type { DataSource } from 'typeorm';
import { z } from 'zod';
import type { AuditCallFields } from '../../../common/src/audit-fields.ts';
import { SqlConditions } from '../db/sql-conditions.ts';
import { badInput } from './validation.ts';

/** The most events one page returns, and its default. */
export const MAX_AUDIT_PAGE = 1000;

export const AUDIT_KINDS = {
  DISCOVERY: 'discovery',
  TOOL_CALL: 'tool_call',
  REQUEST: 'request',
  REFUSAL: 'refusal',
  APPROVAL_REQUEST: 'approval_request',
  APPROVAL_DECISION: 'approval_decision',
} as const;
const kinds = AUDIT_KINDS;
export const AUDIT_STATUSES = {
  OK: 'ok',
  TOOL_ERROR: 'tool_error',
  ERROR: 'error',
  UNAVAILABLE: 'unavailable',
  REFUSED: 'refused',
  PENDING: 'pending',
  APPROVED: 'approved',
  DENIED: 'denied',
  TIMED_OUT: 'timed_out',
  WITHDRAWN: 'withdrawn',
} as const;
const statuses = AUDIT_STATUSES;
const groups = {
  KEY: 'key_id',
  TEAM: 'team_id',
  CUSTOMER: 'customer_id',
  TOOL: 'tool',
  UPSTREAM: 'upstream',
  DAY: 'day',
} as const;

const filterSchema = z
  .object({
    from: z.date().nullish(),
    to: z.date().nullish(),
    kind: z.enum(Object.keys(kinds) as [keyof typeof kinds]).nullish(),
    keyId: z.string().max(200).nullish(),
    teamId: z.string().max(200).nullish(),
    customerId: z.string().max(200).nullish(),
    upstream: z.string().max(200).nullish(),
    tool: z.string().max(500).nullish(),
    status: z.enum(Object.keys(statuses) as [keyof typeof statuses]).nullish(),
    parentId: z.string().max(200).nullish(),
  })
  .nullish();
export type AuditFilter = NonNullable<z.output<typeof filterSchema>>;
/** What `auditConditions` filters on; an absent (undefined or null) field does not filter. */
export type AuditColumnFilter = {
  readonly [K in keyof AuditFilter]?: K extends 'kind' | 'status' ? string | null : AuditFilter[K];
};

/** An audit event as GraphQL shows it. */
export interface AuditEventView extends AuditCallFields {
  id: string;
  seq: string;
  time: Date;
  node: string;
  kind: string;
  status: string;
  errorCode: number | null;
  errorMessage: string | null;
  latencyMs: number;
  gatewayLatencyMs: number;
  upstreamLatencyMs: number | null;
}

export interface AuditConnection {
  edges: Array<{ cursor: string; node: AuditEventView }>;
  pageInfo: { hasNextPage: boolean; hasPreviousPage: boolean; startCursor: string | null; endCursor: string | null };
}

/** What one agent run cost: the records under one parent id (and the nested calls of its code-mode scripts). */
export interface RunCost {
  parentId: string;
  toolCostMicros: number;
  modelCostMicros: number;
  totalCostMicros: number;
  calls: number;
  errors: number;
}

export interface UsageRow {
  keyId: string | null;
  teamId: string | null;
  customerId: string | null;
  tool: string | null;
  upstream: string | null;
  day: string | null;
  calls: number;
  errors: number;
  costMicros: number;
}

const SELECT = `SELECT id::text AS id, seq::text AS seq, time, node_id AS node, upper(kind) AS kind,
                upper(status) AS status,
  method, key_id AS "keyId", team_id AS "teamId", customer_id AS "customerId", subject, upstream, tool, arguments,
    result,
  error_code AS "errorCode", error_message AS "errorMessage", latency_us / 1000.0 AS "latencyMs",
  gateway_latency_us / 1000.0 AS "gatewayLatencyMs", upstream_latency_us / 1000.0 AS "upstreamLatencyMs",
  cost_micros::float8 AS "costMicros", model_cost_micros::float8 AS "modelCostMicros", parent_id AS "parentId",
  trace_id AS "traceId", session_id AS "sessionId",
  client_name AS "clientName", client_version AS "clientVersion" FROM audit_events`;

/** The latencies as numbers (the driver returns numeric columns as text). */
function numericLatencies(row: AuditEventView): AuditEventView {
  return {
    ...row,
    latencyMs: Number(row.latencyMs),
    gatewayLatencyMs: Number(row.gatewayLatencyMs),
    upstreamLatencyMs: row.upstreamLatencyMs === null ? null : Number(row.upstreamLatencyMs),
  };
}

/** Reads the audit trail for GraphQL: filtered, newest first, with opaque cursors; usage aggregates. */
export class AuditQueries {
  constructor(private readonly dataSource: DataSource) {}

  async events(filterArg: unknown, firstArg: unknown, afterArg: unknown): Promise<AuditConnection> {
    const filter = parseFilter(filterArg);
    const first = parseFirst(firstArg);
    const { where, params } = conditions(filter);
    if (afterArg !== undefined && afterArg !== null) {
      const cursor = decodeCursor(afterArg);
      params.push(cursor.time, cursor.id);
      where.push(`(time, id) < ($${params.length - 1}::timestamptz, $${params.length}::uuid)`);
    }
    const rows = (await this.dataSource.query(
      `${SELECT}${where.length === 0 ? '' : ` WHERE ${where.join(' AND ')}`} ORDER BY time DESC, id DESC LIMIT ` +
        `${first + 1}`,
      params,
    )) as AuditEventView[];
    const edges = rows.slice(0, first).map((node) => ({
      cursor: Buffer.from(`${node.time.toISOString()}|${node.id}`).toString('base64url'),
      node: numericLatencies(node),
    }));
    return {
      edges,
      pageInfo: {
        hasNextPage: rows.length > first,
        hasPreviousPage: afterArg !== undefined && afterArg !== null,
        startCursor: edges[0]?.cursor ?? null,
        endCursor: edges.at(-1)?.cursor ?? null,
      },
    };
  }

  /** The records with `seq` from `first` to `last` (one replica's committed batch), in seq order. */
  async bySeqRange(first: string, last: string): Promise<AuditEventView[]> {
    // `audit_events.seq`, the bigint: a bare `seq` in ORDER BY names the output column, `seq::text`, and 10 sorts
    // before 9.
    const rows = (await this.dataSource.query(`${SELECT} WHERE seq BETWEEN $1 AND $2 ORDER BY audit_events.seq`, [
      first,
      last,
    ])) as AuditEventView[];
    return rows.map(numericLatencies);
  }

  /**
   * Cost per agent run: the records whose parent id is `parentId`, and, below them, the records whose
   * parent is one of those (a code-mode script's nested calls name its run_script record). Tool cost is
   * what the gateway priced; model cost what the application reported; calls and errors count tool calls.
   */
  async runCost(parentIdArg: unknown): Promise<RunCost> {
    const parsed = z.string().trim().min(1).max(200).safeParse(parentIdArg);
    if (!parsed.success) throw badInput('parentId', 'give the run’s parent id (1-200 characters)');
    const parentId = parsed.data;
    const [row] = (await this.dataSource.query(
      `WITH RECURSIVE run (id, kind, status, cost, model_cost, depth) AS (
         SELECT id::text, kind, status, cost_micros, model_cost_micros, 1 FROM audit_events WHERE parent_id = $1
         UNION
         SELECT e.id::text, e.kind, e.status, e.cost_micros, e.model_cost_micros, r.depth + 1
           FROM audit_events e JOIN run r ON e.parent_id = r.id WHERE r.depth < 8
       )
       SELECT coalesce(sum(cost), 0)::float8 AS "toolCostMicros",
              coalesce(sum(model_cost), 0)::float8 AS "modelCostMicros",
              count(*) FILTER (WHERE kind = 'tool_call')::int AS calls,
              count(*) FILTER (WHERE kind = 'tool_call' AND status <> 'ok')::int AS errors
         FROM (SELECT DISTINCT ON (id) * FROM run) AS records`,
      [parentId],
    )) as Array<{ toolCostMicros: number; modelCostMicros: number; calls: number; errors: number }>;
    const tool = Number(row?.toolCostMicros ?? 0);
    const model = Number(row?.modelCostMicros ?? 0);
    return {
      parentId,
      toolCostMicros: tool,
      modelCostMicros: model,
      totalCostMicros: tool + model,
      calls: row?.calls ?? 0,
      errors: row?.errors ?? 0,
    };
  }

  /** Tool calls, errors among them and cost, per the groups asked for, over the period and filter. */
  async usage(groupByArg: unknown, periodArg: unknown, filterArg: unknown): Promise<UsageRow[]> {
    const groupBy = z
      .array(z.enum(Object.keys(groups) as [keyof typeof groups]))
      .min(1, 'name at least one of KEY, TEAM, CUSTOMER, TOOL, UPSTREAM, DAY')
      .safeParse(groupByArg);
    if (!groupBy.success) throw badInput('groupBy', groupBy.error.issues[0]?.message ?? 'is invalid');
    const period = z.object({ from: z.date(), to: z.date() }).nullish().safeParse(periodArg);
    if (!period.success) throw badInput('period', 'give from and to as DateTime');
    const filter = { ...parseFilter(filterArg), ...(period.data ?? {}) };
    const { where, params } = conditions(filter);
    where.push(`kind = 'tool_call'`);
    const columns = [...new Set(groupBy.data)].map((g) =>
      g === 'DAY' ? `to_char(date_trunc('day', time AT TIME ZONE 'UTC'), 'YYYY-MM-DD')` : groups[g],
    );
    const select = Object.entries(groups).map(([name, column]) => {
      const index = [...new Set(groupBy.data)].indexOf(name as keyof typeof groups);
      const alias = name === 'KEY' ? 'keyId' : name === 'TEAM' ? 'teamId' : name === 'CUSTOMER' ? 'customerId' : column;
      return index === -1 ? `NULL AS "${alias}"` : `${columns[index]} AS "${alias}"`;
    });
    const rows = (await this.dataSource.query(
      `SELECT ${select.join(', ')}, count(*)::int AS calls, count(*) FILTER (WHERE status <> 'ok')::int AS errors,
              coalesce(sum(cost_micros), 0)::float8 AS "costMicros"
         FROM audit_events WHERE ${where.join(' AND ')} GROUP BY ${columns.join(', ')} ORDER BY ${columns.join(', ')}`,
      params,
    )) as UsageRow[];
    return rows;
  }
}

/** Validates an `AuditFilter` argument (BAD_USER_INPUT naming the field). */
export function parseFilter(value: unknown): AuditFilter {
  const parsed = filterSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw badInput(`filter.${String(issue?.path[0] ?? '')}`, issue?.message ?? 'is invalid');
  }
  return parsed.data ?? {};
}

function parseFirst(value: unknown): number {
  if (value === undefined || value === null) return 100;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > MAX_AUDIT_PAGE)
    throw badInput(
      'first',
      `must be a whole number from 1 to ${MAX_AUDIT_PAGE}; page on with after: pageInfo.endCursor`,
    );
  return value;
}

function decodeCursor(value: unknown): { time: Date; id: string } {
  const text = typeof value === 'string' ? Buffer.from(value, 'base64url').toString('utf8') : '';
  const [time, id] = text.split('|');
  if (time === undefined || id === undefined || Number.isNaN(Date.parse(time)) || !/^[0-9a-f-]{36}$/.test(id))
    throw badInput('after', 'is not a cursor of auditEvents; pass pageInfo.endCursor of the previous page');
  return { time: new Date(time), id };
}

/** The WHERE terms of an audit filter; the CLI's export (`portcullis audit export`) filters with the same. */
export function auditConditions(filter: AuditColumnFilter): SqlConditions {
  const conditions = new SqlConditions();
  conditions.add('time >= ?', filter.from);
  conditions.add('time < ?', filter.to);
  conditions.add('kind = ?', filter.kind);
  conditions.add('status = ?', filter.status);
  conditions.add('key_id = ?', filter.keyId);
  conditions.add('team_id = ?', filter.teamId);
  conditions.add('customer_id = ?', filter.customerId);
  conditions.add('upstream = ?', filter.upstream);
  conditions.add('tool = ?', filter.tool);
  conditions.add('parent_id = ?', filter.parentId);
  return conditions;
}

/** An `AuditFilter` in column values: kind and status as stored (`tool_call`, not `TOOL_CALL`). */
function conditions(filter: AuditFilter): SqlConditions {
  return auditConditions({
    ...filter,
    kind: filter.kind === undefined || filter.kind === null ? undefined : kinds[filter.kind],
    status: filter.status === undefined || filter.status === null ? undefined : statuses[filter.status],
  });
}
