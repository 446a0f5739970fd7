import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConnectRequest } from '../../proto/gen/portcullis/v1/config.ts';
import { serializeConnectRequest } from '../../data-plane/src/config/connect-request-encoding.ts';

function audit(batchId: number, bytes: number): ConnectRequest {
  const recordsNdjson = Buffer.alloc(bytes);
  for (let i = 0; i < bytes; i++) recordsNdjson[i] = i % 97 === 96 ? 10 : 32 + (i % 90);
  return { kind: { $case: 'audit', value: { batchId, recordsJson: [], recordsNdjson } } };
}

test('an audit batch of spool bytes encodes to the generated encoder’s bytes, and decodes back', () => {
  // Ids and sizes either side of each varint width (1, 2, 3 bytes; ids past 2^32).
  for (const batchId of [0, 1, 127, 128, 16_383, 16_384, 2 ** 32 + 5, Number.MAX_SAFE_INTEGER]) {
    for (const bytes of [1, 100, 127, 128, 16_383, 16_384, 600_000, 2_100_000]) {
      const request = audit(batchId, bytes);
      const ours = serializeConnectRequest(request);
      const generated = Buffer.from(ConnectRequest.encode(request).finish());
      assert.ok(ours.equals(generated), `batch ${batchId}, ${bytes} bytes`);
      const back = ConnectRequest.decode(ours);
      assert.equal(back.kind?.$case, 'audit');
      if (back.kind?.$case === 'audit') {
        assert.equal(back.kind.value.batchId, batchId);
        assert.ok(
          Buffer.from(back.kind.value.recordsNdjson).equals(
            Buffer.from(request.kind?.$case === 'audit' ? request.kind.value.recordsNdjson : []),
          ),
        );
      }
    }
  }
});

test('other messages go through the generated encoder unchanged', () => {
  const messages: ConnectRequest[] = [
    { kind: { $case: 'audit', value: { batchId: 3, recordsJson: ['{"id":"a"}'], recordsNdjson: Buffer.alloc(0) } } },
    { kind: { $case: 'audit', value: { batchId: 4, recordsJson: [], recordsNdjson: Buffer.alloc(0) } } },
    { kind: { $case: 'ack', value: { version: '7', accepted: true, error: '' } } },
    { kind: undefined },
  ];
  for (const message of messages)
    assert.ok(serializeConnectRequest(message).equals(Buffer.from(ConnectRequest.encode(message).finish())));
});
