/** Runs `count` calls with `concurrency` in flight, timing each; shared by every driver. */
export interface CallOutcome {
  ok: boolean;
  error?: string;
}

export async function runCalls(
  count: number,
  concurrency: number,
  call: (seq: number) => Promise<CallOutcome>,
): Promise<{ latenciesMs: Float64Array; errors: number; firstError?: string; wallMs: number }> {
  const latenciesMs = new Float64Array(count);
  let next = 0;
  let done = 0;
  let errors = 0;
  let firstError: string | undefined;
  const started = process.hrtime.bigint();
  const worker = async () => {
    while (next < count) {
      const seq = next++;
      const t0 = process.hrtime.bigint();
      let outcome: CallOutcome;
      try {
        outcome = await call(seq);
      } catch (error) {
        outcome = { ok: false, error: error instanceof Error ? error.message : String(error) };
      }
      latenciesMs[done++] = Number(process.hrtime.bigint() - t0) / 1e6;
      if (!outcome.ok) {
        errors++;
        firstError ??= outcome.error ?? 'call failed';
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, count)) }, worker));
  const wallMs = Number(process.hrtime.bigint() - started) / 1e6;
  return { latenciesMs, errors, ...(firstError === undefined ? {} : { firstError }), wallMs };
}
