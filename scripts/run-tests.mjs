#!/usr/bin/env node
// Runs the test files with node's built-in runner.
//   node scripts/run-tests.mjs            unit tests, then end-to-end tests (npm test)
//   node scripts/run-tests.mjs --unit     test/unit only: no database, no child processes (npm run test:unit)
//   node scripts/run-tests.mjs --e2e      test/e2e only: real PostgreSQL and real processes (npm run test:e2e)
//   node scripts/run-tests.mjs <files…>   just these files
// First it transpiles the TypeScript (the sources, the tests and what they import) once, with the transform tsx
// would apply on the fly (scripts/build-cli.mjs): the test files, and the control planes and nodes they start, then
// run as plain JavaScript, on about half the CPU a process start costs through tsx. Source maps keep stack traces
// pointing at the .ts files. Type checking is tsc's (npm test runs it first).
// The end-to-end tests need PostgreSQL; when it does not answer they are not started, and one line says how to
// start it (instead of every test failing with its own connection error).
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { connect } from 'node:net';
import { join, relative, resolve } from 'node:path';
import { buildCli } from './build-cli.mjs';

const REPO_ROOT = resolve(import.meta.dirname, '..');
const TEST_DATABASE_URL = process.env.PORTCULLIS_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

function findTests(dir) {
  const found = [];
  for (const entry of readdirSync(dir)) {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) found.push(...findTests(path));
    else if (entry.endsWith('.test.ts')) found.push(path);
  }
  return found.sort();
}

/** Whether something accepts TCP connections at the test database's host and port (within 2 s). */
function databaseAnswers() {
  const url = new URL(TEST_DATABASE_URL);
  return new Promise((done) => {
    const socket = connect({ host: url.hostname || '127.0.0.1', port: Number(url.port || 5432), timeout: 2_000 });
    const finish = (up) => {
      socket.destroy();
      done(up);
    };
    socket.once('connect', () => finish(true));
    socket.once('error', () => finish(false));
    socket.once('timeout', () => finish(false));
  });
}

const builtCli = await buildCli({ tests: true });
const builtRoot = builtCli.slice(0, -'cli/src/main.js'.length);

/** The transpiled file of a test given by its path in the checkout. */
function built(file) {
  return join(builtRoot, relative(REPO_ROOT, resolve(file))).replace(/\.ts$/, '.js');
}

function run(files) {
  if (files.length === 0) return 0;
  const args = ['--enable-source-maps', '--test', '--test-reporter=spec', '--test-concurrency=2', ...files.map(built)];
  const result = spawnSync(process.execPath, args, {
    stdio: 'inherit',
    env: {
      ...process.env,
      PORTCULLIS_LOG_LEVEL: process.env.PORTCULLIS_LOG_LEVEL ?? 'silent',
      PORTCULLIS_TEST_CLI: builtCli,
      PORTCULLIS_REPO_ROOT: REPO_ROOT,
    },
  });
  return result.status ?? 1;
}

const args = process.argv.slice(2);
const files = args.filter((arg) => !arg.startsWith('--'));
const suites = args.includes('--unit') ? ['unit'] : args.includes('--e2e') ? ['e2e'] : ['unit', 'e2e'];

if (files.length > 0) process.exit(run(files));

let status = 0;
for (const suite of suites) {
  const selected = findTests(join('test', suite));
  if (suite === 'e2e' && !(await databaseAnswers())) {
    const where = new URL(TEST_DATABASE_URL);
    console.error(
      `\nPostgreSQL does not answer at ${where.hostname}:${where.port || 5432}, which the ${selected.length} ` +
        'end-to-end test files need: start it (Debian/Ubuntu: `pg_ctlcluster <version> main start`, macOS: ' +
        '`brew services start postgresql`), or set PORTCULLIS_TEST_DATABASE_URL. Not running them.',
    );
    status = 1;
    continue;
  }
  status = run(selected) || status;
}
process.exit(status);
