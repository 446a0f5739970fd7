import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { cpuTimes, gitCommit, machineInfo, stealPercent, type CpuTimes, type MachineInfo } from '../machine.ts';
import { packageVersion } from '../packages.ts';
import { REPO_ROOT } from '../processes.ts';
import type { RunResults } from '../results.ts';

/** `bench/results/latest.json`: where and how the run happened, and every figure it produced. */

export const DEFAULT_RESULTS_FILE = resolve(REPO_ROOT, 'bench/results/latest.json');

export interface RunContext {
  startedAt: Date;
  quick: boolean;
  machine: MachineInfo;
  /** CPU times at the start, for the steal time over the run. */
  cpuAtStart: CpuTimes | undefined;
}

export function startContext(quick: boolean): RunContext {
  return { startedAt: new Date(), quick, machine: machineInfo(), cpuAtStart: cpuTimes() };
}

export function writeResults(file: string, context: RunContext, results: RunResults): void {
  const finished = new Date();
  const document = {
    schema: 'portcullis-bench/1',
    startedAt: context.startedAt.toISOString(),
    finishedAt: finished.toISOString(),
    durationMs: finished.getTime() - context.startedAt.getTime(),
    mode: context.quick ? 'quick' : 'full',
    machine: {
      ...context.machine,
      loadAverage1mAtEnd: machineInfo().loadAverage1m,
      stealPercent: runStealPercent(context) ?? null,
    },
    node: process.version,
    git: gitCommit() ?? null,
    packages: Object.fromEntries(
      ['@modelcontextprotocol/sdk', '@modelcontextprotocol/server-everything', 'mcp-proxy', 'supergateway'].map(
        (name) => [name, packageVersion(name) ?? null],
      ),
    ),
    ...results,
  };
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, `${JSON.stringify(document, null, 2)}\n`);
}

/** How much of the machine's CPU the hypervisor gave to other guests during the run (undefined off Linux). */
export function runStealPercent(context: RunContext): number | undefined {
  return stealPercent(context.cpuAtStart, cpuTimes());
}
