import { z } from 'zod';
import { UpstreamState, type ConnectRequest } from '../../../proto/gen/portcullis/v1/config.ts';
import type { UpstreamStateName } from '../db/entities.ts';
import { parseInput } from '../services/validation.ts';

const STATES: Partial<Record<UpstreamState, UpstreamStateName>> = {
  [UpstreamState.UPSTREAM_STATE_CONNECTING]: 'CONNECTING',
  [UpstreamState.UPSTREAM_STATE_READY]: 'READY',
  [UpstreamState.UPSTREAM_STATE_DEGRADED]: 'DEGRADED',
  [UpstreamState.UPSTREAM_STATE_DOWN]: 'DOWN',
  [UpstreamState.UPSTREAM_STATE_DISABLED]: 'DISABLED',
};

const text = (max: number) => z.string().max(max, `is longer than ${max} characters`);

const helloSchema = z.object({
  nodeId: z
    .string()
    .regex(
      /^[A-Za-z0-9._:-]{1,128}$/,
      'must be 1-128 letters, digits, ".", "_", ":" or "-"; set the node\'s --node-id accordingly',
    ),
  softwareVersion: text(128),
  mcpUrl: text(2048),
  appliedVersion: z.string().regex(/^\d*$/, 'must be a decimal version or empty'),
  acceptsDeltas: z.boolean(),
  nodeTag: z
    .string()
    .regex(
      /^([A-Za-z0-9_-]{1,32})?$/,
      "must be 1-32 base64url characters (the tag in the node's server-request ids), or empty",
    ),
});

const ackSchema = z.object({
  version: z.string().regex(/^\d+$/, 'must be the decimal version of the snapshot being answered'),
  accepted: z.boolean(),
  error: text(8192),
});

/** The node caps each list at this many entries (data-plane catalog-summary.ts); more is refused. */
export const MAX_REPORTED_CATALOG_ENTRIES = 1_000;

const summaryText = text(1_024);
const promptSummarySchema = z.object({
  name: z.string().min(1, "must be the prompt's name").max(256),
  title: text(256),
  description: summaryText,
  arguments: z
    .array(z.object({ name: z.string().min(1).max(256), description: summaryText, required: z.boolean() }))
    .max(32),
});
/** What a resource and a resource template both say of themselves. */
const describedFields = { name: text(256), title: text(256), description: summaryText, mimeType: text(128) };
const resourceSummarySchema = z.object({
  uri: z.string().min(1, "must be the resource's URI").max(2_048),
  ...describedFields,
  size: z.number().int().min(0),
});
const resourceTemplateSummarySchema = z.object({
  uriTemplate: z.string().min(1, "must be the template's URI template").max(2_048),
  ...describedFields,
});
const listOf = <T extends z.ZodType>(item: T) =>
  z
    .array(item)
    .max(
      MAX_REPORTED_CATALOG_ENTRIES,
      `has more than ${MAX_REPORTED_CATALOG_ENTRIES} entries; the node reports the first ` +
        `${MAX_REPORTED_CATALOG_ENTRIES} and the total`,
    );
const total = z.number().int().min(0);

const reportSchema = z.object({
  upstreamId: z.uuid('must be the id of an upstream from the snapshot'),
  configHash: z.string().regex(/^[0-9a-f]{0,64}$/, 'must be the config_hash from the snapshot, or empty'),
  state: z.enum(UpstreamState).transform((state, ctx) => {
    const name = STATES[state];
    if (!name) {
      ctx.addIssue({ code: 'custom', message: 'must be CONNECTING, READY, DEGRADED, DOWN or DISABLED' });
      return z.NEVER;
    }
    return name;
  }),
  error: text(8192),
  hasCatalog: z.boolean(),
  tools: z
    .array(
      z.object({
        name: z.string().min(1).max(128),
        definitionJson: z.string().max(1_000_000),
        definitionSha256: z
          .string()
          .regex(/^([0-9a-f]{64})?$/, 'must be the lower-case hex SHA-256 of the canonical tool definition, or empty'),
      }),
    )
    .max(10_000),
  serverName: text(256),
  serverVersion: text(256),
  protocolVersion: text(64),
  hasPrompts: z.boolean(),
  prompts: listOf(promptSummarySchema),
  promptsTotal: total,
  hasResources: z.boolean(),
  resources: listOf(resourceSummarySchema),
  resourcesTotal: total,
  hasResourceTemplates: z.boolean(),
  resourceTemplates: listOf(resourceTemplateSummarySchema),
  resourceTemplatesTotal: total,
});

export type UpstreamReportMessage = z.output<typeof reportSchema>;

/**
 * Largest relayed JSON (a reply to an elicitation or sampling request, a relayed request); a node refuses to relay
 * larger ones.
 */
