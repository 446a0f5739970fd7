import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { testTitles } from '../support/test-titles.ts';
import { join } from 'node:path';
import { PROTOCOL_REQUIREMENTS } from '../support/protocol-requirements.ts';
import { matrixTestNames } from '../support/transport-matrix.ts';

/** Test names (the first string argument of `test(`) in the protocol test files. */
function testNames(): string[] {
  const names: string[] = [];
  const files = [
    ...readdirSync('test/unit')
      .filter((f) => /^(http|mcp)-.*\.test\.ts$/.test(f))
      .map((f) => join('test/unit', f)),
    ...readdirSync('test/e2e')
      .filter((f) => /^protocol-.*\.e2e\.test\.ts$/.test(f))
      .map((f) => join('test/e2e', f)),
  ];
  for (const file of files) {
    if (file.endsWith('mcp-protocol-requirements.test.ts')) continue;
    names.push(...testTitles(readFileSync(file, 'utf8')));
  }
  // The transport matrix generates its tests' names from its plan (test/e2e/protocol-transport-matrix.e2e.test.ts).
  names.push(...matrixTestNames());
  return names;
}

test('every downstream protocol requirement is named by at least one test', () => {
  const names = testNames();
  const untested = Object.keys(PROTOCOL_REQUIREMENTS).filter(
    (id) => !names.some((name) => new RegExp(`(^|[^A-Z-])${id}($|[^A-Z-])`).test(name)),
  );
  assert.deepEqual(untested, [], `requirements without a test naming them: ${untested.join(', ')}`);
});

test('tests name only requirement ids that exist', () => {
  const unknown = new Set<string>();
  for (const name of testNames())
    for (const id of name.match(/\bDN-[A-Z0-9-]+/g) ?? []) if (!(id in PROTOCOL_REQUIREMENTS)) unknown.add(id);
  assert.deepEqual([...unknown], []);
});
