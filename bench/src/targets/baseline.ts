import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT } from '../processes.ts';

/**
 * Another commit's tree, for `--baseline <ref>`: checked out in a temporary git worktree with this
 * checkout's node_modules linked in (no install, no network), so its gateway can run beside the
 * current one in the same turns. Removed by `remove()`, and at process exit if still there.
 */
export interface BaselineTree {
  /** The worktree's directory. */
  root: string;
  shortSha: string;
  /** Dependencies whose installed version is not the one the ref's package.json pins (name: wanted → installed). */
  dependencyDrift: string[];
  /** Whether its nodes record audit trails (false for a commit from before audit recording, 041ca8e). */
  records: boolean;
  remove(): void;
}

function git(args: readonly string[]): string {
  return execFileSync('git', args, { cwd: REPO_ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}

export function prepareBaseline(ref: string): BaselineTree {
  let sha: string;
  try {
    sha = git(['rev-parse', '--verify', '--quiet', `${ref}^{commit}`]);
  } catch {
    throw new Error(`--baseline ${ref}: not a commit in this repository`);
  }
  const shortSha = git(['rev-parse', '--short', sha]);
  const root = join(mkdtempSync(join(tmpdir(), 'portcullis-baseline-')), shortSha);
  let removed = false;
  const remove = () => {
    if (removed) return;
    removed = true;
    process.off('exit', remove);
    try {
      git(['worktree', 'remove', '--force', root]);
    } catch {
      /* not added, or already gone: the directory below is what matters */
    }
    rmSync(join(root, '..'), { recursive: true, force: true });
  };
  process.on('exit', remove);
  try {
    git(['worktree', 'add', '--detach', root, sha]);
    symlinkSync(join(REPO_ROOT, 'node_modules'), join(root, 'node_modules'), 'dir');
    const records = existsSync(join(root, 'data-plane', 'src', 'audit'));
    return { root, shortSha, dependencyDrift: dependencyDrift(root), records, remove };
  } catch (error) {
    remove();
    const reason = error instanceof Error ? error.message.split('\n')[0] : String(error);
    throw new Error(`--baseline ${ref}: could not prepare its worktree: ${reason}`);
  }
}

/** Pinned dependencies of the tree at `root` that node_modules holds in another version or not at all. */
export function dependencyDrift(root: string): string[] {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
    dependencies?: Record<string, string>;
    devDependencies?: Record<string, string>;
  };
  const wanted = { ...pkg.devDependencies, ...pkg.dependencies };
  const drift: string[] = [];
  for (const [name, version] of Object.entries(wanted)) {
    const manifest = join(root, 'node_modules', name, 'package.json');
    const installed = existsSync(manifest)
      ? (JSON.parse(readFileSync(manifest, 'utf8')) as { version?: string }).version
      : undefined;
    if (installed !== version.replace(/^[=^~]/, ''))
      drift.push(`${name}: ${version} → ${installed ?? 'not installed'}`);
  }
  return drift;
}
