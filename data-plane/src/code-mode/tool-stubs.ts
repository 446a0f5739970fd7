import { isPlainObject } from '../mcp/json-rpc.ts';

/**
 * TypeScript declarations generated from a tool's JSON Schema: what a model reads to write a call
 * (`servers/<upstream>/<tool>.d.ts`). Short on purpose: a doc comment from the description, the call
 * as a script writes it, the signature, an interface for the arguments (required and optional
 * properties, enums, nested objects, arrays, unions, property descriptions as doc comments) and one
 * for the output when the tool declares an `outputSchema`.
 */

type Schema = Record<string, unknown>;

/** Nesting beyond which a schema is declared `unknown` (deep or recursive $refs). */
const MAX_DEPTH = 6;
const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

/** `tools.up.tool` where both are identifiers, else `tools["up"]["tool"]`. */
export function callExpression(upstream: string, tool: string): string {
  const part = (name: string) => (IDENTIFIER.test(name) ? `.${name}` : `[${JSON.stringify(name)}]`);
  return `tools${part(upstream)}${part(tool)}`;
}

/** PascalCase of a tool name, for its interfaces. */
function typeName(tool: string): string {
  const words = tool.split(/[^A-Za-z0-9]+/).filter(Boolean);
  const name = words.map((w) => w[0]!.toUpperCase() + w.slice(1)).join('');
  return /^[A-Za-z]/.test(name) ? name : `T${name}`;
}

function docComment(text: unknown, indent: string): string {
  if (typeof text !== 'string' || text.trim() === '') return '';
  const lines = text.trim().replaceAll('*/', '*\\/').split(/\r?\n/);
  if (lines.length === 1) return `${indent}/** ${lines[0]} */\n`;
  return `${indent}/**\n${lines.map((l) => `${indent} * ${l}`.trimEnd()).join('\n')}\n${indent} */\n`;
}

function propertyKey(name: string): string {
  return IDENTIFIER.test(name) ? name : JSON.stringify(name);
}

class Declarer {
  constructor(private readonly root: Schema) {}

  /** The type expression of `schema`, laid out at `indent`. */
  type(schema: unknown, indent: string, depth: number): string {
    if (schema === true || schema === undefined) return 'unknown';
    if (!isPlainObject(schema) || depth > MAX_DEPTH) return 'unknown';
    const ref = schema['$ref'];
    if (typeof ref === 'string') return this.type(this.resolve(ref), indent, depth + 1);
    if (Array.isArray(schema['enum'])) return schema['enum'].map((v) => JSON.stringify(v)).join(' | ') || 'never';
    if ('const' in schema) return JSON.stringify(schema['const']);
    for (const union of ['anyOf', 'oneOf'] as const) {
      const options = schema[union];
      if (Array.isArray(options) && options.length > 0)
        return [...new Set(options.map((o) => this.type(o, indent, depth + 1)))].join(' | ');
    }
    const all = schema['allOf'];
    if (Array.isArray(all) && all.length > 0) return all.map((o) => this.type(o, indent, depth + 1)).join(' & ');
    const type = schema['type'];
    if (Array.isArray(type)) return type.map((t) => this.type({ ...schema, type: t }, indent, depth + 1)).join(' | ');
    switch (type) {
      case 'string':
        return 'string';
      case 'number':
      case 'integer':
        return 'number';
      case 'boolean':
        return 'boolean';
      case 'null':
        return 'null';
      case 'array': {
        const item = this.type(schema['items'], indent, depth + 1);
        return /^[\w"]+$/.test(item) ? `${item}[]` : `Array<${item}>`;
      }
      case 'object':
        return this.object(schema, indent, depth);
      default:
        return isPlainObject(schema['properties']) ? this.object(schema, indent, depth) : 'unknown';
    }
  }

  /** The members of an object schema, one a line at `indent` + 2. */
  members(schema: Schema, indent: string, depth: number): string {
    const properties = isPlainObject(schema['properties']) ? schema['properties'] : {};
    const required = new Set(Array.isArray(schema['required']) ? schema['required'] : []);
    const inner = `${indent}  `;
    let out = '';
    for (const [name, property] of Object.entries(properties)) {
      const description = isPlainObject(property) ? property['description'] : undefined;
      const optional = required.has(name) ? '' : '?';
      out +=
        `${docComment(description, inner)}${inner}${propertyKey(name)}${optional}: ` +
        `${this.type(property, inner, depth + 1)};\n`;
    }
    const extra = schema['additionalProperties'];
    if (isPlainObject(extra)) out += `${inner}[key: string]: ${this.type(extra, inner, depth + 1)};\n`;
    return out;
  }

  private object(schema: Schema, indent: string, depth: number): string {
    const members = this.members(schema, indent, depth);
    if (members === '') return isPlainObject(schema['additionalProperties']) ? '{}' : 'Record<string, unknown>';
    return `{\n${members}${indent}}`;
  }

  private resolve(ref: string): unknown {
    if (!ref.startsWith('#/')) return undefined;
    let at: unknown = this.root;
    for (const part of ref.slice(2).split('/')) {
      if (!isPlainObject(at)) return undefined;
      at = at[part.replaceAll('~1', '/').replaceAll('~0', '~')];
    }
    return at;
  }
}

/** What a stub is generated from: a tool definition as the upstream listed it. */
export interface StubSource {
  readonly upstream: string;
  /** The upstream's own tool name (what scripts call). */
  readonly tool: string;
  readonly definition: Readonly<Record<string, unknown>>;
}

/** The declaration file of one tool. */
export function toolStub({ upstream, tool, definition }: StubSource): string {
  const name = typeName(tool);
  const input = isPlainObject(definition['inputSchema']) ? definition['inputSchema'] : { type: 'object' };
  const output = isPlainObject(definition['outputSchema']) ? definition['outputSchema'] : undefined;
  const args = new Declarer(input).members(input, '', 0);
  const hasArgs = args !== '';
  const resultType = output === undefined ? 'unknown' : `${name}Result`;
  let out = docComment(definition['description'], '');
  out += `// await ${callExpression(upstream, tool)}(${hasArgs ? 'args' : ''})\n`;
  const functionName = IDENTIFIER.test(tool) ? tool : name[0]!.toLowerCase() + name.slice(1);
  out += `export function ${functionName}(${hasArgs ? `args: ${name}Args` : ''}): Promise<${resultType}>;\n`;
  if (hasArgs) out += `export interface ${name}Args {\n${args}}\n`;
  if (output !== undefined) {
    const members = new Declarer(output).members(output, '', 0);
    out +=
      members === '' ? `export type ${name}Result = unknown;\n` : `export interface ${name}Result {\n${members}}\n`;
  }
  return out;
}

/** The first sentence of a description (search results show it), at most 160 characters. */
export function firstSentence(description: unknown): string {
  if (typeof description !== 'string') return '';
  const text = description.trim().split(/\r?\n/)[0] ?? '';
  const end = text.search(/[.!?](\s|$)/);
  const sentence = end === -1 ? text : text.slice(0, end + 1);
  return sentence.length > 160 ? `${sentence.slice(0, 157)}...` : sentence;
}
