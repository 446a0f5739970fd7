import { createHash } from 'node:crypto';

/**
 * What the OpenAI and Anthropic APIs accept as a function or tool name: letters, digits, `_` and `-`,
 * at most 64 characters. MCP names may be longer (128) and may hold `.` or `/`.
 */
const MODEL_NAME = /^[a-zA-Z0-9_-]{1,64}$/;
/** A converted name ends in `_` and 8 hex digits of the original's SHA-256. */
const CONVERTED = /_[0-9a-f]{8}$/;
const HASH_HEX = 8;
const KEPT_CHARACTERS = 64 - HASH_HEX - 1;

/**
 * The name a model API will accept for an MCP tool: unchanged where it already fits, otherwise its
 * disallowed characters replaced by `_`, cut to fit, and suffixed with a hash of the original so two
 * tools never meet on one name. Deterministic, so every node converts alike and can map it back.
 */
export function modelToolName(name: string): string {
  if (MODEL_NAME.test(name)) return name;
  const hash = createHash('sha256').update(name).digest('hex').slice(0, HASH_HEX);
  return `${name.replace(/[^a-zA-Z0-9_-]/g, '_').slice(0, KEPT_CHARACTERS)}_${hash}`;
}

/** Whether `name` may be a converted one (then the MCP name must be looked up). */
export function mayBeConverted(name: string): boolean {
  return CONVERTED.test(name);
}

/**
 * The MCP name a model-API name stands for, among the names the caller may see: the converted
 * name's original, or `name` itself (an unconverted name, or one that names nothing).
 */
export function mcpToolName(name: string, visible: Iterable<string>): string {
  for (const original of visible) {
    if (original !== name && modelToolName(original) === name) return original;
  }
  return name;
}
