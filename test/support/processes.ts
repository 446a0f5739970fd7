import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { resolve } from 'node:path';
import { eventually } from './eventually.ts';

/**
 * The checkout. Tests run from sources transpiled elsewhere (scripts/run-tests.mjs) are told it in
 * PORTCULLIS_REPO_ROOT; run directly, it is two folders up.
 */
export const REPO_ROOT = process.env['PORTCULLIS_REPO_ROOT'] ?? resolve(import.meta.dirname, '..', '..');
export const EVERYTHING_SERVER = resolve(
  REPO_ROOT,
  'node_modules/@modelcontextprotocol/server-everything/dist/index.js',
);

/**
 * A port that was free a moment ago. Chosen below the kernel's ephemeral range (32768 and up here),
 * so an outgoing connection cannot take it between now and when a process we start binds it.
 */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const candidate = 20_000 + Math.floor(Math.random() * 12_000);
    if (await canListen(candidate)) return candidate;
  }
  throw new Error('no free port found in 20000-31999');
}

async function canListen(port: number): Promise<boolean> {
  const server = createServer();
  server.listen(port, '127.0.0.1');
  try {
    await Promise.race([once(server, 'listening'), once(server, 'error').then(([error]) => Promise.reject(error))]);
  } catch {
    return false;
  }
  server.close();
  await once(server, 'close');
  return true;
}

/** A child process whose output is kept, so a test can wait for a line and show it on failure. */
export class RunningProcess {
  readonly child: ChildProcess;
  private output = '';
  private readonly exited: Promise<number | null>;

  constructor(
    readonly name: string,
    command: string,
    args: readonly string[],
    env: NodeJS.ProcessEnv = {},
  ) {
    this.child = spawn(command, args, {
      cwd: REPO_ROOT,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child.stdout?.on('data', (chunk: Buffer) => (this.output += chunk.toString()));
    this.child.stderr?.on('data', (chunk: Buffer) => (this.output += chunk.toString()));
    this.exited = new Promise((done) => this.child.on('exit', (code) => done(code)));
  }

  get log(): string {
    return this.output;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /**
   * Resolves with the first match of `pattern` in the output, checked whenever output arrives; rejects when the
   * process exits first or after `timeoutMs` (a ceiling for a loaded machine, not a wait: it resolves at once).
   */
  waitFor(pattern: RegExp, timeoutMs = 60_000): Promise<RegExpMatchArray> {
    const now = this.output.match(pattern);
    if (now) return Promise.resolve(now);
    if (!this.running)
      return Promise.reject(new Error(`${this.name} exited before printing ${pattern}:\n${this.output}`));
    return new Promise((resolve, reject) => {
      const check = () => {
        const match = this.output.match(pattern);
        if (match) finish(() => resolve(match));
      };
      const exited = () =>
        finish(() => reject(new Error(`${this.name} exited before printing ${pattern}:\n${this.output}`)));
      const timer = setTimeout(
        () =>
          finish(() =>
            reject(new Error(`${this.name} did not print ${pattern} within ${timeoutMs} ms:\n${this.output}`)),
          ),
        timeoutMs,
      );
      const finish = (settle: () => void) => {
        clearTimeout(timer);
        this.child.stdout?.off('data', check);
        this.child.stderr?.off('data', check);
        this.child.off('exit', exited);
        settle();
      };
      // Listeners added after the constructor's, so `this.output` already holds the chunk when they run.
      this.child.stdout?.on('data', check);
      this.child.stderr?.on('data', check);
      this.child.once('exit', exited);
    });
  }

  /** SIGTERM, then SIGKILL if it has not exited after `graceMs`. Resolves with the exit code. */
  async stop(graceMs = 5_000): Promise<number | null> {
    if (this.running) {
      this.child.kill('SIGTERM');
      const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
      const code = await this.exited;
      clearTimeout(timer);
      return code;
    }
    return this.exited;
  }

  /** Kills at once, like a crash. */
  async kill(): Promise<void> {
    if (this.running) this.child.kill('SIGKILL');
    await this.exited;
  }
}

/**
 * The node arguments that run `portcullis <args>`: the sources through tsx, as `npm start` does, or, when the test
 * runner built them ahead (`PORTCULLIS_TEST_CLI`, see scripts/build-cli.mjs), the same sources transpiled, which
 * start on half the CPU.
 */
export function cliArgs(args: readonly string[]): string[] {
  const built = process.env['PORTCULLIS_TEST_CLI'];
  if (built) return [built, ...args];
  return ['--import', import.meta.resolve('tsx'), resolve(REPO_ROOT, 'cli/src/main.ts'), ...args];
}

/** Runs the portcullis CLI (see `cliArgs`). */
export function startCli(name: string, args: readonly string[], env: NodeJS.ProcessEnv = {}): RunningProcess {
  return new RunningProcess(name, process.execPath, cliArgs(args), env);
}

/** server-everything over Streamable HTTP on a free port; resolves once it listens. */
export async function startEverythingHttp(): Promise<{ process: RunningProcess; url: string }> {
  const port = await freePort();
  const server = new RunningProcess(
    'server-everything (http)',
    process.execPath,
    [EVERYTHING_SERVER, 'streamableHttp'],
    { PORT: String(port) },
  );
  await server.waitFor(/listening on port/).catch(async (error: unknown) => {
    await server.kill();
    throw error;
  });
  return { process: server, url: `http://127.0.0.1:${port}/mcp` };
}

/** Polls `url` until it answers 2xx. */
export async function waitForHttp(url: string, timeoutMs = 60_000): Promise<void> {
  await eventually(
    `${url} to answer 2xx`,
    async () => (await fetch(url).catch(() => undefined))?.ok === true, // not up yet: no answer
    timeoutMs,
  );
}

/**
 * `portcullis dev` (what `npm start` runs) on the embedded database in `dataDir`, on these ports; resolves with
 * the admin token it prints. A process that never prints it is killed, not left running past the test.
 */
export async function startDev(
  dataDir: string,
  ports: { graphql: number; grpc: number; mcp: number },
  extra: readonly string[] = [],
): Promise<{ process: RunningProcess; adminToken: string }> {
  const flags = ['--data-dir', dataDir, '--graphql-port', String(ports.graphql), '--grpc-port', String(ports.grpc)];
  const child = startCli('portcullis dev', ['dev', ...flags, '--port', String(ports.mcp), ...extra], {
    DATABASE_URL: '',
    PORTCULLIS_ADMIN_TOKEN: '',
  });
  try {
    const [, adminToken] = await child.waitFor(/Admin token:\s+(\S+)/, 120_000);
    return { process: child, adminToken: adminToken! };
  } catch (error) {
    await child.kill();
    throw error;
  }
}
