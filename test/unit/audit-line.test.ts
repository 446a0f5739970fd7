import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AUDIT_ROW_FIELDS } from '../../common/src/audit-fields.ts';
import {
  auditRow,
  newAuditRecord,
  objectLine,
  recordOfLine,
  newAuditStamp,
  uuidV7,
  type AuditRecord,
} from '../../data-plane/src/audit/audit-record.ts';
import { AuditContent } from '../../data-plane/src/audit/audit-content.ts';
import { parseAuditRecord } from '../../control-plane/src/services/audit-store.ts';

/**
 * What the row of a record must be: JSON.stringify of its values in AUDIT_ROW_FIELDS order, the arguments and
 * result as the JSON values their text holds.
 */
function rowOf(record: AuditRecord): string {
  return JSON.stringify(
    AUDIT_ROW_FIELDS.map((field) => {
      const value = record[field];
      return (field === 'arguments' || field === 'result') && typeof value === 'string' ? JSON.parse(value) : value;
    }),
  );
}

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

describe('audit line (a row)', () => {
  it('is the row JSON.stringify gives, for a full record and an empty one, and the control plane takes it', () => {
    for (const record of [full(), newAuditRecord('n', 'discovery', 'ok')]) {
      assert.equal(auditRow(record), rowOf(record));
      assert.deepEqual(parseAuditRecord(auditRow(record)), parseAuditRecord(JSON.stringify(record)));
      assert.ok(parseAuditRecord(auditRow(record)), 'the control plane takes it');
    }
  });

  it('carries every field of a record (a field added to AuditRecord but not to the row fails here)', () => {
    const record = full();
    assert.deepEqual([...AUDIT_ROW_FIELDS], Object.keys(record));
    assert.deepEqual(recordOfLine(auditRow(record)), record);
  });

  it('turns back into the object line a control plane before rows takes; an object line stays as it is', () => {
    for (const record of [full(), newAuditRecord('n', 'discovery', 'ok')]) {
      assert.equal(objectLine(auditRow(record)), JSON.stringify(record));
      assert.equal(objectLine(JSON.stringify(record)), JSON.stringify(record));
    }
    assert.equal(
      objectLine('["torn'),
      '["torn',
      'a line that is not JSON goes as it is, for the control plane to refuse',
    );
  });

  it('is about half as long as the object line of a typical tool call', () => {
    const record = newAuditRecord('node-1', 'tool_call', 'ok');
    Object.assign(record, {
      method: 'tools/call',
      keyId: '0193a1b2-0000-7000-8000-00000000abcd',
      upstream: 'everything',
      tool: 'everything__echo',
      arguments: '{"message":"hello"}',
      result: '{"content":[{"type":"text","text":"Echo: hello"}]}',
      latencyUs: 812,
      gatewayLatencyUs: 90,
      upstreamLatencyUs: 722,
    });
    assert.ok(auditRow(record).length < JSON.stringify(record).length * 0.6);
  });

  it('keeps one line per record for JSON text with line breaks, which are whitespace between its tokens', () => {
    const record = newAuditRecord('n', 'tool_call', 'ok');
    record.arguments = JSON.stringify({ text: 'two\nlines', list: [1, 2] }, null, 2);
    record.result = '{\r\n"content": []\n}';
    const line = auditRow(record);
    assert.equal(line.includes('\n'), false);
    const stored = parseAuditRecord(line);
    assert.equal(stored?.arguments, JSON.stringify({ text: 'two\nlines', list: [1, 2] }));
    assert.equal(stored?.result, '{"content":[]}');
  });

  it('writes a number that is not finite as null, keeping the line JSON', () => {
    const record = newAuditRecord('n', 'request', 'ok');
    record.latencyUs = Number.NaN;
    record.costMicros = Number.POSITIVE_INFINITY;
    const parsed = recordOfLine(auditRow(record)) as unknown as Record<string, unknown>;
    assert.equal(parsed['latencyUs'], null);
    assert.equal(parsed['costMicros'], null);
  });
});

/** Every string a field may hold that JSON must escape or UTF-8 must encode in more than one byte. */
const AWKWARD = [
  '',
  'plain',
  'say "hi" \\ back\\slash /',
  Array.from({ length: 32 }, (_, c) => String.fromCharCode(c)).join(''),
  '\u007f\u0080\u00e9\u07ff\u0800\u2028\u2029\uffff',
  '\u{1F600} pair, then lone: \ud800 \udfff, reversed \udc00\ud800, at the end \ud83d',
  `${'x'.repeat(600)}"\n\u00e9\u{1F600}\ud800`,
];

/** A deterministic pseudo-random string mixing every kind of character above. */
function mixed(seed: number, length: number): string {
  const alphabet = `${AWKWARD.join('')}abcdefghij{}[]:,`;
  let text = '';
  let state = seed;
  for (let i = 0; i < length; i++) {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    text += alphabet[state % alphabet.length];
  }
  return text;
}

