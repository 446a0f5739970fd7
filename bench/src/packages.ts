import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { resolve } from 'node:path';

/**
 * Where installed packages live and which versions they are (some restrict `exports`, so no require of package.json).
 */

const require = createRequire(import.meta.url);

export function packageVersion(name: string): string | undefined {
  try {
    const pkg = JSON.parse(readFileSync(resolve(packageDir(name), 'package.json'), 'utf8')) as { version?: string };
    return pkg.version;
  } catch {
    return undefined;
  }
}

export function packageDir(name: string): string {
  // Both packages restrict their exports, so find the folder from the module search paths.
  for (const base of require.resolve.paths(name) ?? []) {
    const dir = resolve(base, name);
    if (existsSync(resolve(dir, 'package.json'))) return dir;
  }
  throw new Error(`${name} is not installed (npm ci)`);
}
