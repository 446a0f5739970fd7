import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { REPO_ROOT } from '../support/processes.ts';

/** The widest line the project allows (biome's lineWidth); generated code (proto/gen) is exempt. */
const MAX_LINE = 120;
const ROOT = REPO_ROOT;

/** `file:line (length)` for each line of `text` longer than MAX_LINE characters. */
function longLines(file: string, text: string): string[] {
  const found: string[] = [];
  text.split('\n').forEach((line, index) => {
    if (line.length > MAX_LINE) found.push(`${file}:${index + 1} (${line.length})`);
  });
  return found;
}

test('longLines names each line over 120 characters, and only those', () => {
  const text = ['a'.repeat(120), 'b'.repeat(121), '', 'c'.repeat(200)].join('\n');
  assert.deepEqual(longLines('x.ts', text), ['x.ts:2 (121)', 'x.ts:4 (200)']);
});

test('issue 13: no tracked .ts or .mjs file outside proto/gen has a line over 120 characters', () => {
  const files = execFileSync('git', ['ls-files', '-z', '--', '*.ts', '*.mjs'], { cwd: ROOT, encoding: 'utf8' })
    .split('\0')
    .filter((file) => file !== '' && !file.startsWith('proto/gen/'));
  assert.ok(files.length > 100, `git ls-files listed only ${files.length} files`);
  const found = files.flatMap((file) => longLines(file, readFileSync(join(ROOT, file), 'utf8')));
  assert.deepEqual(found, [], `lines over ${MAX_LINE} characters (shorten them; biome formats code):`);
});
