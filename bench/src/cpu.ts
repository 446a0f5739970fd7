import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';

/**
 * CPU time of a process (and separately of its descendants) from /proc/<pid>/stat: utime + stime,
 * in clock ticks converted to milliseconds. Linux only; elsewhere every reading is undefined.
 */

let ticksPerSecond: number | undefined;
function clockTicks(): number {
  if (ticksPerSecond === undefined) {
    try {
      ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

interface StatFields {
  ppid: number;
  cpuTicks: number;
}

function readStat(pid: number): StatFields | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name (field 2) is in parentheses and may hold spaces; fields after it are plain.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3 (state): ppid is field 4, utime 14, stime 15.
  const ppid = Number(rest[1]);
  const utime = Number(rest[11]);
  const stime = Number(rest[12]);
  return { ppid, cpuTicks: utime + stime };
}

/** CPU milliseconds used so far by `pid` itself, or undefined if it is gone. */
export function processCpuMs(pid: number): number | undefined {
  const stat = readStat(pid);
  return stat === undefined ? undefined : (stat.cpuTicks * 1000) / clockTicks();
}

/** Pids of every live descendant of `pid`. */
export function descendants(pid: number): number[] {
  const children = new Map<number, number[]>();
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [];
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = readStat(Number(entry));
    if (!stat) continue;
    const list = children.get(stat.ppid) ?? [];
    list.push(Number(entry));
    children.set(stat.ppid, list);
  }
  const out: number[] = [];
  const queue = [...(children.get(pid) ?? [])];
  while (queue.length) {
    const next = queue.shift()!;
    out.push(next);
    queue.push(...(children.get(next) ?? []));
  }
  return out;
}

export interface CpuSample {
  selfMs: number | undefined;
  /** CPU ms per descendant pid, so a later sample can be diffed pid by pid. */
  children: Map<number, number>;
}

export function sampleCpu(pid: number): CpuSample {
  const children = new Map<number, number>();
  for (const child of descendants(pid)) {
    const ms = processCpuMs(child);
    if (ms !== undefined) children.set(child, ms);
  }
  return { selfMs: processCpuMs(pid), children };
}

/** CPU spent between two samples by the process itself and by its descendants. */
export function cpuBetween(before: CpuSample, after: CpuSample): { selfMs: number | undefined; childrenMs: number } {
  const selfMs = before.selfMs !== undefined && after.selfMs !== undefined ? after.selfMs - before.selfMs : undefined;
  let childrenMs = 0;
  for (const [pid, ms] of after.children) childrenMs += ms - (before.children.get(pid) ?? 0);
  return { selfMs, childrenMs };
}