export const MAX_RELAY_JSON_CHARS = 256 * 1024;
/** Largest relayed answer (a tool result going back to the node whose agent waits for it). */
export const MAX_RELAY_ANSWER_CHARS = 1024 * 1024;
/** Ended sessions are kept until their id would expire; nothing is kept longer than this from now. */
export const MAX_ENDED_SESSION_AGE_MS = 31 * 24 * 60 * 60 * 1000;

const callId = z
  .string()
  .regex(/^[A-Za-z0-9_-]{1,64}$/, 'must be the 1-64 base64url characters the calling node chose');

const callSchema = z.object({
  callId,
  request: z.discriminatedUnion(
    '$case',
    [
      z.object({
        $case: z.literal('inputRetryJson'),
        value: z.string().min(2).max(MAX_RELAY_JSON_CHARS, `is longer than ${MAX_RELAY_JSON_CHARS} characters`),
      }),
      z.object({
        $case: z.literal('sseMessagesJson'),
        value: z.string().min(2).max(MAX_RELAY_JSON_CHARS, `is longer than ${MAX_RELAY_JSON_CHARS} characters`),
      }),
    ],
    { error: 'must be one of input_retry_json or sse_messages_json' },
  ),
});

const callUpdateSchema = z.object({
  callId,
  update: z.discriminatedUnion(
    '$case',
    [
      z.object({ $case: z.literal('accepted'), value: z.boolean() }),
      z.object({
        $case: z.literal('notificationJson'),
        value: z.string().min(2).max(MAX_RELAY_JSON_CHARS, `is longer than ${MAX_RELAY_JSON_CHARS} characters`),
      }),
      z.object({
        $case: z.literal('answer'),
        value: z.object({
          status: z.number().int().min(200).max(599),
          bodyJson: z.string().max(MAX_RELAY_ANSWER_CHARS, `is longer than ${MAX_RELAY_ANSWER_CHARS} characters`),
        }),
      }),
      z.object({ $case: z.literal('cancelled'), value: text(1024) }),
      z.object({ $case: z.literal('undeliverable'), value: text(1024) }),
    ],
    { error: 'must be one of accepted, notification_json, answer, cancelled or undeliverable' },
  ),
});

/**
 * Kinds about a 2025-era session (they must carry its id); calls and their updates may be of a 2026-07-28 agent, which
 * has none.
 */
const SESSION_KINDS: ReadonlySet<string> = new Set(['reply', 'cancel', 'ended']);

const relaySchema = z
  .object({
    toNodeTag: z
      .string()
      .regex(
        /^([A-Za-z0-9_-]{1,32})?$/,
        "must be the node_tag of the target node's hello, or empty for every other node",
      ),
    keyId: z.string().min(1, 'must be the virtual key id of the agent that sent the message').max(128),
    sessionId: z.string().max(8192),
    kind: z.discriminatedUnion(
      '$case',
      [
        z.object({
          $case: z.literal('reply'),
          value: z.object({
            responseJson: z
              .string()
              .min(2)
              .max(MAX_RELAY_JSON_CHARS, `is longer than ${MAX_RELAY_JSON_CHARS} characters`),
          }),
        }),
        z.object({
          $case: z.literal('cancel'),
          value: z.object({ requestIdJson: z.string().min(1).max(1024), reason: text(1024) }),
        }),
        z.object({
          $case: z.literal('ended'),
          value: z.object({
            expiresAtMs: z.number().int().positive('must be when the session id expires, in ms since the epoch'),
          }),
        }),
        z.object({ $case: z.literal('call'), value: callSchema }),
        z.object({ $case: z.literal('callUpdate'), value: callUpdateSchema }),
        z.object({
          $case: z.literal('approvalDecision'),
          value: z.object({
            id: z.uuid(),
            approved: z.boolean(),
            reason: text(4096),
            decidedBy: text(256),
            decidedAtMs: z.number().int().nonnegative(),
          }),
        }),
      ],
      { error: 'must be one of reply, cancel, ended, call, call_update or approval_decision' },
    ),
  })
  .refine((envelope) => !SESSION_KINDS.has(envelope.kind.$case) || envelope.sessionId !== '', {
    message: "must be the agent's Mcp-Session-Id",
    path: ['sessionId'],
  })
  .refine(
    (envelope) =>
      (envelope.kind.$case !== 'reply' && envelope.kind.$case !== 'call' && envelope.kind.$case !== 'callUpdate') ||
      envelope.toNodeTag !== '',
    { message: 'a reply, call or call update must name the node_tag of the node it is for', path: ['toNodeTag'] },
  );

export type RelayMessage = z.output<typeof relaySchema>;

const approvalRequestSchema = z.object({
  id: z.uuid('must be a UUID the node made for this call'),
  keyId: z.string().min(1).max(128),
  teamId: z.string().max(128),
  tool: z.string().min(1).max(256),
  upstream: z.string().min(1).max(64),
  argumentsJson: z.string().max(MAX_RELAY_JSON_CHARS, `is longer than ${MAX_RELAY_JSON_CHARS} characters`),
  reason: text(4096),
  requestedAtMs: z.number().int().positive(),
  expiresAtMs: z.number().int().positive(),
  parentId: z.string().max(256),
});

