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

export async function runCalls(
  count: number,
  concurrency: number,
  maxMs: number,
  call: (seq: number) => Promise<CallOutcome>,
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
