import { isPlainObject } from '../mcp/json-rpc.ts';
import { modelToolName } from './model-tool-names.ts';

/**
 * How a REST caller speaks: MCP itself, OpenAI (Chat Completions tool calls; `openai-responses`,
 * the Responses API's function tools, where listing differs), or Anthropic's Messages API.
 */
export const TOOL_FORMATS = ['mcp', 'openai', 'openai-responses', 'anthropic'] as const;
export type ToolFormat = (typeof TOOL_FORMATS)[number];

/** An MCP tool as `tools/list` gives it (only what the conversions read). */
export interface McpTool {
  readonly name: string;
  readonly description?: string;
  readonly inputSchema: Record<string, unknown>;
  readonly [field: string]: unknown;
}

/**
 * A tool's input schema as the model APIs want it: an object schema with `properties` (OpenAI
 * refuses an object schema without them). MCP schemas are objects already; nothing else changes.
 */
function parametersOf(tool: McpTool): Record<string, unknown> {
  const schema = isPlainObject(tool.inputSchema) ? tool.inputSchema : {};
  return { ...schema, type: 'object', properties: isPlainObject(schema['properties']) ? schema['properties'] : {} };
}

/** The list answer of `GET /v1/mcp/tools` in `format`. */
export function toolsInFormat(tools: readonly McpTool[], format: ToolFormat): { tools: unknown[] } {
  switch (format) {
    case 'mcp':
      return { tools: [...tools] };
    case 'openai':
      return {
        tools: tools.map((tool) => ({
          type: 'function',
          function: {
            name: modelToolName(tool.name),
            ...(tool.description === undefined ? {} : { description: tool.description }),
            parameters: parametersOf(tool),
          },
        })),
      };
    case 'openai-responses':
      return {
        tools: tools.map((tool) => ({
          type: 'function',
          name: modelToolName(tool.name),
          ...(tool.description === undefined ? {} : { description: tool.description }),
          parameters: parametersOf(tool),
          strict: false,
        })),
      };
    case 'anthropic':
      return {
        tools: tools.map((tool) => ({
          name: modelToolName(tool.name),
          ...(tool.description === undefined ? {} : { description: tool.description }),
          input_schema: parametersOf(tool),
        })),
      };
  }
}

/** One content item of a CallToolResult, as text a model API that takes only text can carry. */
function contentText(item: unknown): string {
  if (isPlainObject(item) && item['type'] === 'text' && typeof item['text'] === 'string') return item['text'];
  return JSON.stringify(item);
}

/** A CallToolResult's content as one text (OpenAI tool outputs are strings). */
function resultText(result: Record<string, unknown>): string {
  const content = Array.isArray(result['content']) ? result['content'] : [];
  if (content.length === 0 && result['structuredContent'] !== undefined)
    return JSON.stringify(result['structuredContent']);
  return content.map(contentText).join('\n');
}

/** The image types a Messages API image block takes; other images go as their JSON text. */
const ANTHROPIC_IMAGE_TYPES: ReadonlySet<string> = new Set(['image/jpeg', 'image/png', 'image/gif', 'image/webp']);

/** A CallToolResult's content as Anthropic `tool_result` content blocks (text and base64 images). */
function anthropicBlocks(result: Record<string, unknown>): unknown[] {
  const content = Array.isArray(result['content']) ? result['content'] : [];
  if (content.length === 0)
    return [
      {
        type: 'text',
        text: result['structuredContent'] === undefined ? '' : JSON.stringify(result['structuredContent']),
      },
    ];
  return content.map((item: unknown) => {
    if (
      isPlainObject(item) &&
      item['type'] === 'image' &&
      typeof item['data'] === 'string' &&
      typeof item['mimeType'] === 'string' &&
      ANTHROPIC_IMAGE_TYPES.has(item['mimeType'])
    ) {
      return { type: 'image', source: { type: 'base64', media_type: item['mimeType'], data: item['data'] } };
    }
    return { type: 'text', text: contentText(item) };
  });
}

/** Which model-API object a call came as: its answer echoes the call's id in the matching form. */
export type CallForm =
  | { readonly kind: 'mcp' }
  | { readonly kind: 'openai-chat'; readonly id: string }
  | { readonly kind: 'openai-responses'; readonly callId: string }
  | { readonly kind: 'anthropic'; readonly id: string };

/** The answer of `POST /v1/mcp/tool/execute`: the CallToolResult in the form the call came in. */
export function resultInForm(result: Record<string, unknown>, form: CallForm): Record<string, unknown> {
  switch (form.kind) {
    case 'mcp':
      return result;
    case 'openai-chat':
      return { role: 'tool', tool_call_id: form.id, content: resultText(result) };
    case 'openai-responses':
      return { type: 'function_call_output', call_id: form.callId, output: resultText(result) };
    case 'anthropic':
      return {
        type: 'tool_result',
        tool_use_id: form.id,
        content: anthropicBlocks(result),
        ...(result['isError'] === true ? { is_error: true } : {}),
      };
  }
}
