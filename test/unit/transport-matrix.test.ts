import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../support/processes.ts';
import { PROTOCOL_REQUIREMENTS } from '../support/protocol-requirements.ts';
import {
  DOWNSTREAMS,
  MATRIX_EXEMPTIONS,
  MATRIX_REQUIREMENTS,
  UPSTREAMS,
  exemption,
  matrixCells,
  matrixPlan,
  type MatrixRequirementId,
} from '../support/transport-matrix.ts';
import { UPSTREAM_REQUIREMENTS } from '../support/upstream-requirements.ts';

const MATRIX_FILE = join(REPO_ROOT, 'test/e2e/protocol-transport-matrix.e2e.test.ts');
const REQUIREMENT_IDS = Object.keys(MATRIX_REQUIREMENTS) as MatrixRequirementId[];

test(`MX-PLAN: every matrix requirement has a run in the matrix file, and is planned in every cell not declared \
exempt`, () => {
  const source = readFileSync(MATRIX_FILE, 'utf8');
  const withoutRun = REQUIREMENT_IDS.filter((id) => !source.includes(`'${id}': `));
  assert.deepEqual(withoutRun, [], `matrix requirements without a run in ${MATRIX_FILE}`);
  assert.match(source, /for \(const run of matrixPlan\(\)\)/, 'the matrix file runs the plan');
  assert.match(source, /MX-COVERAGE/, 'the matrix file checks every planned run passed');
  const planned = new Set(matrixPlan().map((run) => `${run.requirement} ${run.cell.downstream} ${run.cell.upstream}`));
  const silent: string[] = [];
  for (const id of REQUIREMENT_IDS) {
    for (const cell of matrixCells()) {
      const key = `${id} ${cell.downstream} ${cell.upstream}`;
      if (!planned.has(key) && exemption(id, cell) === undefined) silent.push(key);
    }
  }
  assert.deepEqual(silent, [], 'cells neither run nor declared exempt');
  assert.equal(matrixCells().length, Object.keys(DOWNSTREAMS).length * Object.keys(UPSTREAMS).length);
});

test(`MX-EXEMPTIONS: each exemption names a known requirement and cell, says why, and leaves the requirement running \
somewhere`, () => {
  for (const e of MATRIX_EXEMPTIONS) {
    assert.ok(e.requirement in MATRIX_REQUIREMENTS, e.requirement);
    assert.ok(e.downstream in DOWNSTREAMS, e.downstream);
    assert.ok(e.upstream === '*' || e.upstream in UPSTREAMS, e.upstream);
    assert.ok(e.reason.length >= 40, `a reason, not a label: ${e.reason}`);
  }
  const keys = MATRIX_EXEMPTIONS.map((e) => `${e.requirement} ${e.downstream} ${e.upstream}`);
  assert.equal(new Set(keys).size, keys.length, 'no exemption twice');
  for (const id of REQUIREMENT_IDS)
    assert.ok(
      matrixPlan().some((run) => run.requirement === id),
      `${id} runs in some cell`,
    );
});

test('MX-IDS: the matrix names only DN-/UP- ids that exist, and each test name is unique', () => {
  const names = matrixPlan().map((run) => run.name);
  assert.equal(new Set(names).size, names.length);
  const unknown = new Set<string>();
  for (const name of names) {
    for (const id of name.match(/\b(DN|UP)-[A-Z0-9-]+/g) ?? [])
      if (!(id in PROTOCOL_REQUIREMENTS) && !(id in UPSTREAM_REQUIREMENTS)) unknown.add(id);
  }
  assert.deepEqual([...unknown], []);
});
