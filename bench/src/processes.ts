import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { connect } from 'node:net';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

/**
 * Every process the benchmark starts goes through here. Each is started in its own process group, so
 * stopping it also stops what it spawned (a proxy's stdio server, a shell's child), and all of them are
 * killed when the benchmark exits, however it exits.
 */

/** The checkout (PORTCULLIS_REPO_ROOT when the tests run this code transpiled elsewhere: scripts/run-tests.mjs). */
export const REPO_ROOT = process.env['PORTCULLIS_REPO_ROOT'] ?? resolve(import.meta.dirname, '..', '..');
/** bench/src of the checkout: TypeScript and .mjs files the bench starts as processes of their own. */
export const BENCH_SRC = resolve(REPO_ROOT, 'bench/src');

/** `--import` this into a Node process to make a bare `listen(port)` bind 127.0.0.1 instead of every interface. */
export const LOOPBACK_PRELOAD = pathToFileURL(resolve(BENCH_SRC, 'loopback-only.mjs')).href;

const live = new Set<ManagedProcess>();

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    try {
      child.kill(signal);
    } catch {
      /* already gone */
    }
  }
}

export function killAllSync(): void {
  for (const proc of live) killGroup(proc.child, 'SIGKILL');
  live.clear();
}

let hooksInstalled = false;
/** Kills every started process on exit, Ctrl-C, SIGTERM and uncaught errors. Idempotent. */
export function installCleanupHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', killAllSync);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(signal, () => {
      killAllSync();
      process.exit(130);
    });
  }
}

const OUTPUT_TAIL_BYTES = 16_384;

export class ManagedProcess {
  readonly child: ChildProcess;
  private tail = '';
  private readonly exited: Promise<void>;

  constructor(
    readonly name: string,
    command: string,
    args: readonly string[],
    options: { env?: NodeJS.ProcessEnv; keepStdout?: boolean; ipc?: boolean; cwd?: string } = {},
  ) {
    const stdio: SpawnOptions['stdio'] = ['ignore', options.keepStdout ? 'pipe' : 'ignore', 'pipe'];
    if (options.ipc) (stdio as unknown[]).push('ipc');
    this.child = spawn(command, args, {
      cwd: options.cwd ?? REPO_ROOT,
      env: { ...process.env, ...options.env },
      stdio,
      detached: true,
    });
    const keep = (chunk: Buffer) => {
      this.tail = (this.tail + chunk.toString()).slice(-OUTPUT_TAIL_BYTES);
    };
    this.child.stdout?.on('data', keep);
    this.child.stderr?.on('data', keep);
    this.exited = new Promise((done) => this.child.once('exit', () => done()));
    this.child.once('exit', () => live.delete(this));
    live.add(this);
  }

  get pid(): number {
    if (this.child.pid === undefined) throw new Error(`${this.name} did not start`);
    return this.child.pid;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** The last output lines (stdout only when kept), for error messages. */
  get output(): string {
    return this.tail;
  }

  async waitForOutput(pattern: RegExp, timeoutMs = 30_000): Promise<RegExpMatchArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const match = this.tail.match(pattern);
      if (match) return match;
      if (!this.running) throw new Error(`${this.name} exited before printing ${pattern}:\n${this.tail}`);
      if (Date.now() > deadline)
        throw new Error(`${this.name} did not print ${pattern} within ${timeoutMs} ms:\n${this.tail}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  /** SIGTERM to the whole group, SIGKILL after `graceMs`. */
  async stop(graceMs = 2_000): Promise<void> {
    if (this.running) {
      killGroup(this.child, 'SIGTERM');
      const timer = setTimeout(() => killGroup(this.child, 'SIGKILL'), graceMs);
      await this.exited;
      clearTimeout(timer);
    }
    // Whatever the leader left behind in its group goes too.
    killGroup(this.child, 'SIGKILL');
    live.delete(this);
  }
}

// Ports are chosen below the kernel's ephemeral range, exactly as the tests choose them, so that an
// outgoing connection cannot take a port between choosing it and a started process binding it.
export { freePort } from '../../test/support/processes.ts';

/** Resolves once 127.0.0.1:`port` accepts a TCP connection. */
export async function waitForPort(port: number, proc: ManagedProcess, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((done) => {
      const socket = connect({ host: '127.0.0.1', port });
      socket.once('connect', () => {
        socket.destroy();
        done(true);
      });
      socket.once('error', () => done(false));
    });
    if (ok) return;
    if (!proc.running) throw new Error(`${proc.name} exited before listening on ${port}:\n${proc.output}`);
    if (Date.now() > deadline)
      throw new Error(`${proc.name} did not listen on ${port} within ${timeoutMs} ms:\n${proc.output}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
