/**
 * tsx scripts/test-on-node.ts <major> [run-tests arguments…]
 *
 * Runs the test suite (scripts/run-tests.mjs) on Node <major>: the running Node if it is that major, else the
 * platform's binary package fetched into a cache (scripts/node-runtime.ts). Its directory goes first on PATH
 * for the tests only, so processes the tests start by name (`node`, `npx`) run on it too. CI uses this for
 * its second pass on Node 24.
 */
import { spawnSync } from 'node:child_process';
import { dirname, delimiter } from 'node:path';
import { fileURLToPath } from 'node:url';
import { nodeFor } from './node-runtime.ts';

const major = Number(process.argv[2]);
if (!Number.isInteger(major)) {
  console.error('usage: tsx scripts/test-on-node.ts <major> [test files…]');
  process.exit(2);
}
const node = await nodeFor({ minimumMajor: major, exactMajor: true }).catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : String(error));
  process.exit(1);
});
const version = spawnSync(node, ['--version'], { encoding: 'utf8' }).stdout.trim();
console.log(`running the tests on Node ${version} (${node})`);
const runner = fileURLToPath(new URL('run-tests.mjs', import.meta.url));
const result = spawnSync(node, [runner, ...process.argv.slice(3)], {
  stdio: 'inherit',
  env: { ...process.env, PATH: `${dirname(node)}${delimiter}${process.env['PATH'] ?? ''}` },
});
process.exit(result.status ?? 1);
