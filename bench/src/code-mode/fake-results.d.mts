/** Types of fake-results.mjs (plain JavaScript, so the recorded-catalog upstream starts without a compiler). */
export function canonicalJson(value: unknown): string;
export function digestOf(server: string, tool: string, args: unknown): { id: string; n: number };
export function valueFromSchema(schema: unknown, root: unknown, id: string, n: number, depth?: number): unknown;
export function fakeResult(
  server: string,
  tool: { name: string; inputSchema?: Record<string, unknown>; outputSchema?: Record<string, unknown> },
  args: Record<string, unknown> | undefined,
): {
  content: Array<{ type: 'text'; text: string }>;
  structuredContent?: unknown;
  isError?: true;
};