const approvalWithdrawalSchema = z.object({
  id: z.uuid(),
  status: z.enum(['TIMED_OUT', 'WITHDRAWN']),
  reason: text(4096),
});

export type ApprovalRequestMessage = z.output<typeof approvalRequestSchema>;
export type ApprovalWithdrawalMessage = z.output<typeof approvalWithdrawalSchema>;

export type NodeMessage =
  | { kind: 'approvalRequest'; request: ApprovalRequestMessage }
  | { kind: 'approvalWithdrawal'; withdrawal: ApprovalWithdrawalMessage }
  | { kind: 'hello'; hello: z.output<typeof helloSchema> }
  | { kind: 'ack'; ack: z.output<typeof ackSchema> }
  | { kind: 'upstream'; report: z.output<typeof reportSchema> }
  | { kind: 'relay'; relay: RelayMessage }
  | { kind: 'spend'; spend: z.output<typeof spendSchema> }
  | { kind: 'audit'; audit: z.output<typeof auditBatchSchema> };

const spendSchema = z.object({
  entries: z
    .array(
      z.object({
        budgetId: z.string().uuid('must be a budget id'),
        periodStartMs: z.number().int().nonnegative(),
        spentMicros: z.number().int().nonnegative().max(1e15, 'is more than any budget'),
      }),
    )
    .max(10_000, 'has more than 10,000 entries'),
});

/** Records one AuditBatch may carry (a node sends fewer; see data-plane/src/audit/audit-shipper.ts). */
export const MAX_AUDIT_BATCH = 5_000;
/** Bytes one AuditBatch's `records_ndjson` may carry. */
export const MAX_AUDIT_BATCH_BYTES = 64 * 1024 * 1024;
const auditBatchSchema = z
  .object({
    batchId: z.number().int().min(0),
    recordsJson: z.array(z.string().max(10 * 1024 * 1024)).max(MAX_AUDIT_BATCH),
    recordsNdjson: z
      .instanceof(Uint8Array)
      .refine((bytes) => bytes.length <= MAX_AUDIT_BATCH_BYTES, `must be at most ${MAX_AUDIT_BATCH_BYTES} bytes`)
      .refine((bytes) => countLines(bytes) <= MAX_AUDIT_BATCH, `must hold at most ${MAX_AUDIT_BATCH} records`),
  })
  .refine((batch) => batch.recordsJson.length === 0 || batch.recordsNdjson.length === 0, {
    message: 'carries records_json and records_ndjson; send the records in one of the two',
    path: ['recordsNdjson'],
  });

function countLines(bytes: Uint8Array): number {
  let count = 0;
  for (let i = bytes.indexOf(10); i !== -1; i = bytes.indexOf(10, i + 1)) count++;
  return count;
}

/** Validates a decoded ConnectRequest; throws BAD_USER_INPUT naming the field. */
export function parseNodeMessage(message: ConnectRequest): NodeMessage {
  switch (message.kind?.$case) {
    case 'hello':
      return { kind: 'hello', hello: parseInput(helloSchema, message.kind.value, 'hello') };
    case 'ack':
      return { kind: 'ack', ack: parseInput(ackSchema, message.kind.value, 'ack') };
    case 'upstream':
      return { kind: 'upstream', report: parseInput(reportSchema, message.kind.value, 'upstream') };
    case 'relay': {
      const relay = parseRelayMessage(message.kind.value);
      // Decisions come from the control plane alone: a node cannot approve calls held on another.
      if (relay.kind.$case === 'approvalDecision')
        return parseInput(z.never('a node cannot send approval decisions'), undefined, 'relay.kind');
      return { kind: 'relay', relay };
    }
    case 'spend':
      return { kind: 'spend', spend: parseInput(spendSchema, message.kind.value, 'spend') };
    case 'approvalRequest':
      return {
        kind: 'approvalRequest',
        request: parseInput(approvalRequestSchema, message.kind.value, 'approval_request'),
      };
    case 'approvalWithdrawal':
      return {
        kind: 'approvalWithdrawal',
        withdrawal: parseInput(approvalWithdrawalSchema, message.kind.value, 'approval_withdrawal'),
      };
    case 'audit':
      return { kind: 'audit', audit: parseInput(auditBatchSchema, message.kind.value, 'audit') };
    default:
      return parseInput(
        z.never('must be one of hello, ack, upstream, relay, audit, spend, approval_request or approval_withdrawal'),
        undefined,
        'kind',
      );
  }
}

/** Validates a relay envelope (from a node, or from another replica); throws BAD_USER_INPUT naming the field. */
export function parseRelayMessage(value: unknown): RelayMessage {
  return parseInput(relaySchema, value, 'relay');
}