function recordsToCompare(): AuditRecord[] {
  const content = new AuditContent({ maxValueChars: 1000 });
  const off = new AuditContent({ enabled: false });
  const records: AuditRecord[] = [full(), newAuditRecord('n', 'discovery', 'ok')];
  for (const [i, text] of AWKWARD.entries()) {
    const record = newAuditRecord(text === '' ? 'n' : text, 'request', 'error');
    Object.assign(record, {
      method: text,
      keyId: text,
      tool: text,
      arguments: content.clip({ text }),
      result: content.clip({ content: [{ type: 'text', text }] }),
      error: { code: -32000 - i, message: text },
      clientName: text,
    });
    records.push(record);
  }
  for (let seed = 1; seed <= 60; seed++) {
    const record = newAuditRecord(`node-${seed}`, 'tool_call', seed % 2 === 0 ? 'ok' : 'tool_error');
    const args = { text: mixed(seed, seed * 7) };
    const result = { content: [{ type: 'text', text: mixed(seed + 1000, seed * 37) }] };
    const contentFor = seed % 3 === 0 ? off : content;
    Object.assign(record, {
      method: 'tools/call',
      subject: mixed(seed + 7, seed % 11),
      upstream: 'ev',
      tool: mixed(seed + 3, 20),
      // Past 1,000 characters a value is the truncation marker; content off leaves both null.
      arguments: contentFor.allows('ev', null) ? contentFor.clip(args) : null,
      result: contentFor.allows('ev', null) ? contentFor.clip(result) : null,
      latencyUs: seed * 1_234_567,
      gatewayLatencyUs: seed,
      upstreamLatencyUs: seed % 5 === 0 ? null : seed * 1000,
      costMicros: [null, 0, -1, 1.5, 2 ** 53, 1e21, -0, Number.NaN][seed % 8],
      modelCostMicros: seed % 4 === 0 ? Number.MAX_SAFE_INTEGER : null,
      sessionId: mixed(seed + 9, 64),
    });
    records.push(record);
  }
  return records;
}

describe('audit line, over a range of records', () => {
  it('is the text JSON.stringify gives for every escape, encoding, truncation and content setting', () => {
    const records = recordsToCompare();
    assert.ok(
      records.some((r) => r.result?.startsWith('{"$truncated":true')),
      'a truncated result is among them',
    );
    assert.ok(
      records.some((r) => r.method === 'tools/call' && r.result === null),
      'a record with content off too',
    );
    for (const record of records) {
      const line = auditRow(record);
      assert.equal(line, rowOf(record), `record ${record.id}`);
      assert.ok(Buffer.from(line).equals(Buffer.from(rowOf(record))), 'the same bytes in the spool');
    }
  });
});

describe('audit line, record after record', () => {
  it('follows every field from one record to the next, repeated, changed, null and back', () => {
    const values = ['k1', 'k1', 'k2', null, null, 'k1', 'say "k1"', 'k1'];
    for (const value of values) {
      const record = full();
      for (const field of ['method', 'keyId', 'teamId', 'customerId', 'subject', 'upstream', 'tool'] as const)
        record[field] = value;
      for (const field of ['sessionId', 'clientName', 'clientVersion'] as const) record[field] = value;
      assert.equal(auditRow(record), rowOf(record));
    }
    // One field at a time: a row reuses the text of the fields it shares with the row before.
    const fields = ['method', 'keyId', 'teamId', 'customerId', 'subject', 'upstream', 'tool'] as const;
    for (const field of [...fields, 'sessionId', 'clientName', 'clientVersion'] as const) {
      for (const value of ['v1', 'v1', 'v2', null, 'v1']) {
        const record = full();
        record[field] = value;
        assert.equal(auditRow(record), rowOf(record), `${field} = ${value}`);
      }
    }
    for (const [kind, status] of [
      ['tool_call', 'ok'],
      ['tool_call', 'tool_error'],
      ['refusal', 'tool_error'],
      ['refusal', 'refused'],
    ] as const) {
      const record = full();
      Object.assign(record, { kind, status });
      assert.equal(auditRow(record), rowOf(record), `${kind} ${status}`);
    }
    for (const node of ['a', 'a', 'b', 'a']) {
      const record = newAuditRecord(node, 'request', 'ok');
      assert.equal(auditRow(record), rowOf(record));
    }
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

  it('is monotonic within a millisecond, and random again in the next', () => {
    const first = Array.from({ length: 5_000 }, () => uuidV7(1_797_500_000_123));
    const next = Array.from({ length: 3 }, () => uuidV7(1_797_500_000_124));
    for (const id of [...first, ...next]) assert.match(id, UUID_V7);
    assert.deepEqual([...first].sort(), first, 'ids of one millisecond sort in the order they were made');
    assert.ok(first.at(-1)! < next[0]!, 'a later millisecond sorts after');
    // Sharing a millisecond's random bits is within one process: another millisecond draws new ones.
    const other = uuidV7(1_797_500_000_125);
    assert.notEqual(other.slice(14, 28), next[0]!.slice(14, 28));
    assert.notEqual(uuidV7(7).slice(14), uuidV7(8).slice(14));
  });
});
