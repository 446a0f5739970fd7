import type { RoundTripRow, RunResults } from '../results.ts';

/** The stdout view of a run: one aligned table of round trips, then notes and targets. */

const f = (v: number | undefined, digits: number): string =>
  v === undefined || !Number.isFinite(v) ? '' : v.toFixed(digits);

interface Column {
  title: string;
  right?: boolean;
  cell(row: RoundTripRow): string;
}

const LIST_COLUMNS: Column[] = [
  { title: 'tools', right: true, cell: (r) => String(r.upstreamTools ?? '') },
  { title: 'keys', right: true, cell: (r) => String(r.keysConfigured ?? '') },
];

const BASE_COLUMNS: Column[] = [
  { title: 'upstream', cell: (r) => r.upstream },
  { title: 'path', cell: (r) => r.path },
  { title: 'client', cell: (r) => r.driver },
  { title: 'c', right: true, cell: (r) => String(r.concurrency) },
  { title: 'calls', right: true, cell: (r) => (r.calls === undefined ? '' : `${r.calls}${r.truncated ? '*' : ''}`) },
  { title: 'p50 ms', right: true, cell: (r) => f(r.p50Ms, 3) },
  { title: 'p99 ms', right: true, cell: (r) => f(r.p99Ms, 3) },
  { title: 'calls/s', right: true, cell: (r) => f(r.callsPerSec, 0) },
  { title: 'cpu/call ms', right: true, cell: (r) => f(r.cpuPerCallMs, 3) },
  { title: '+child cpu', right: true, cell: (r) => (r.childrenCpuPerCallMs ? f(r.childrenCpuPerCallMs, 3) : '') },
  { title: 'load cpu', right: true, cell: (r) => f(r.clientCpuPerCallMs, 3) },
  { title: 'p50/direct', right: true, cell: (r) => (r.path === 'direct' ? '' : f(r.p50VsDirect, 2)) },
  { title: 'tput/direct', right: true, cell: (r) => (r.path === 'direct' ? '' : f(r.throughputVsDirect, 2)) },
  { title: 'errors', right: true, cell: (r) => (r.failed ? `FAILED: ${r.failed}` : r.errors ? String(r.errors) : '') },
];

export function renderTable(rows: RoundTripRow[], leading: Column[] = []): string {
  const COLUMNS = [...leading, ...BASE_COLUMNS];
  const cells = rows.map((row) => COLUMNS.map((c) => c.cell(row)));
  const widths = COLUMNS.map((c, i) =>
    Math.max(c.title.length, ...cells.map((r) => (i === COLUMNS.length - 1 ? 0 : r[i]!.length))),
  );
  const line = (values: string[]) =>
    values
      .map((v, i) => (i === COLUMNS.length - 1 ? v : COLUMNS[i]!.right ? v.padStart(widths[i]!) : v.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  const out = [line(COLUMNS.map((c) => c.title)), line(widths.map((w) => '-'.repeat(w)))];
  let previousGroup = '';
  for (let i = 0; i < rows.length; i++) {
    const group = `${rows[i]!.upstreamTools}/${rows[i]!.upstream}/${rows[i]!.driver}/${rows[i]!.concurrency}`;
    if (previousGroup && group !== previousGroup) out.push('');
    previousGroup = group;
    out.push(line(cells[i]!));
  }
  return out.join('\n');
}

/**
 * Rows of flat records as an aligned table, one column per field, numbers right-aligned; lists (raw samples) are left
 * to latest.json.
 */
export function renderRecords(rows: readonly unknown[]): string {
  const records = rows.filter((row): row is Record<string, unknown> => row !== null && typeof row === 'object');
  const titles = [
    ...new Set(records.flatMap((record) => Object.keys(record).filter((key) => !Array.isArray(record[key])))),
  ];
  const cell = (value: unknown): string => {
    if (typeof value !== 'number') return value === undefined ? '' : String(value);
    if (Number.isInteger(value)) return String(value);
    return value.toFixed(Math.abs(value) >= 100 ? 0 : Math.abs(value) >= 1 ? 1 : 3);
  };
  const cells = records.map((record) => titles.map((title) => cell(record[title])));
  const numeric = titles.map((title) =>
    records.every((record) => record[title] === undefined || typeof record[title] === 'number'),
  );
  const widths = titles.map((title, i) => Math.max(title.length, ...cells.map((row) => row[i]!.length)));
  const line = (values: string[]) =>
    values
      .map((v, i) => (numeric[i] ? v.padStart(widths[i]!) : v.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(titles), line(widths.map((w) => '-'.repeat(w))), ...cells.map(line)].join('\n');
}

export function renderReport(results: RunResults): string {
  const out: string[] = [];
  out.push(
    'Tool-call round trips (server-everything `echo`); cpu/call = process under test (server, proxy or gateway);',
  );
  out.push(
    '+child cpu = its stdio upstream; load cpu = the load generator; ratios against the direct row of the same group.',
  );
  out.push('calls marked * were cut short by the time cap.');
  out.push('');
  const calls = results.rows.filter((r) => r.method === 'tools/call');
  out.push(calls.length ? renderTable(calls) : '(not measured in this run)');
  const lists = results.rows.filter((r) => r.method === 'tools/list');
  if (lists.length) {
    out.push(
      '',
      'tools/list (c=1) against an upstream offering that many tools; keys = virtual keys configured in the gateway:',
      '',
    );
    out.push(renderTable(lists, LIST_COLUMNS));
  }
  const extras = results.rows.filter((r) => r.extra && Object.keys(r.extra).length);
  if (extras.length) {
    out.push('', "Probes (gatewayAdded = the gateway's own time per call, from its histogram):");
    const lines = extras.map((r) => {
      const values = Object.entries(r.extra!).map(([k, v]) => `${k}=${typeof v === 'number' ? v.toFixed(3) : v}`);
      const numeric = Object.values(r.extra!).some((v) => typeof v === 'number');
      return {
        where: `${r.method} ${r.upstream} via ${r.path}, ${r.driver}, c=${r.concurrency}`,
        what: values.join(', '),
        numeric,
      };
    });
    // The same message on every row (e.g. "not exported") is printed once.
    if (lines.every((l) => !l.numeric && l.what === lines[0]!.what)) out.push(`  every gateway row: ${lines[0]!.what}`);
    else for (const l of lines) out.push(`  ${l.where}: ${l.what}`);
  }
  for (const [name, rows] of Object.entries(results.sections)) {
    out.push('', `${name}:`, '');
    out.push(rows.length ? renderRecords(rows) : '  (no rows: see the notes)');
  }
  if (results.notes.length) {
    out.push('', 'Notes:');
    for (const note of results.notes) out.push(`  - ${note}`);
  }
  if (results.targets.length) {
    out.push('', 'Targets:');
    for (const t of results.targets) {
      // Measured without a verdict: the figure cannot be read against the target (see its why).
      const verdict =
        t.met === undefined ? (t.measured === undefined ? 'not measured' : 'inconclusive') : t.met ? 'met' : 'MISSED';
      const figure = t.measured === undefined ? '' : `: ${t.measured.toFixed(3)} ${t.unit}`;
      out.push(
        `  [${verdict}] ${t.target}${figure}${t.why ? ` (${t.why})` : ''}${t.reference ? `; ${t.reference}` : ''}`,
      );
    }
  }
  return out.join('\n');
}
