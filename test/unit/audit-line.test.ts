import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  auditLine,
  newAuditRecord,
  newAuditStamp,
  uuidV7,
  type AuditRecord,
} from '../../data-plane/src/audit/audit-record.ts';
import { parseAuditRecord } from '../../control-plane/src/services/audit-store.ts';

const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

function full(): AuditRecord {
  const record = newAuditRecord('node "a"\n', 'tool_call', 'tool_error');
  Object.assign(record, {
    method: 'tools/call',
    keyId: 'k1',
    teamId: 't\u00e9am',
    customerId: 'c\\1',
    subject: 'user@example.com',
    upstream: 'ev',
    tool: 'ev__echo \u{1F600}',
    arguments: JSON.stringify({ text: 'say "hi"\n\u2028' }),
    result: JSON.stringify({ content: [{ type: 'text', text: '\u0000\u001f</script>' }], isError: true }),
    error: { code: -32603, message: 'Internal "error"' },
    latencyUs: 1234,
    gatewayLatencyUs: 200,
    upstreamLatencyUs: 1034,
    costMicros: 17,
    parentId: 'run-1',
    traceId: '0af7651916cd43dd8448eb211c80319c',
    sessionId: 'sig',
    clientName: 'agent',
    clientVersion: '1.0',
  });
  return record;
}

describe('audit line', () => {
  it('is the text JSON.stringify gives, for a full record and an empty one', () => {
    for (const record of [full(), newAuditRecord('n', 'discovery', 'ok')]) {
      assert.equal(auditLine(record), JSON.stringify(record));
      assert.ok(parseAuditRecord(auditLine(record)), 'the control plane takes it');
    }
  });

  it('carries every field of a record (a field added to AuditRecord but not to the line fails here)', () => {
    const record = full();
    assert.deepEqual(Object.keys(JSON.parse(auditLine(record)) as object), Object.keys(record));
  });

  it('writes a number that is not finite as null, keeping the line JSON', () => {
    const record = newAuditRecord('n', 'request', 'ok');
    record.latencyUs = Number.NaN;
    record.costMicros = Number.POSITIVE_INFINITY;
    const parsed = JSON.parse(auditLine(record)) as Record<string, unknown>;
    assert.equal(parsed['latencyUs'], null);
    assert.equal(parsed['costMicros'], null);
  });
});

describe('audit stamp', () => {
  it('is a lower-case UUIDv7 whose timestamp is the time, random in its other bits', () => {
    const stamp = newAuditStamp();
    assert.match(stamp.id, UUID_V7);
    assert.equal(Number.parseInt(stamp.id.slice(0, 8) + stamp.id.slice(9, 13), 16), stamp.time);
    for (const ms of [0, 1, 2 ** 32 + 5, 1_797_500_000_123, 2 ** 48 - 1]) {
      const id = uuidV7(ms);
      assert.match(id, UUID_V7);
      assert.equal(Number.parseInt(id.slice(0, 8) + id.slice(9, 13), 16), ms);
    }
    // More ids than one draw of the random pool holds, all in the same millisecond: none repeats.
    const ids = new Set(Array.from({ length: 2_000 }, () => uuidV7(42)));
    assert.equal(ids.size, 2_000);
  });
});
