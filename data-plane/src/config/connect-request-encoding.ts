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
 * written into a buffer of the exact size and the spool's bytes are copied once. Every other message goes
 * through the generated encoder; `test/unit/connect-request-encoding.test.ts` holds the two to the same bytes.
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

export function serializeConnectRequest(request: ConnectRequest): Buffer {
  const kind = request.kind;
  if (kind?.$case !== 'audit' || kind.value.recordsJson.length > 0 || kind.value.recordsNdjson.length === 0)
    return Buffer.from(ConnectRequest.encode(request).finish());
  const { batchId, recordsNdjson } = kind.value;
  const idSize = batchId === 0 ? 0 : 1 + varintSize(batchId);
  const batchSize = idSize + varintSize(RECORDS_NDJSON_TAG) + varintSize(recordsNdjson.length) + recordsNdjson.length;
  const buffer = Buffer.allocUnsafe(varintSize(AUDIT_TAG) + varintSize(batchSize) + batchSize);
  let pos = writeVarint(buffer, 0, AUDIT_TAG);
  pos = writeVarint(buffer, pos, batchSize);
  if (batchId !== 0) pos = writeVarint(buffer, writeVarint(buffer, pos, BATCH_ID_TAG), batchId);
  pos = writeVarint(buffer, pos, RECORDS_NDJSON_TAG);
  pos = writeVarint(buffer, pos, recordsNdjson.length);
  buffer.set(recordsNdjson, pos);
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
