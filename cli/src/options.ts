import { parseArgs } from 'node:util';
import { z } from 'zod';
import { PortcullisError, ErrorCode, errorMessage } from '../../common/src/index.ts';

/** One setting of a command: a flag, the environment variable behind it, and how to read it. */
export interface OptionSpec<T extends z.ZodType = z.ZodType> {
  flag: string;
  env?: string;
  description: string;
  schema: T;
  /** Shown in --help; the schema's own default applies when neither flag nor env is given. */
  defaultLabel?: string;
  /**
   * Set for secrets: the value is read from `env` only, and the flag is refused with this text (why,
   * and what to use instead), since a command line is visible to every local user in `ps`.
   */
  envOnly?: string;
}

export type OptionTable = Record<string, OptionSpec>;
export type ParsedOptions<T extends OptionTable> = { [K in keyof T]: z.output<T[K]['schema']> };

export const port = (fallback: number) =>
  z.coerce
    .number({ error: 'must be a port number' })
    .int('must be a port number')
    .min(0, 'must be 0-65535')
    .max(65535, 'must be 0-65535')
    .default(fallback);
export const host = (fallback: string) => z.string().min(1).default(fallback);
/** A comma-separated list: each item trimmed, empty items dropped (`a, b,` is `['a', 'b']`). */
export const listOption = () =>
  z.string().transform((v) =>
    v
      .split(',')
      .map((item) => item.trim())
      .filter((item) => item.length > 0),
  );

/**
 * Reads a command's settings from flags, then environment variables, then defaults, validating
 * each. A bad value fails with a message naming the flag, its variable and what is expected.
 */
export function readOptions<T extends OptionTable>(
  table: T,
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
): ParsedOptions<T> {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: Object.fromEntries(Object.values(table).map((spec) => [spec.flag, { type: 'string' as const }])),
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    // parseArgs says what is wrong with the command line (unknown flag, missing value); keep its words.
    throw new PortcullisError(ErrorCode.BAD_USER_INPUT, `${errorMessage(error)} (see --help)`);
  }
  const result: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries(table)) {
    if (spec.envOnly !== undefined && values[spec.flag] !== undefined) {
      throw new PortcullisError(ErrorCode.BAD_USER_INPUT, `--${spec.flag} is not accepted: ${spec.envOnly}`);
    }
    const flagValue = values[spec.flag];
    const raw = typeof flagValue === 'string' ? flagValue : spec.env ? env[spec.env] : undefined;
    const parsed = spec.schema.safeParse(raw === '' ? undefined : raw);
    if (!parsed.success && raw === undefined) {
      throw new PortcullisError(
        ErrorCode.BAD_USER_INPUT,
        `--${spec.flag} is required${spec.env ? ` (or set ${spec.env})` : ''}: ${spec.description}`,
      );
    }
    if (!parsed.success) {
      const source =
        values[spec.flag] !== undefined
          ? `--${spec.flag}`
          : spec.env && env[spec.env] !== undefined
            ? `${spec.env}`
            : `--${spec.flag}`;
      throw new PortcullisError(
        ErrorCode.BAD_USER_INPUT,
        `${source}: ${parsed.error.issues[0]?.message ?? 'invalid value'} (${spec.description})`,
      );
    }
    result[key] = parsed.data;
  }
  return result as ParsedOptions<T>;
}

/** The --help text of a command, generated from its option table. */
export function helpText(usage: string, summary: string, table: OptionTable): string {
  const rows = Object.values(table).map((spec) => {
    if (spec.envOnly !== undefined)
      return `${`  env ${spec.env}`.padEnd(40)}${spec.description} (not a flag: ${spec.envOnly})`;
    const left = `  --${spec.flag} <value>`;
    const env = spec.env ? ` [env ${spec.env}]` : '';
    const fallback = spec.defaultLabel ? ` (default: ${spec.defaultLabel})` : '';
    return `${left.padEnd(40)}${spec.description}${env}${fallback}`;
  });
  return (
    `${usage}\n\n${summary}\n\nOptions:\n${rows.join('\n')}\n  --help                                show ` +
    `this help\n`
  );
}
