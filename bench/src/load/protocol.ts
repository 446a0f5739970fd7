/** What the benchmark asks of a load-generator child process, and what it sends back over IPC. */

export type DriverKind = 'lean' | 'sdk';

export type LoadTarget =
  /** A Streamable HTTP endpoint (a server, a proxy or the gateway), with any extra request headers. */
  | { transport: 'http'; url: string; headers: Record<string, string> }
  /** A stdio server the load generator spawns itself (its pid is reported back for CPU sampling). */
  | { transport: 'stdio'; command: string; args: string[] };

export type Operation =
  /** `tools/call` of `tool` with `{ message: 'hello' }`; a result with isError counts as an error. */
  | { method: 'tools/call'; tool: string }
  /** `tools/list`; a reply with a different number of tools than `expectTools` counts as an error. */
  | { method: 'tools/list'; expectTools: number };

export interface LoadJob {
  driver: DriverKind;
  target: LoadTarget;
  /** What every request does. */
  operation: Operation;
  concurrency: number;
  /** Calls made first and not counted. */
  warmupCalls: number;
  /** The warm-up goes on (in rounds of `warmupCalls`) until it has run this long, within `maxWarmupMs`. */
  minWarmupMs?: number;
  /** Calls measured. */
  calls: number;
  /** Calls started per second at most, in the warm-up and the measured phase (unset: as fast as they answer). */
  ratePerSec?: number;
  /** The measured phase stops taking new calls after this long (the row is then marked truncated). */
  maxMeasureMs: number;
  /** Likewise for the warm-up. */
  maxWarmupMs: number;
  /** Protocol version the lean driver asks for in `initialize` (the SDK negotiates its own). */
  protocolVersion: string;
}

export interface LoadResult {
  /** Calls measured: the job's count, or fewer when the time cap stopped the phase. */
  calls: number;
  truncated: boolean;
  errors: number;
  /** The first error seen, to show why a row has errors. */
  firstError?: string;
  wallMs: number;
  /** Per-call latencies in ms, in completion order. */
  latenciesMs: number[];
  /** CPU the load generator itself spent in the measured phase. */
  clientCpuMs: number;
  /** Protocol version the session ended up on. */
  protocolVersion?: string;
}

export type ChildMessage =
  /** Session set up and warm-up done; `serverPid` is set when the child spawned the server. */
  { type: 'ready'; serverPid?: number } | { type: 'result'; result: LoadResult } | { type: 'failed'; error: string };

/**
 * `job` starts a job (the child opens a session and warms up); `go` starts its measured phase;
 * `release` lets the child close the session once the parent has taken its after-samples.
 */
export type ParentMessage = { type: 'job'; job: LoadJob } | { type: 'go' } | { type: 'release' };
