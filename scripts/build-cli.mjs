#!/usr/bin/env node
// Transpiles the gateway's sources (cli, both planes, common, proto/gen) file by file into plain JavaScript, for
// the end-to-end tests to start their control planes and nodes from: `node <out>/cli/src/main.js` costs half the
// CPU of `node --import tsx cli/src/main.ts`, and the suite starts a few hundred of them.
//
// It is the transform tsx applies on the fly (esbuild, this tsconfig), done once ahead: same files, same
// layout (so `import.meta.url` paths such as schema.graphql and the sandbox worker resolve alike), relative
// `.ts` imports rewritten to `.js`, packages left to node_modules. Type checking stays with `tsc`.
// scripts/run-tests.mjs calls buildCli() and hands the path to the tests in PORTCULLIS_TEST_CLI.
import { build } from 'esbuild';
import { copyFileSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const REPO_ROOT = resolve(import.meta.dirname, '..');
const SOURCES = ['cli/src', 'control-plane/src', 'data-plane/src', 'common/src', 'proto/gen'];
/** With the tests: what they import besides the sources. */
const TEST_SOURCES = ['test', 'bench/src', 'scripts'];
// Inside the checkout, so that the built files find node_modules as the sources do.
const CACHE_DIR = join(REPO_ROOT, 'node_modules/.cache/portcullis-cli');

function typescriptFiles(dir) {
  const found = [];
  for (const entry of readdirSync(dir)) {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) found.push(...typescriptFiles(path));
    else if (entry.endsWith('.ts') && !entry.endsWith('.d.ts')) found.push(path);
  }
  return found;
}

/**
 * Every relative import stays a separate file: `./x.ts` becomes `./x.js`; anything else relative (`.mjs`, `.json`)
 * is not built and is imported from where it lies in the checkout. Nothing is bundled.
 */
const keepFiles = {
  name: 'keep-files',
  setup(builder) {
    builder.onResolve({ filter: /^\.\.?\// }, (args) => {
      if (args.kind === 'entry-point') return undefined;
      if (args.path.endsWith('.ts')) return { path: args.path.replace(/\.ts$/, '.js'), external: true };
      return { path: pathToFileURL(resolve(args.resolveDir, args.path)).href, external: true };
    });
  },
};

/** Whether a process of this id runs (a build directory named for it is in use). */
function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return error.code === 'EPERM';
  }
}

/**
 * Builds into a directory of this process's own (runs side by side do not share one), removed when this process
 * exits; directories left by runs that were killed are removed first. Returns the path of the built
 * `cli/src/main.js`.
 */
export async function buildCli({ tests = false } = {}) {
  mkdirSync(CACHE_DIR, { recursive: true });
  for (const entry of readdirSync(CACHE_DIR)) {
    const pid = Number(/^run-(\d+)$/.exec(entry)?.[1]);
    if (pid && pid !== process.pid && !alive(pid)) rmSync(join(CACHE_DIR, entry), { recursive: true, force: true });
  }
  const outDir = join(CACHE_DIR, `run-${process.pid}`);
  rmSync(outDir, { recursive: true, force: true });
  process.once('exit', () => rmSync(outDir, { recursive: true, force: true }));
  await build({
    entryPoints: [...SOURCES, ...(tests ? TEST_SOURCES : [])].flatMap((dir) => typescriptFiles(join(REPO_ROOT, dir))),
    outdir: outDir,
    outbase: REPO_ROOT,
    bundle: true,
    packages: 'external',
    plugins: [keepFiles],
    format: 'esm',
    platform: 'node',
    target: 'node20',
    tsconfig: join(REPO_ROOT, 'tsconfig.json'),
    logLevel: 'warning',
    sourcemap: tests ? 'inline' : false,
  });
  copyFileSync(join(REPO_ROOT, 'schema.graphql'), join(outDir, 'schema.graphql'));
  return join(outDir, 'cli/src/main.js');
}
