import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { auditRow, newAuditRecord, type AuditRecord } from '../../data-plane/src/audit/audit-record.ts';
import {
  auditRecordSchema,
  checkAuditRecord,
  ndjsonLines,
  parseAuditBatch,
} from '../../control-plane/src/services/audit-store.ts';

function full(): AuditRecord {
  const record = newAuditRecord('node-1', 'tool_call', 'tool_error');
  Object.assign(record, {
    method: 'tools/call',
    keyId: 'k1',
    teamId: 'team',
    customerId: 'c1',
    subject: 'user@example.com',
    upstream: 'ev',
    tool: 'ev__echo',
    arguments: '{"text":"hi"}',
    result: '{"content":[]}',
    error: { code: -32603, message: 'Internal error' },
    latencyUs: 1234,
    gatewayLatencyUs: 200,
    upstreamLatencyUs: 1034,
    costMicros: 17,
    parentId: 'run-1',
    modelCostMicros: 5,
    traceId: '0af7651916cd43dd8448eb211c80319c',
    sessionId: 'sig',
    clientName: 'agent',
    clientVersion: '1.0',
  });
  return record;
}

const TEXT_LIMITS: Record<string, number> = {
  method: 300,
  keyId: 200,
  teamId: 200,
  customerId: 200,
  subject: 500,
  upstream: 200,
  tool: 500,
  parentId: 200,
  sessionId: 200,
  clientName: 200,
  clientVersion: 100,
};

/** Values to put in each field: valid ones at the edges, and invalid ones of every kind. */
function variants(): Array<[string, unknown]> {
  const out: Array<[string, unknown]> = [];
  const common = [undefined, null, '', 'x', 0, -1, 1.5, true, [], {}, '1'];
  for (const field of Object.keys(full())) for (const value of common) out.push([field, value]);
  for (const [field, max] of Object.entries(TEXT_LIMITS)) {
    out.push([field, 'a'.repeat(max)], [field, 'a'.repeat(max + 1)]);
  }
  for (const field of ['latencyUs', 'gatewayLatencyUs', 'upstreamLatencyUs']) {
    out.push([field, 2_147_483_647], [field, 2_147_483_648], [field, 0]);
  }
  for (const field of ['costMicros', 'modelCostMicros']) {
    out.push([field, Number.MAX_SAFE_INTEGER], [field, 2 ** 53], [field, 0]);
  }
  out.push(
    ['node', 'a'.repeat(200)],
    ['node', 'a'.repeat(201)],
    ['kind', 'discovery'],
    ['kind', 'approval_decision'],
    ['kind', 'TOOL_CALL'],
    ['status', 'withdrawn'],
    ['status', 'nope'],
    ['error', { code: 1 }],
    ['error', { code: 1, message: 'm', extra: true }],
    ['error', { code: 1.5, message: 'm' }],
    ['error', { code: 1, message: 'm'.repeat(8193) }],
    ['error', { code: 2 ** 53, message: 'm' }],
    ['traceId', '0AF7651916CD43DD8448EB211C80319C'],
    ['traceId', '0af7651916cd43dd8448eb211c80319'],
    ['id', '0190d5f4-1b2c-4d3e-8f40-123456789abc'],
    ['id', 'not-a-uuid'],
    ['time', 1],
  );
  return out;
}

