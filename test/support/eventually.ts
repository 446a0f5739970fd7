/**
 * The one polling helper of the tests: calls `check` every `intervalMs` until it returns a truthy value, and returns
 * that value (`true` for a predicate). Fails after `timeoutMs`, naming `what` and the last value seen. Use it for state
 * that shows no event to wait on (a database row, a counter of another process); where there is an event, wait on it.
 */
export async function eventually<T>(
  what: string,
  check: () => T | Promise<T>,
  timeoutMs = 15_000,
  intervalMs = 10,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const last = await check();
    if (last) return last as NonNullable<T>;
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last ${shown(last)}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

function shown(value: unknown): string {
  try {
    return JSON.stringify(value)?.slice(0, 200) ?? String(value);
  } catch {
    return String(value);
  }
}
