import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseOptions } from '../../bench/src/options.ts';
import {
  AUDIT_LABEL,
  LIMITS_LABEL,
  compareRows,
  comparisonTargets,
  comparisonsFor,
  isAuditRowsTarget,
} from '../../bench/src/report/comparisons.ts';
import { dependencyDrift } from '../../bench/src/targets/baseline.ts';
import { renderReport } from '../../bench/src/report/table.ts';
import type { PathKind, RoundTripRow } from '../../bench/src/results.ts';

function row(path: PathKind, driver: 'lean' | 'sdk', concurrency: number, cpuPerCallMs: number): RoundTripRow {
  return {
    method: 'tools/call',
    upstream: 'stdio',
    path,
    driver,
    concurrency,
    cpuPerCallMs,
    p50Ms: cpuPerCallMs * 10,
    callsPerSec: 1 / cpuPerCallMs,
  };
}

test('bench: --baseline takes a ref and --variants a list of known variants (default both; none: neither)', () => {
  const options = parseOptions(['--quick', '--baseline', '78c8f25', '--variants', 'audit-off,limits-on']);
  assert.ok(options !== 'help');
  assert.equal(options.baseline, '78c8f25');
  assert.deepEqual([...options.variants], ['audit-off', 'limits-on']);
  const plain = parseOptions([]);
  assert.ok(plain !== 'help');
  assert.equal(plain.baseline, undefined);
  // Recording on vs off, and limits on vs off, are measured in every run that measures the gateway.
  assert.deepEqual([...plain.variants], ['audit-off', 'limits-on']);
  const none = parseOptions(['--variants', 'none']);
  assert.ok(none !== 'help');
  assert.equal(none.variants.size, 0);
  const noGateway = parseOptions(['--no-gateway']);
  assert.ok(noGateway !== 'help');
  assert.equal(noGateway.variants.size, 0);
  assert.throws(() => parseOptions(['--baseline']), /--baseline needs a git ref/);
  assert.throws(() => parseOptions(['--baseline', '--quick']), /--baseline needs a git ref/);
  assert.throws(
    () => parseOptions(['--variants', 'audit-off,fast']),
    /--variants takes .*audit-off, limits-on, not fast/,
  );
  assert.throws(() => parseOptions(['--no-gateway', '--variants', 'audit-off']), /not with --no-gateway/);
});

test('bench: gateways are compared row by row: audit and limits as µs added, the baseline as a ratio', () => {
  const rows = [
    row('portcullis', 'lean', 32, 0.05),
    row('portcullis (audit off)', 'lean', 32, 0.047),
    row('portcullis (limits on)', 'lean', 32, 0.052),
    row('portcullis@78c8f25', 'lean', 32, 0.04),
    row('portcullis', 'lean', 1, 0.2),
    row('portcullis (audit off)', 'lean', 1, 0.19),
    // No partner row: not compared.
    row('portcullis (limits on)', 'sdk', 32, 0.06),
    { ...row('portcullis@78c8f25', 'lean', 1, 0.1), failed: 'timeout' },
  ];
  const comparisons = comparisonsFor([...new Set(rows.map((r) => r.path))]);
  assert.deepEqual(
    comparisons.map((c) => [c.path, c.against]),
    [
      ['portcullis', 'portcullis (audit off)'],
      ['portcullis (limits on)', 'portcullis'],
      ['portcullis', 'portcullis@78c8f25'],
    ],
  );
  const compared = compareRows(rows, comparisons);
  const audit = compared.filter((r) => r.what === AUDIT_LABEL);
  assert.deepEqual(
    audit.map((r) => [r.client, r.c, Math.round(r['added µs']! * 1000) / 1000]),
    [
      ['lean', 32, 3],
      ['lean', 1, 10],
    ],
  );
  const limits = compared.filter((r) => r.what === LIMITS_LABEL);
  assert.equal(limits.length, 1);
  assert.equal(Math.round(limits[0]!['added µs']! * 1000) / 1000, 2);
  const baseline = compared.filter((r) => r.what.includes('portcullis@78c8f25'));
  assert.equal(baseline.length, 1, 'the failed baseline row at c=1 is not compared');
  assert.equal(baseline[0]!['cpu ratio'], 1.25);
  assert.equal(baseline[0]!['tput ratio'], 0.8);

  const targets = comparisonTargets(compared);
  const auditTarget = targets.find((t) => t.target.startsWith('audit recording adds < 5 µs'));
  assert.equal(auditTarget?.met, true);
  assert.ok(isAuditRowsTarget(auditTarget!), 'the one the audit-cost section replaces when it runs');
  assert.equal(Math.round(auditTarget!.measured! * 1000) / 1000, 3);
  const regression = targets.find((t) => t.target.startsWith('no regression'));
  assert.match(regression!.target, /against portcullis@78c8f25: current\/baseline <= 1.05/);
  assert.equal(regression?.met, false, '1.25x the baseline is a regression');
  assert.ok(!isAuditRowsTarget(regression!));
  const slower = comparisonTargets(
    compareRows(
      [row('portcullis', 'lean', 32, 0.06), row('portcullis (audit off)', 'lean', 32, 0.05)],
      comparisonsFor(['portcullis (audit off)']),
    ),
  );
  assert.equal(slower[0]?.met, false, '10 µs added misses the 5 µs target');
  const cheaper = comparisonTargets(
    compareRows(
      [row('portcullis', 'lean', 32, 0.05), row('portcullis (audit off)', 'lean', 32, 0.06)],
      comparisonsFor(['portcullis (audit off)']),
    ),
  );
  assert.equal(cheaper[0]?.met, undefined, 'recording measured cheaper than none meets nothing');
  assert.equal(Math.round(cheaper[0]!.measured! * 1000) / 1000, -10);
  assert.match(cheaper[0]!.why!, /recording on measured cheaper than off/);
  assert.match(
    renderReport({ rows: [], sections: {}, notes: [], targets: cheaper }),
    /\[inconclusive\] audit recording adds/,
  );
});

