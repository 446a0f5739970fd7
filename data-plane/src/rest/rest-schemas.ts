import { z } from 'zod';
import { TOOL_FORMATS } from './model-formats.ts';

/**
 * The REST surface's bodies, as zod schemas: requests are validated with them and the OpenAPI
 * document (`/v1/openapi.json`) is generated from them, so the two cannot drift apart.
 */

const toolArguments = z.record(z.string(), z.unknown()).meta({ description: 'The tool arguments, a JSON object' });
const toolName = z.string().min(1).max(256);

export const formatQuery = z.enum(TOOL_FORMATS).meta({
  description:
    'How tools and calls are written: `mcp` (default), `openai` (Chat Completions; execute also takes a Responses ' +
    '`function_call` item), `openai-responses` (Responses API function tools), `anthropic` (Messages API)',
});

export const mcpCall = z
  .looseObject({ name: toolName, arguments: toolArguments.optional() })
  .meta({ description: 'An MCP `tools/call` request’s params: the tool name and its arguments' });

export const openAiChatToolCall = z
  .looseObject({
    id: z.string().min(1),
    type: z.literal('function'),
    function: z.looseObject({
      name: toolName,
      arguments: z.string().meta({ description: 'The arguments as a JSON text of an object, as the model wrote them' }),
    }),
  })
  .meta({ description: 'One entry of a Chat Completions message’s `tool_calls`' });

export const openAiFunctionCall = z
  .looseObject({
    type: z.literal('function_call'),
    call_id: z.string().min(1),
    name: toolName,
    arguments: z.string(),
    id: z.string().optional(),
    status: z.string().optional(),
  })
  .meta({ description: 'A Responses API `function_call` output item' });

export const openAiCall = z.discriminatedUnion('type', [openAiChatToolCall, openAiFunctionCall]);

export const anthropicToolUse = z
  .looseObject({ type: z.literal('tool_use'), id: z.string().min(1), name: toolName, input: toolArguments })
  .meta({ description: 'A Messages API `tool_use` content block' });

export const errorBody = z.object({
  error: z.object({
    code: z.string().meta({ description: 'A stable code in SCREAMING_SNAKE_CASE, e.g. TOOL_NOT_FOUND' }),
    message: z.string().meta({ description: 'What went wrong and how to fix it' }),
  }),
});

export const callToolResult = z
  .looseObject({
    content: z.array(z.looseObject({ type: z.string() })),
    structuredContent: z.record(z.string(), z.unknown()).optional(),
    isError: z.boolean().optional(),
  })
  .meta({ description: 'An MCP CallToolResult' });

export const openAiToolMessage = z
  .object({ role: z.literal('tool'), tool_call_id: z.string(), content: z.string() })
  .meta({ description: 'A Chat Completions `tool` message answering the call' });

export const openAiFunctionCallOutput = z
  .object({ type: z.literal('function_call_output'), call_id: z.string(), output: z.string() })
  .meta({ description: 'A Responses API `function_call_output` input item' });

export const anthropicToolResult = z
  .object({
    type: z.literal('tool_result'),
    tool_use_id: z.string(),
    content: z.array(z.looseObject({ type: z.string() })),
    is_error: z.boolean().optional(),
  })
  .meta({ description: 'A Messages API `tool_result` content block' });

export const toolList = z
  .object({ tools: z.array(z.looseObject({})) })
  .meta({ description: 'The tools this key may call, in the requested format' });

/** The issues of a failed parse as one line naming each field (`function.arguments: expected string`). */
export function describeIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 5)
    .map((issue) => `${issue.path.length === 0 ? 'body' : issue.path.join('.')}: ${issue.message}`)
    .join('; ');
}
