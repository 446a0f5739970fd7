import type { DataSource } from 'typeorm';
import { z } from 'zod';
import { ErrorCode, errorMessage, PortcullisError, type Logger } from '../../../common/src/index.ts';
import { RelayEnvelope } from '../../../proto/gen/portcullis/v1/config.ts';
import type { ApprovalBus } from '../config/change-bus.ts';
import type { ApprovalRequestMessage, ApprovalWithdrawalMessage } from '../grpc/messages.ts';
import { MAX_PAGE_SIZE } from './pagination.ts';
import { parseId, parseInput } from './validation.ts';

export type ApprovalStatus = 'PENDING' | 'APPROVED' | 'DENIED' | 'TIMED_OUT' | 'WITHDRAWN' | 'NODE_RESTARTED';

/** One held call, as GraphQL's Approval shows it. */
export interface Approval {
  readonly id: string;
  readonly status: ApprovalStatus;
  readonly nodeId: string;
  readonly keyId: string;
  readonly teamId: string | null;
  readonly tool: string;
  readonly upstream: string;
  readonly arguments: unknown;
  readonly reason: string;
  readonly parentId: string | null;
  readonly requestedAt: Date;
  readonly expiresAt: Date;
  readonly decidedAt: Date | null;
  readonly decidedBy: string | null;
  readonly decisionReason: string | null;
}

interface ApprovalRow {
  id: string;
  status: ApprovalStatus;
  node_id: string;
  node_tag: string;
  key_id: string;
  team_id: string | null;
  tool: string;
  upstream: string;
  arguments: unknown;
  reason: string;
  parent_id: string | null;
  requested_at: Date;
  expires_at: Date;
  decided_at: Date | null;
  decided_by: string | null;
  decision_reason: string | null;
}

function toApproval(row: ApprovalRow): Approval {
  return {
    id: row.id,
    status: row.status,
    nodeId: row.node_id,
    keyId: row.key_id,
    teamId: row.team_id,
    tool: row.tool,
    upstream: row.upstream,
    arguments: row.arguments,
    reason: row.reason,
    parentId: row.parent_id,
    requestedAt: row.requested_at,
    expiresAt: row.expires_at,
    decidedAt: row.decided_at,
    decidedBy: row.decided_by,
    decisionReason: row.decision_reason,
  };
}

/** The rows of an UPDATE … RETURNING (TypeORM's postgres driver answers [rows, count] for an UPDATE). */
function updatedRows<T>(result: unknown): T[] {
  const value = result as unknown[];
  return (Array.isArray(value[0]) ? value[0] : value) as T[];
}

/** Sends a relay envelope to the node it names, on this replica or through the others. */
export interface DecisionSender {
  send(envelope: RelayEnvelope): void;
}

const reasonSchema = z.string().trim().max(4096, 'is longer than 4096 characters; shorten it').nullish();

/**
 * Calls held on nodes for a person's approval. A node sends each request (again after every
 * reconnect: the first is stored, later ones are answered with the decision if there is one
 * already); `approve`/`deny` decide a pending one once and send the decision to the node holding
 * the call (by its tag, through any replica). A node process that says hello with a new tag lost
 * its waiting calls: they are marked NODE_RESTARTED. New requests reach the `approvalRequested` subscribers of
 * every replica: the storing replica tells its own at once and announces the id on the bus; the others read the row.
 */
export class ApprovalService {
  private sender: DecisionSender | undefined;
  private readonly listeners = new Set<(approval: Approval) => void>();

  constructor(
    private readonly dataSource: DataSource,
    private readonly logger: Logger,
    private readonly bus?: ApprovalBus,
  ) {
    bus?.onApproval((id) => this.requestedElsewhere(id));
  }

  /** Where decisions go (the gRPC relay hub, once it exists). */
  sendDecisionsWith(sender: DecisionSender): void {
    this.sender = sender;
  }

