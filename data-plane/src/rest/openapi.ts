import { z } from 'zod';
import {
  anthropicToolResult,
  anthropicToolUse,
  callToolResult,
  errorBody,
  formatQuery,
  mcpCall,
  openAiChatToolCall,
  openAiFunctionCall,
  openAiFunctionCallOutput,
  openAiToolMessage,
  toolList,
} from './rest-schemas.ts';

const COMPONENTS: ReadonlyArray<readonly [string, z.ZodType]> = [
  ['McpToolCall', mcpCall],
  ['OpenAIChatToolCall', openAiChatToolCall],
  ['OpenAIFunctionCall', openAiFunctionCall],
  ['AnthropicToolUse', anthropicToolUse],
  ['CallToolResult', callToolResult],
  ['OpenAIToolMessage', openAiToolMessage],
  ['OpenAIFunctionCallOutput', openAiFunctionCallOutput],
  ['AnthropicToolResult', anthropicToolResult],
  ['ToolList', toolList],
  ['Error', errorBody],
];

const ref = (id: string) => ({ $ref: `#/components/schemas/${id}` });
const json = (schema: unknown) => ({ content: { 'application/json': { schema } } });

function errors(...statuses: number[]): Record<string, unknown> {
  const described: Record<number, string> = {
    400: 'Malformed body, unknown format or invalid arguments',
    401: 'No valid virtual key',
    403: 'The call was refused by policy or a person',
    404: 'No such tool for this key',
    413: 'Body larger than the node accepts',
    415: 'Content-Type is not application/json',
    429: 'Too many requests in flight, or a rate limit',
    502: 'The upstream failed',
    503: 'The node has no configuration yet',
  };
  return Object.fromEntries(
    statuses.map((status) => [String(status), { description: described[status], ...json(ref('Error')) }]),
  );
}

/** The OpenAPI 3.1 document of the REST surface, built once from the zod schemas that validate it. */
export function buildOpenApiDocument(version: string): Record<string, unknown> {
  const registry = z.registry<{ id: string }>();
  for (const [id, schema] of COMPONENTS) registry.add(schema, { id });
  const { schemas } = z.toJSONSchema(registry, {
    target: 'draft-2020-12',
    uri: (id) => `#/components/schemas/${id}`,
  });
  const components: Record<string, unknown> = {};
  for (const [id, schema] of Object.entries(schemas)) {
    const { $schema: _schema, $id: _id, ...rest } = schema as Record<string, unknown>;
    components[id] = rest;
  }
  const format = { name: 'format', in: 'query', required: false, schema: z.toJSONSchema(formatQuery) };
  const { $schema: _formatSchema, ...formatSchema } = format.schema as Record<string, unknown>;
  const formatParameter = { ...format, schema: formatSchema, description: formatSchema['description'] };
  return {
    openapi: '3.1.0',
    info: {
      title: 'Portcullis data plane REST API',
      version,
      description:
        'Explicit tool execution for applications that run their own model loop. Same keys, allow-lists, limits, ' +
        'policy and audit as MCP.',
    },
    components: {
      schemas: components,
      securitySchemes: { virtualKey: { type: 'http', scheme: 'bearer', description: 'A Portcullis virtual key' } },
    },
    security: [{ virtualKey: [] }],
    paths: {
      '/v1/mcp/tools': {
        get: {
          operationId: 'listTools',
          summary: 'The tools this key may call',
          parameters: [formatParameter],
          responses: { '200': { description: 'The tools', ...json(ref('ToolList')) }, ...errors(400, 401, 503) },
        },
      },
      '/v1/mcp/tool/execute': {
        post: {
          operationId: 'executeTool',
          summary: 'Runs one tool call; answers in the form it came in',
          parameters: [
            formatParameter,
            {
              name: 'x-portcullis-parent-request',
              in: 'header',
              required: false,
              description: 'The id of the model request that proposed this call (recorded with it)',
              schema: { type: 'string', maxLength: 256 },
            },
          ],
          requestBody: {
            required: true,
            ...json({
              oneOf: [
                ref('McpToolCall'),
                ref('OpenAIChatToolCall'),
                ref('OpenAIFunctionCall'),
                ref('AnthropicToolUse'),
              ],
            }),
          },
          responses: {
            '200': {
              description: 'The tool’s result (a failed tool is a result with isError / is_error, not an HTTP error)',
              ...json({
                oneOf: [
                  ref('CallToolResult'),
                  ref('OpenAIToolMessage'),
                  ref('OpenAIFunctionCallOutput'),
                  ref('AnthropicToolResult'),
                ],
              }),
            },
            ...errors(400, 401, 403, 404, 413, 415, 429, 502, 503),
          },
        },
      },
    },
  };
}
