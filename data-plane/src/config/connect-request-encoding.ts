import { makeGenericClientConstructor, type ChannelCredentials, type ClientOptions } from '@grpc/grpc-js';
import {
  ConfigServiceService,
  ConnectRequest,
  type ConfigServiceClient,
} from '../../../proto/gen/portcullis/v1/config.ts';

/**
 * The node's side of the config stream, with one message encoded by hand: an audit batch of spool bytes.
 *
 * The generated encoder builds a `ConnectRequest` in a growing, zero-filled buffer (doubled from 1 KiB up to
 * 1 MiB for a batch of 1,000 records), shifts the batch when its length prefix widens, slices the result and
 * copies it into a Buffer: five passes over half a megabyte and two big allocations per batch, about 1.4 µs of
 * node CPU per record shipped (profiled, draining a backlog in the audit ingest row). Here the prefix is
 * written in front of the spool's bytes, in room the spool's read left there (`withPrefixRoom`), so the batch
 * is not copied at all (grpc-js copies the message once more, to put its own 5-byte frame header in front);
 * without that room, into a buffer of the exact size with one copy. Every other message goes through the
 * generated encoder; `test/unit/connect-request-encoding.test.ts` holds the two to the same bytes.
 */

/** `ConnectRequest.audit` (field 5, length-delimited). */
const AUDIT_TAG = (5 << 3) | 2;
/** `AuditBatch.batch_id` (field 1, varint). */
const BATCH_ID_TAG = (1 << 3) | 0;
/** `AuditBatch.records_ndjson` (field 50, length-delimited): 402, two bytes as a varint. */
const RECORDS_NDJSON_TAG = (50 << 3) | 2;

function varintSize(value: number): number {
  let size = 1;
  for (let rest = value; rest >= 0x80; rest = Math.floor(rest / 0x80)) size++;
  return size;
}

/** Writes a non-negative safe integer as a protobuf varint (no 32-bit operators: ids may pass 2^32). */
function writeVarint(buffer: Buffer, at: number, value: number): number {
  let rest = value;
  let pos = at;
  while (rest >= 0x80) {
    buffer[pos++] = (rest % 0x80) | 0x80;
    rest = Math.floor(rest / 0x80);
  }
  buffer[pos++] = rest;
  return pos;
}

/**
 * The most bytes an audit batch's prefix takes: the two tags of one byte, the records' tag of two, and three
 * varints (the batch id up to 8 bytes for a safe integer, the two lengths up to 5 bytes each).
 */
export const AUDIT_PREFIX_BYTES = 1 + 5 + 1 + 8 + 2 + 5;

/** Batches whose buffer has AUDIT_PREFIX_BYTES free before them, told by whoever allocated it. */
const prefixRoom = new WeakSet<Uint8Array>();

/**
 * Says that the AUDIT_PREFIX_BYTES before `records` in its buffer are free and may be written (the spool's
 * read leaves them: `read(max, AUDIT_PREFIX_BYTES)`); returns `records`.
 */
export function withPrefixRoom<T extends Uint8Array>(records: T): T {
  if (records.byteOffset < AUDIT_PREFIX_BYTES) throw new RangeError('no room for the prefix before these bytes');
  prefixRoom.add(records);
  return records;
}

export function serializeConnectRequest(request: ConnectRequest): Buffer {
  const kind = request.kind;
  if (kind?.$case !== 'audit' || kind.value.recordsJson.length > 0 || kind.value.recordsNdjson.length === 0)
    return Buffer.from(ConnectRequest.encode(request).finish());
  const { batchId, recordsNdjson } = kind.value;
  const idSize = batchId === 0 ? 0 : 1 + varintSize(batchId);
  const batchSize = idSize + varintSize(RECORDS_NDJSON_TAG) + varintSize(recordsNdjson.length) + recordsNdjson.length;
  const prefixSize = varintSize(AUDIT_TAG) + varintSize(batchSize) + batchSize - recordsNdjson.length;
  const inPlace = prefixRoom.has(recordsNdjson);
  const buffer = inPlace
    ? Buffer.from(recordsNdjson.buffer, recordsNdjson.byteOffset - prefixSize, prefixSize + recordsNdjson.length)
    : Buffer.allocUnsafe(prefixSize + recordsNdjson.length);
  let pos = writeVarint(buffer, 0, AUDIT_TAG);
  pos = writeVarint(buffer, pos, batchSize);
  if (batchId !== 0) pos = writeVarint(buffer, writeVarint(buffer, pos, BATCH_ID_TAG), batchId);
  pos = writeVarint(buffer, pos, RECORDS_NDJSON_TAG);
  pos = writeVarint(buffer, pos, recordsNdjson.length);
  if (!inPlace) buffer.set(recordsNdjson, pos);
  return buffer;
}

const SERVICE = {
  ...ConfigServiceService,
  connect: { ...ConfigServiceService.connect, requestSerialize: serializeConnectRequest },
} as const;

/** The generated client, with `serializeConnectRequest` for what the node sends. */
export const NodeConfigServiceClient = makeGenericClientConstructor(
  SERVICE,
  'portcullis.v1.ConfigService',
) as unknown as {
  new (address: string, credentials: ChannelCredentials, options?: Partial<ClientOptions>): ConfigServiceClient;
};
