import { Tiktoken } from 'js-tiktoken/lite';
import o200kBase from 'js-tiktoken/ranks/o200k_base';

/**
 * Input tokens as `o200k_base` counts them (js-tiktoken, ranks shipped in the package: no download).
 * Each piece of an agent's context (the tool list, each message) is counted as its own JSON text, as chat
 * APIs encode messages one by one; a turn's input is the sum of the pieces it holds.
 */
let encoder: Tiktoken | undefined;

export function countTokens(text: string): number {
  encoder ??= new Tiktoken(o200kBase);
  return encoder.encode(text).length;
}

/** Tokens of `value` as the JSON text an agent holds. */
export function jsonTokens(value: unknown): number {
  return countTokens(JSON.stringify(value));
}
