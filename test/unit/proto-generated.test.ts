import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';

function listFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((entry) => {
    const path = join(dir, entry);
    return statSync(path).isDirectory() ? listFiles(path) : [path];
  });
}

test('proto/gen is what `npm run proto` generates from proto/ (run it after editing a .proto)', () => {
  const out = mkdtempSync(join(tmpdir(), 'portcullis-proto-'));
  try {
    execFileSync(join('node_modules', '.bin', 'buf'), ['generate', '-o', out], { stdio: 'pipe' });
    const fresh = join(out, 'proto', 'gen');
    const committed = 'proto/gen';
    const freshFiles = listFiles(fresh)
      .map((f) => relative(fresh, f))
      .sort();
    const committedFiles = listFiles(committed)
      .map((f) => relative(committed, f))
      .sort();
    assert.deepEqual(committedFiles, freshFiles, 'proto/gen has other files than buf generates: run `npm run proto`');
    for (const file of freshFiles) {
      assert.equal(
        readFileSync(join(committed, file), 'utf8'),
        readFileSync(join(fresh, file), 'utf8'),
        `proto/gen/${file} is stale: run \`npm run proto\``,
      );
    }
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
