/** Runs up to `count` calls with `concurrency` in flight, timing each; shared by every driver. */
export interface CallOutcome {
  ok: boolean;
  error?: string;
}

export interface CallsRun {
  /** Latencies of the completed calls, in completion order. */
  latenciesMs: Float64Array;
  completed: number;
  /** True when the time cap stopped the run before `count` calls. */
  truncated: boolean;
  errors: number;
  firstError?: string;
  wallMs: number;
}

/**
 * With `ratePerSec`, call n starts no sooner than n / rate seconds after the first (still at most
 * `concurrency` in flight): two targets are then compared at the same throughput, where at full speed
 * the slower one also batches less per event-loop turn and spends more CPU per call for that alone.
 */
export async function runCalls(
  count: number,
  concurrency: number,
  maxMs: number,
  call: (seq: number) => Promise<CallOutcome>,
  ratePerSec?: number,
): Promise<CallsRun> {
  const latenciesMs = new Float64Array(count);
  let next = 0;
  let done = 0;
  let errors = 0;
  let firstError: string | undefined;
  let stopped = false;
  const started = process.hrtime.bigint();
  const deadline = started + BigInt(Math.round(maxMs * 1e6));
  const worker = async () => {
    while (next < count && !stopped) {
      const seq = next++;
      if (ratePerSec !== undefined) await due(started, seq, ratePerSec);
      const t0 = process.hrtime.bigint();
      let outcome: CallOutcome;
      try {
        outcome = await call(seq);
      } catch (error) {
        outcome = { ok: false, error: error instanceof Error ? error.message : String(error) };
      }
      const t1 = process.hrtime.bigint();
      latenciesMs[done++] = Number(t1 - t0) / 1e6;
      if (!outcome.ok) {
        errors++;
        firstError ??= outcome.error ?? 'call failed';
      }
      if (t1 > deadline) stopped = true;
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, count)) }, worker));
  const wallMs = Number(process.hrtime.bigint() - started) / 1e6;
  return {
    latenciesMs: latenciesMs.subarray(0, done),
    completed: done,
    truncated: done < count,
    errors,
    ...(firstError === undefined ? {} : { firstError }),
    wallMs,
  };
}

/** Waits until call `seq` of a paced run is due. */
async function due(started: bigint, seq: number, ratePerSec: number): Promise<void> {
  const waitMs = (seq * 1000) / ratePerSec - Number(process.hrtime.bigint() - started) / 1e6;
  if (waitMs >= 1) await new Promise((resolve) => setTimeout(resolve, waitMs));
}
