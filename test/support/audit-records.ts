import pg from 'pg';
import { v7 as uuidv7 } from 'uuid';
import type { AuditRecordInput } from '../../control-plane/src/services/audit-store.ts';
import { verifyAuditChain, type ChainProblem } from '../../control-plane/src/services/audit-verify.ts';
import type { TestSchema } from './database.ts';

export const DAY_MS = 24 * 60 * 60 * 1000;

/** A valid tool-call record at `time` (its id a UUIDv7 of that time), with `changes` applied. */
export function auditRecord(time: number, changes: Partial<AuditRecordInput> = {}): AuditRecordInput {
  return {
    id: uuidv7({ msecs: time }),
    time,
    node: 'n1',
    kind: 'tool_call',
    status: 'ok',
    method: 'tools/call',
    keyId: 'k1',
    teamId: null,
    customerId: null,
    subject: null,
    upstream: 'ev',
    tool: 'echo',
    arguments: '{"a":1}',
    result: null,
    error: null,
    latencyUs: 100,
    gatewayLatencyUs: 40,
    upstreamLatencyUs: 60,
    costMicros: null,
    parentId: null,
    traceId: null,
    sessionId: null,
    clientName: null,
    clientVersion: null,
    ...changes,
  };
}

/** What `portcullis audit verify` would report wrong about the schema's chain. */
export async function chainProblems(schema: TestSchema): Promise<ChainProblem[]> {
  const client = new pg.Client({ connectionString: schema.url, options: `-c search_path="${schema.name}"` });
  await client.connect();
  try {
    return (await verifyAuditChain(client)).problems;
  } finally {
    await client.end();
  }
}
