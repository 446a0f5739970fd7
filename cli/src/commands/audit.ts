import pg from 'pg';
import { z } from 'zod';
import { ErrorCode, PortcullisError } from '../../../common/src/index.ts';
import { CHAINED_COLUMNS } from '../../../control-plane/src/services/audit-chain.ts';
import { AUDIT_KINDS, AUDIT_STATUSES, auditConditions } from '../../../control-plane/src/services/audit-queries.ts';
import { verifyAuditChain } from '../../../control-plane/src/services/audit-verify.ts';
import { helpText, readOptions } from '../options.ts';

const database = {
  databaseUrl: {
    flag: 'database-url',
    env: 'DATABASE_URL',
    description: "the control plane's PostgreSQL URL (a role that may read audit_events)",
    schema: z.string().refine((v) => /^postgres(ql)?:\/\//.test(v), 'must be a postgres:// URL'),
  },
  databaseSchema: {
    flag: 'database-schema',
    env: 'PORTCULLIS_DATABASE_SCHEMA',
    description: 'PostgreSQL schema holding the tables',
    schema: z
      .string()
      .regex(/^[a-z_][a-z0-9_]{0,62}$/, 'must be a lower-case SQL identifier')
      .default('public'),
    defaultLabel: 'public',
  },
};

const time = (what: string) =>
  z
    .string()
    .refine((v) => !Number.isNaN(Date.parse(v)), `must be an ISO 8601 time, e.g. 2026-12-03T00:00:00Z (${what})`)
    .optional();

export const auditExportOptionTable = {
  ...database,
  from: { flag: 'from', description: 'first time included (ISO 8601)', schema: time('from') },
  to: { flag: 'to', description: 'first time excluded (ISO 8601)', schema: time('to') },
  key: { flag: 'key', description: 'only this virtual key id', schema: z.string().optional() },
  team: { flag: 'team', description: 'only this team id', schema: z.string().optional() },
  tool: {
    flag: 'tool',
    description: 'only this tool (as agents name it, e.g. ev__echo)',
    schema: z.string().optional(),
  },
  kind: {
    flag: 'kind',
    description: 'only this kind',
    schema: z.enum(Object.values(AUDIT_KINDS)).optional(),
  },
  status: {
    flag: 'status',
    description: 'only this status',
    schema: z.enum(Object.values(AUDIT_STATUSES)).optional(),
  },
  parent: { flag: 'parent', description: 'only records with this parent id', schema: z.string().optional() },
};

export const auditHelp = `${helpText(
  'Usage: portcullis audit verify [options]',
  "Checks the audit trail's hash chain in PostgreSQL and names every altered, inserted or missing row by id " +
    '(exit 1 when any).',
  database,
)}\n${helpText(
  'Usage: portcullis audit export [options] > records.ndjson',
  'Writes audit records (oldest first) as newline-delimited JSON to standard output.',
  auditExportOptionTable,
)}`;

async function connect(url: string, schema: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url, options: `-c search_path="${schema}"` });
  await client.connect();
  return client;
}

export async function runAudit(argv: readonly string[]): Promise<void> {
  const [sub, ...rest] = argv;
  if (sub === 'verify') return verify(rest);
  if (sub === 'export') return exportRecords(rest);
  throw new PortcullisError(
    ErrorCode.BAD_USER_INPUT,
    `audit: say "verify" or "export", not "${sub ?? ''}" (see --help)`,
  );
}

async function verify(argv: readonly string[]): Promise<void> {
  const options = readOptions(database, argv, process.env);
  const client = await connect(options.databaseUrl, options.databaseSchema);
  try {
    const report = await verifyAuditChain(client);
    for (const p of report.problems)
      process.stdout.write(`${p.problem.toUpperCase()} seq=${p.seq} id=${p.id ?? '(unknown)'}\n`);
    process.stdout.write(
      `${report.problems.length === 0 ? 'OK' : 'BROKEN'}: checked ${report.checked} rows (seq ${report.fromSeq} < ` +
        `seq <= ${report.headSeq}), ${report.problems.length} problem(s)\n`,
    );
    if (report.problems.length > 0) process.exitCode = 1;
  } finally {
    await client.end();
  }
}

async function exportRecords(argv: readonly string[]): Promise<void> {
  const options = readOptions(auditExportOptionTable, argv, process.env);
  const { where, params } = auditConditions({
    from: options.from === undefined ? undefined : new Date(options.from),
    to: options.to === undefined ? undefined : new Date(options.to),
    keyId: options.key,
    teamId: options.team,
    tool: options.tool,
    kind: options.kind,
    status: options.status,
    parentId: options.parent,
  });
  const client = await connect(options.databaseUrl, options.databaseSchema);
  try {
    let after = '0';
    for (;;) {
      const page = await client.query<Record<string, unknown> & { seq: string }>(
        `SELECT ${CHAINED_COLUMNS} FROM audit_events WHERE audit_events.seq > ` +
          `$${params.length + 1}::bigint${where.map((w) => ` AND ${w}`).join('')} ORDER BY audit_events.seq LIMIT 2000`,
        [...params, after],
      );
      for (const row of page.rows) {
        const { hash: _hash, ...record } = row;
        if (!process.stdout.write(`${JSON.stringify(record)}\n`))
          await new Promise((resolve) => process.stdout.once('drain', resolve));
      }
      if (page.rows.length < 2000) break;
      after = page.rows[page.rows.length - 1]!.seq;
    }
  } finally {
    await client.end();
  }
}
