import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { testTitles } from '../support/test-titles.ts';
import { join } from 'node:path';
import { REPO_ROOT } from '../support/processes.ts';
import { UPSTREAM_REQUIREMENTS } from '../support/upstream-requirements.ts';
import { matrixTestNames } from '../support/transport-matrix.ts';

/** The names of the tests in a file: the first string argument of each test(…) / it(…). */
test('UP-REQUIREMENTS: every upstream requirement id is named by at least one test', () => {
  const files = [
    ...readdirSync(join(REPO_ROOT, 'test/unit'))
      .filter((f) => /^upstream-.*\.test\.ts$/.test(f))
      .map((f) => join(REPO_ROOT, 'test/unit', f)),
    ...readdirSync(join(REPO_ROOT, 'test/e2e'))
      .filter((f) => /^upstream-.*\.e2e\.test\.ts$/.test(f))
      .map((f) => join(REPO_ROOT, 'test/e2e', f)),
    // The transport matrix runs upstream behaviours over every transport too; its generated names come from its plan.
    join(REPO_ROOT, 'test/e2e/protocol-transport-matrix.e2e.test.ts'),
  ];
  const names = [...files.flatMap((file) => testTitles(readFileSync(file, 'utf8'))), ...matrixTestNames()];
  const untested = Object.keys(UPSTREAM_REQUIREMENTS).filter(
    (id) => !names.some((name) => new RegExp(`(^|\\s)${id}(\\s|:|$)`).test(name)),
  );
  assert.deepEqual(untested, [], `requirements without a test naming them: ${untested.join(', ')}`);
  const unknown = [...new Set(names.flatMap((name) => name.match(/\bUP-[A-Z0-9-]+\b/g) ?? []))].filter(
    (id) => id !== 'UP-REQUIREMENTS' && !(id in UPSTREAM_REQUIREMENTS),
  );
  assert.deepEqual(unknown, [], `tests name requirement ids that are not listed: ${unknown.join(', ')}`);
});
