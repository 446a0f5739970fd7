import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConnectRequest } from '../../proto/gen/portcullis/v1/config.ts';
import {
  AUDIT_PREFIX_BYTES,
  serializeConnectRequest,
  withPrefixRoom,
} from '../../data-plane/src/config/connect-request-encoding.ts';

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

test('a batch read with room for the prefix is encoded in place: the same bytes, the records not copied', () => {
  for (const batchId of [0, 1, 16_384, Number.MAX_SAFE_INTEGER]) {
    for (const bytes of [1, 128, 16_384, 600_000]) {
      const plain = audit(batchId, bytes);
      const records = plain.kind?.$case === 'audit' ? plain.kind.value.recordsNdjson : Buffer.alloc(0);
      const spare = Buffer.alloc(AUDIT_PREFIX_BYTES + 7 + bytes, 0xee);
      records.forEach((byte, i) => {
        spare[AUDIT_PREFIX_BYTES + 7 + i] = byte;
      });
      const inRoom = withPrefixRoom(spare.subarray(AUDIT_PREFIX_BYTES + 7));
      const ours = serializeConnectRequest({
        kind: { $case: 'audit', value: { batchId, recordsJson: [], recordsNdjson: inRoom } },
      });
      assert.ok(ours.equals(Buffer.from(ConnectRequest.encode(plain).finish())), `batch ${batchId}, ${bytes} bytes`);
      assert.equal(ours.buffer, spare.buffer, 'encoded in the records’ own buffer');
      assert.equal(ours.byteOffset + ours.length, spare.byteOffset + spare.length);
      assert.equal(spare[6], 0xee, 'nothing written before the prefix');
    }
  }
  assert.throws(() => withPrefixRoom(Buffer.alloc(10).subarray(3)), /no room for the prefix/);
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