describe('audit record check (the ingest hot path, without zod)', () => {
  it('agrees with auditRecordSchema on every field, valid and invalid values alike', () => {
    const base = full();
    assert.equal(typeof checkAuditRecord(JSON.parse(JSON.stringify(base))), 'object');
    let refused = 0;
    for (const [field, value] of variants()) {
      const record: Record<string, unknown> = JSON.parse(JSON.stringify(base)) as Record<string, unknown>;
      if (value === undefined) delete record[field];
      else record[field] = value;
      const zod = auditRecordSchema.safeParse(structuredClone(record)).success;
      const checked = checkAuditRecord(record);
      const label = `${field} = ${JSON.stringify(value)?.slice(0, 40)}`;
      assert.equal(typeof checked === 'object', zod, `${label}: zod ${zod ? 'accepts' : 'refuses'} it`);
      if (typeof checked === 'string') {
        refused++;
        assert.ok(checked.startsWith(field === 'id' || field === 'time' ? '' : field), `${label}: ${checked}`);
      }
    }
    assert.ok(refused > 100, `most variants are invalid (${refused} refused)`);
  });

  it('leaves out no value zod would refuse for a wrong type (whole record, arrays, time against the id)', () => {
    for (const value of [null, [], 'record', 1]) assert.equal(typeof checkAuditRecord(value), 'string');
    const record = JSON.parse(JSON.stringify(full())) as Record<string, unknown>;
    record['time'] = (record['time'] as number) + 1;
    assert.equal(checkAuditRecord(record), 'time: must be the timestamp of the UUIDv7 id');
  });

  it('refuses a NUL character in any text (PostgreSQL text cannot store it), naming the field', () => {
    const record = JSON.parse(JSON.stringify(full())) as Record<string, unknown>;
    record['tool'] = 'ev__\u0000echo';
    assert.equal(checkAuditRecord(record), 'tool: must not contain NUL characters');
  });

  it('reads rows and objects: empty lines skipped, a bad record counted with its number, id and problem', () => {
    const record = full();
    const good = auditRow(record);
    const bad = full();
    bad.latencyUs = -5;
    const badObject = full();
    badObject.kind = 'nonsense' as AuditRecord['kind'];
    const text = `${good}\n\n${auditRow(bad)}\n{"id":\n${JSON.stringify(record)}\n${JSON.stringify(badObject)}`;
    const lines = [...ndjsonLines(Buffer.from(text))];
    assert.equal(lines.length, 5);
    const batch = parseAuditBatch(lines);
    assert.equal(batch.records.length, 2);
    assert.deepEqual(batch.records[0], batch.records[1], 'a row and an object of one record are read alike');
    assert.equal(batch.rejected, 3);
    assert.equal(batch.problems[0], `record 2 (id ${bad.id}): latencyUs: must be an integer from 0 to 2147483647`);
    assert.match(batch.problems[1]!, /^record 3: not JSON/);
    assert.match(batch.problems[2]!, new RegExp(`^record 5 \\(id ${badObject.id}\\): kind: must be one of`));
  });

  it('reads a row shorter than today’s (an older node’s) with null for the fields it lacks', () => {
    const record = full();
    const row = JSON.parse(auditRow(record)) as unknown[];
    const [parsed] = parseAuditBatch([JSON.stringify(row.slice(0, -3))]).records;
    assert.equal(parsed?.id, record.id);
    assert.equal(parsed?.sessionId, null);
    assert.equal(parsed?.clientVersion, null);
    assert.equal(parsed?.traceId, record.traceId);
  });
  it('stores a row’s arguments and result, JSON values in the row, as their JSON text; one too deep is refused', () => {
    const record = full();
    record.arguments = JSON.stringify({ message: 'say "hi"', list: [1, { a: null }] });
    record.result = JSON.stringify({ content: [{ type: 'text', text: 'Echo: say "hi"' }] });
    const row = auditRow(record);
    assert.ok(row.includes(`,${record.arguments},${record.result},`), 'carried as the values, not escaped strings');
    const [parsed] = parseAuditBatch([row]).records;
    assert.equal(parsed?.arguments, record.arguments);
    assert.equal(parsed?.result, record.result);
    const deep = `${'['.repeat(20_000)}${']'.repeat(20_000)}`;
    const tooDeep = row.replace(record.arguments, deep);
    const refused = parseAuditBatch([tooDeep]);
    assert.equal(refused.rejected, 1);
    assert.equal(refused.problems[0], `record 1 (id ${record.id}): arguments or result: nested too deeply to store`);
  });
});
