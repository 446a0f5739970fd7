#!/usr/bin/env node
// Runs every test file (test/**/*.test.ts) with node's built-in runner, TypeScript via tsx.
// Extra arguments are passed to the runner's file list instead (e.g. `npm test -- test/unit/x.test.ts`).
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

function findTests(dir) {
  const found = [];
  for (const entry of readdirSync(dir)) {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) found.push(...findTests(path));
    else if (entry.endsWith('.test.ts')) found.push(path);
  }
  return found.sort();
}

const files = process.argv.length > 2 ? process.argv.slice(2) : findTests('test');
const result = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-reporter=spec', '--test-concurrency=2', ...files], {
  stdio: 'inherit',
  env: { ...process.env, PORTCULLIS_LOG_LEVEL: process.env.PORTCULLIS_LOG_LEVEL ?? 'silent' },
});
process.exit(result.status ?? 1);
