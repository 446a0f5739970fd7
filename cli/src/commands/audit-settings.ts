import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import type { DataPlaneOptions } from '../../../data-plane/src/index.ts';
import { DEFAULT_MAX_VALUE_CHARS } from '../../../data-plane/src/audit/audit-content.ts';
import { listOption, type OptionTable, type ParsedOptions } from '../options.ts';

const list = listOption().optional();

/** The data-plane node's audit trail settings. */
export const auditSettings = {
  audit: {
    flag: 'audit',
    env: 'PORTCULLIS_AUDIT',
    description:
      'keep an audit trail of every operation ("on"), or none at all ("off": no spool, no records; for measuring ' +
      'what recording costs, not for production)',
    schema: z.enum(['on', 'off'], { error: 'must be "on" or "off"' }).default('on'),
    defaultLabel: 'on',
  },
  auditSpoolDir: {
    flag: 'audit-spool-dir',
    env: 'PORTCULLIS_AUDIT_SPOOL_DIR',
    description:
      "directory of this node's audit spool (records wait there until the control plane stored them); one " +
      'directory per node, kept across restarts so nothing is lost',
    schema: z.string().min(1).optional(),
    defaultLabel: '<tmpdir>/portcullis-audit-<node-id>-<port>',
  },
  auditSpoolMaxBytes: {
    flag: 'audit-spool-max-bytes',
    env: 'PORTCULLIS_AUDIT_SPOOL_MAX_BYTES',
    description: 'size of the audit spool on disk past which it is full (see --audit-when-full)',
    schema: z.coerce
      .number({ error: 'must be a number of bytes' })
      .int()
      .min(4096, 'must be at least 4096')
      .default(1024 * 1024 * 1024),
    defaultLabel: '1073741824 (1 GiB)',
  },
  auditWhenFull: {
    flag: 'audit-when-full',
    env: 'PORTCULLIS_AUDIT_WHEN_FULL',
    description:
      'while the audit spool is full: "refuse" new calls (JSON-RPC error -32048, HTTP 503) so that nothing goes ' +
      'unrecorded, or "serve" on and count the records lost (portcullis_audit_records_dropped_total)',
    schema: z.enum(['refuse', 'serve'], { error: 'must be "refuse" or "serve"' }).default('refuse'),
    defaultLabel: 'refuse',
  },
  auditContent: {
    flag: 'audit-content',
    env: 'PORTCULLIS_AUDIT_CONTENT',
    description:
      'record tool arguments and results as the control plane says ("on": auditSettings, upstream and key ' +
      'auditContent) or, on this node, only the metadata of each call whatever it says ("off")',
    schema: z.enum(['on', 'off'], { error: 'must be "on" or "off"' }).default('on'),
    defaultLabel: 'on',
  },
  auditContentOffUpstreams: {
    flag: 'audit-content-off-upstreams',
    env: 'PORTCULLIS_AUDIT_CONTENT_OFF_UPSTREAMS',
    description:
      'comma-separated upstream names whose calls this node records without arguments and results (on top of ' +
      "the control plane's auditContent: either switching content off is enough)",
    schema: list,
  },
  auditContentOffKeys: {
    flag: 'audit-content-off-keys',
    env: 'PORTCULLIS_AUDIT_CONTENT_OFF_KEYS',
    description:
      'comma-separated virtual key ids whose calls this node records without arguments and results (wins over ' +
      'a key whose auditContent is ON)',
    schema: list,
  },
  auditMaxValueChars: {
    flag: 'audit-max-value-chars',
    env: 'PORTCULLIS_AUDIT_MAX_VALUE_CHARS',
    description:
      'arguments or a result longer than this (as JSON text) are recorded as ' +
      '{"$truncated":true,"chars":N,"prefix":"…"}',
    schema: z.coerce.number({ error: 'must be a number' }).int().min(64).default(DEFAULT_MAX_VALUE_CHARS),
    defaultLabel: String(DEFAULT_MAX_VALUE_CHARS),
  },
} satisfies OptionTable;

export function auditOptions(
  settings: ParsedOptions<typeof auditSettings>,
  nodeId: string,
  port: number,
): DataPlaneOptions['audit'] {
  // Off: the node is started without a recorder, so the record step writes nothing (pipeline.ts).
  if (settings.audit === 'off') return undefined;
  return {
    spoolDir: settings.auditSpoolDir ?? join(tmpdir(), `portcullis-audit-${nodeId}-${port}`),
    maxSpoolBytes: settings.auditSpoolMaxBytes,
    whenFull: settings.auditWhenFull,
    content: {
      enabled: settings.auditContent === 'on',
      offForUpstreams: settings.auditContentOffUpstreams ?? [],
      offForKeys: settings.auditContentOffKeys ?? [],
      maxValueChars: settings.auditMaxValueChars,
    },
  };
}