test('bench: a baseline from before audit recording is read against the current tree with recording off', () => {
  const rows = [
    row('portcullis', 'lean', 32, 0.05),
    row('portcullis (audit off)', 'lean', 32, 0.041),
    row('portcullis@1470323', 'lean', 32, 0.04),
  ];
  const paths = [...new Set(rows.map((r) => r.path))];
  const unrecorded = comparisonsFor(paths, false);
  assert.deepEqual(
    unrecorded.map((c) => [c.label, c.path, c.against]),
    [
      [AUDIT_LABEL, 'portcullis', 'portcullis (audit off)'],
      ['current / baseline (portcullis@1470323)', 'portcullis', 'portcullis@1470323'],
      ['current, recording off / baseline (portcullis@1470323)', 'portcullis (audit off)', 'portcullis@1470323'],
    ],
  );
  const targets = comparisonTargets(compareRows(rows, unrecorded)).filter((t) => t.target.startsWith('no regression'));
  assert.equal(targets.length, 1, 'one verdict on regression: like for like');
  assert.match(targets[0]!.target, /against portcullis@1470323: current with recording off\/baseline <= 1.05/);
  assert.equal(Math.round(targets[0]!.measured! * 1000) / 1000, 1.025);
  assert.equal(targets[0]!.met, true, '0.041 over 0.04 is 1.025x, within the target');
  // A baseline that records too is read against the current default, as before.
  const recorded = comparisonTargets(compareRows(rows, comparisonsFor(paths, true)));
  const regression = recorded.filter((t) => t.target.startsWith('no regression'));
  assert.equal(regression.length, 1);
  assert.match(regression[0]!.target, /: current\/baseline <= 1.05/);
  assert.equal(regression[0]!.met, false, '0.05 over 0.04 is 1.25x');
});

test('bench: a baseline tree whose pinned dependencies this checkout lacks or holds otherwise is named', () => {
  const root = mkdtempSync(join(tmpdir(), 'bench-drift-'));
  try {
    writeFileSync(
      join(root, 'package.json'),
      JSON.stringify({ dependencies: { same: '1.0.0', other: '^2.0.0' }, devDependencies: { gone: '3.0.0' } }),
    );
    for (const [name, version] of [
      ['same', '1.0.0'],
      ['other', '2.1.0'],
    ]) {
      mkdirSync(join(root, 'node_modules', name!), { recursive: true });
      writeFileSync(join(root, 'node_modules', name!, 'package.json'), JSON.stringify({ version }));
    }
    assert.deepEqual(dependencyDrift(root).sort(), ['gone: 3.0.0 → not installed', 'other: ^2.0.0 → 2.1.0']);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