  /** Called with each new approval request (the GraphQL subscription's source). */
  onRequested(listener: (approval: Approval) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** A node holds a call: stored once; a request already decided is answered with the decision again. */
  async requested(nodeId: string, nodeTag: string, request: ApprovalRequestMessage): Promise<void> {
    let args: unknown;
    try {
      args = JSON.parse(request.argumentsJson || '{}');
    } catch {
      args = { unparsable: request.argumentsJson.slice(0, 256) };
    }
    const inserted = (await this.dataSource.query(
      `INSERT INTO approvals (id, node_id, node_tag, key_id, team_id, tool, upstream, arguments, reason, parent_id,
       status, requested_at, expires_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9, $10, 'PENDING', to_timestamp($11 / 1000.0),
         to_timestamp($12 / 1000.0))
       ON CONFLICT (id) DO UPDATE SET node_tag = EXCLUDED.node_tag WHERE approvals.status = 'PENDING'
       RETURNING *, (xmax = 0) AS fresh`,
      [
        request.id,
        nodeId,
        nodeTag,
        request.keyId,
        request.teamId || null,
        request.tool,
        request.upstream,
        JSON.stringify(args),
        request.reason,
        request.parentId || null,
        request.requestedAtMs,
        request.expiresAtMs,
      ],
    )) as (ApprovalRow & { fresh: boolean })[];
    const row = inserted[0];
    if (row !== undefined) {
      if (row.fresh) {
        this.bus?.publishApproval(row.id);
        this.tell(toApproval(row));
      }
      return;
    }
    // Decided while the node was away: tell it again.
    const decided = (await this.dataSource.query('SELECT * FROM approvals WHERE id = $1', [
      request.id,
    ])) as ApprovalRow[];
    if (decided[0] !== undefined) this.sendDecision({ ...decided[0], node_tag: nodeTag });
  }

  private tell(approval: Approval): void {
    for (const listener of this.listeners) listener(approval);
  }

  /** Another replica stored a new request: read it for this replica's subscribers, if there are any. */
  private requestedElsewhere(id: string): void {
    if (this.listeners.size === 0) return;
    this.dataSource.query('SELECT * FROM approvals WHERE id = $1', [id]).then(
      (rows: ApprovalRow[]) => {
        if (rows[0] !== undefined) this.tell(toApproval(rows[0]));
      },
      (error: unknown) =>
        this.logger.warn({ err: errorMessage(error), id }, "could not read another replica's approval request"),
    );
  }

  /** The node stopped waiting (timeout, the agent's cancellation). */
  async withdrawn(nodeId: string, withdrawal: ApprovalWithdrawalMessage): Promise<void> {
    await this.dataSource.query(
      `UPDATE approvals SET status = $3, decided_at = now(), decided_by = 'node:' || node_id, decision_reason = $4
       WHERE id = $1 AND node_id = $2 AND status = 'PENDING'`,
      [withdrawal.id, nodeId, withdrawal.status, withdrawal.reason],
    );
  }

  /** A node said hello: calls held by an earlier process of it are gone with that process. */
  async nodeStarted(nodeId: string, nodeTag: string): Promise<number> {
    const result: unknown = await this.dataSource.query(
      `UPDATE approvals SET status = 'NODE_RESTARTED', decided_at = now(), decided_by = 'control-plane',
         decision_reason = 'the node holding the call restarted; the call was refused there'
       WHERE node_id = $1 AND node_tag <> $2 AND status = 'PENDING' RETURNING id`,
      [nodeId, nodeTag],
    );
    return updatedRows(result).length;
  }

  /** Decides a pending call; throws NOT_FOUND / CONFLICT when there is none or it is decided already. */
  async decide(rawId: string, approved: boolean, rawReason: unknown, decidedBy: string): Promise<Approval> {
    const id = parseId(rawId, 'id');
    const reason = parseInput(reasonSchema, rawReason, 'reason') ?? '';
    const result: unknown = await this.dataSource.query(
      `UPDATE approvals SET status = $2, decided_at = now(), decided_by = $3, decision_reason = $4
       WHERE id = $1 AND status = 'PENDING' RETURNING *`,
      [id, approved ? 'APPROVED' : 'DENIED', decidedBy, reason],
    );
    const row = updatedRows<ApprovalRow>(result)[0];
    if (row === undefined) {
      const existing = (await this.dataSource.query('SELECT status FROM approvals WHERE id = $1', [id])) as {
        status: string;
      }[];
      if (existing[0] === undefined)
        throw new PortcullisError(ErrorCode.NOT_FOUND, `id: no approval request ${id}`, { field: 'id' });
      throw new PortcullisError(
        ErrorCode.CONFLICT,
        `id: approval request ${id} is ${existing[0].status} already; only a PENDING request can be decided`,
        { field: 'id' },
      );
    }
    this.sendDecision(row);
    return toApproval(row);
  }

  /** How many requests wait for a decision (the control plane's metrics read it at each scrape). */
  async pendingCount(): Promise<number> {
    const [row] = (await this.dataSource.query(
      `SELECT count(*)::int AS n FROM approvals WHERE status = 'PENDING'`,
    )) as [{ n: number }];
    return row.n;
  }

  /** Requests by status (all when undefined), newest first. */
  async list(status: ApprovalStatus | undefined, first = MAX_PAGE_SIZE): Promise<Approval[]> {
    const rows = (await this.dataSource.query(
      `SELECT * FROM approvals WHERE ($1::text IS NULL OR status = $1) ORDER BY requested_at DESC, id LIMIT $2`,
      [status ?? null, Math.min(first, MAX_PAGE_SIZE)],
    )) as ApprovalRow[];
    return rows.map(toApproval);
  }

  private sendDecision(row: ApprovalRow): void {
    if (row.status === 'PENDING') return;
    if (this.sender === undefined) {
      this.logger.warn({ approval: row.id }, 'no config stream to send an approval decision on');
      return;
    }
    this.sender.send(
      RelayEnvelope.fromPartial({
        toNodeTag: row.node_tag,
        keyId: row.key_id,
        kind: {
          $case: 'approvalDecision',
          value: {
            id: row.id,
            approved: row.status === 'APPROVED',
            reason: row.decision_reason || (row.status === 'APPROVED' ? 'approved' : `the request is ${row.status}`),
            decidedBy: row.decided_by ?? '',
            decidedAtMs: row.decided_at === null ? 0 : new Date(row.decided_at).getTime(),
          },
        },
      }),
    );
  }
}
