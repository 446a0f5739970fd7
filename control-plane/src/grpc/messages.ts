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
    .regex(/^[A-Za-z0-9._:-]{1,128}$/, 'must be 1-128 letters, digits, ".", "_", ":" or "-"; set the node\'s --node-id accordingly'),
  softwareVersion: text(128),
  mcpUrl: text(2048),
  appliedVersion: z.string().regex(/^\d*$/, 'must be a decimal version or empty'),
  acceptsDeltas: z.boolean(),
});

const ackSchema = z.object({
  version: z.string().regex(/^\d+$/, 'must be the decimal version of the snapshot being answered'),
  accepted: z.boolean(),
  error: text(8192),
});

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
        definitionSha256: z.string().regex(/^([0-9a-f]{64})?$/, 'must be the lower-case hex SHA-256 of the canonical tool definition, or empty'),
      }),
    )
    .max(10_000),
  serverName: text(256),
  serverVersion: text(256),
  protocolVersion: text(64),
});

export type NodeMessage =
  | { kind: 'hello'; hello: z.output<typeof helloSchema> }
  | { kind: 'ack'; ack: z.output<typeof ackSchema> }
  | { kind: 'upstream'; report: z.output<typeof reportSchema> };

/** Validates a decoded ConnectRequest; throws BAD_USER_INPUT naming the field. */
export function parseNodeMessage(message: ConnectRequest): NodeMessage {
  switch (message.kind?.$case) {
    case 'hello':
      return { kind: 'hello', hello: parseInput(helloSchema, message.kind.value, 'hello') };
    case 'ack':
      return { kind: 'ack', ack: parseInput(ackSchema, message.kind.value, 'ack') };
    case 'upstream':
      return { kind: 'upstream', report: parseInput(reportSchema, message.kind.value, 'upstream') };
    default:
      return parseInput(z.never('must be one of hello, ack or upstream'), undefined, 'kind');
  }
}
