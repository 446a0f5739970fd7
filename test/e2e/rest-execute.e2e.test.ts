import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { REPO_ROOT } from '../support/processes.ts';
import { readFileSync } from 'node:fs';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { CallToolResultSchema, ListToolsResultSchema } from '@modelcontextprotocol/sdk/types.js';
import { everythingUpstream, startTestEnv, type TestEnv } from '../support/test-env.ts';
import { eventually } from '../support/eventually.ts';

/**
 * The REST execute API against a real node, a real control plane and server-everything: tools
 * listed and calls answered in MCP, OpenAI (Chat Completions and Responses) and Anthropic form,
 * each checked against the model API's published shapes (test/fixtures/model-api-schemas, with
 * their sources), and the refusals of malformed bodies, unknown formats and oversize arguments.
 */

const MAX_BODY_BYTES = 8 * 1024;

function fixture(name: string): Record<string, unknown> {
  return JSON.parse(readFileSync(resolve(REPO_ROOT, `test/fixtures/model-api-schemas/${name}.json`), 'utf8'));
}

const ajv = new Ajv2020({ strict: false, allErrors: true });
const schemas = {
  chat: fixture('openai-chat-completions'),
  responses: fixture('openai-responses'),
  anthropic: fixture('anthropic-messages'),
};
for (const [id, schema] of Object.entries(schemas)) ajv.addSchema({ ...schema, $id: id });

/** Fails listing ajv's complaints when `value` is not a `definition` of the fixture `id`. */
function assertShape(id: keyof typeof schemas, definition: string, value: unknown): void {
  const validate = ajv.getSchema(`${id}#/$defs/${definition}`);
  assert.ok(validate, `${id} defines ${definition}`);
  assert.ok(validate(value), `${definition}: ${JSON.stringify(validate.errors)} in ${JSON.stringify(value)}`);
}

describe('REST execute API (one node, server-everything)', () => {
  let env: TestEnv;
  let base: string;
  let all: string;
  let echoOnly: string;

  before(async () => {
    env = await startTestEnv({
      nodes: [{ id: 'rest-node', args: ['--max-body-bytes', String(MAX_BODY_BYTES)] }],
      upstreams: [everythingUpstream('ev')],
      keys: [
        { name: 'all', allowedTools: ['ev__*'] },
        { name: 'echo-only', allowedTools: ['ev__echo'] },
      ],
    });
    base = `http://127.0.0.1:${env.node('rest-node').port}`;
    all = env.keys[0]!.secret;
    echoOnly = env.keys[1]!.secret;
    await eventually('the node lists server-everything’s tools', async () => {
      const response = await get('/v1/mcp/tools', all);
      return response.ok && ((await response.json()) as { tools: unknown[] }).tools.length > 5;
    });
  });
  after(() => env?.dispose());

  function get(path: string, key: string | undefined): Promise<Response> {
    return fetch(`${base}${path}`, { headers: key === undefined ? {} : { authorization: `Bearer ${key}` } });
  }

  function execute(
    format: string | undefined,
    body: unknown,
    key: string | undefined = all,
    headers: Record<string, string> = {},
  ): Promise<Response> {
    return fetch(`${base}/v1/mcp/tool/execute${format === undefined ? '' : `?format=${format}`}`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        ...(key === undefined ? {} : { authorization: `Bearer ${key}` }),
        ...headers,
      },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
  }

  async function refusal(response: Response, status: number, code: string, message?: RegExp): Promise<void> {
    const body = (await response.json()) as { error: { code: string; message: string } };
    assert.equal(response.status, status, JSON.stringify(body));
    assert.equal(body.error.code, code);
    assert.equal(typeof body.error.message, 'string');
    if (message !== undefined) assert.match(body.error.message, message);
  }

  test('GET /v1/mcp/tools lists the key’s tools in MCP form, and only those', async () => {
    const mcp = ListToolsResultSchema.parse(await (await get('/v1/mcp/tools', all)).json());
    assert.ok(mcp.tools.some((tool) => tool.name === 'ev__get-sum'));
    const restricted = ListToolsResultSchema.parse(await (await get('/v1/mcp/tools?format=mcp', echoOnly)).json());
    assert.deepEqual(
      restricted.tools.map((tool) => tool.name),
      ['ev__echo'],
    );
  });

  test('?format=openai, openai-responses and anthropic list every tool in that API’s tool format', async () => {
    const names = ListToolsResultSchema.parse(await (await get('/v1/mcp/tools', all)).json()).tools.map((t) => t.name);
    const chat = (await (await get('/v1/mcp/tools?format=openai', all)).json()) as { tools: unknown[] };
    for (const tool of chat.tools) assertShape('chat', 'ChatCompletionTool', tool);
    assert.deepEqual(
      chat.tools.map((tool) => (tool as { function: { name: string } }).function.name),
      names,
    );
    const responses = (await (await get('/v1/mcp/tools?format=openai-responses', all)).json()) as { tools: unknown[] };
    for (const tool of responses.tools) assertShape('responses', 'FunctionTool', tool);
    const anthropic = (await (await get('/v1/mcp/tools?format=anthropic', all)).json()) as { tools: unknown[] };
    for (const tool of anthropic.tools) assertShape('anthropic', 'Tool', tool);
    const sum = anthropic.tools.find((tool) => (tool as { name: string }).name === 'ev__get-sum') as {
      input_schema: { properties: Record<string, unknown> };
    };
    assert.deepEqual(Object.keys(sum.input_schema.properties).sort(), ['a', 'b']);
  });

  test('an MCP call is answered with a CallToolResult', async () => {
    const response = await execute(undefined, { name: 'ev__get-sum', arguments: { a: 2, b: 3 } });
    assert.equal(response.status, 200);
    const result = CallToolResultSchema.parse(await response.json());
    assert.match(JSON.stringify(result.content), /5/);
  });

  test('an OpenAI Chat Completions tool call is answered with a tool message', async () => {
    const call = {
      id: 'call_abc123',
      type: 'function',
      function: { name: 'ev__echo', arguments: JSON.stringify({ message: 'hello openai' }) },
    };
    assertShape('chat', 'ChatCompletionMessageToolCall', call);
    const response = await execute('openai', call);
    assert.equal(response.status, 200);
    const message = await response.json();
    assertShape('chat', 'ChatCompletionRequestToolMessage', message);
    assert.deepEqual(message, { role: 'tool', tool_call_id: 'call_abc123', content: 'Echo: hello openai' });
  });

  test('an OpenAI Responses function_call item is answered with a function_call_output item', async () => {
    const call = {
      type: 'function_call',
      id: 'fc_1',
      call_id: 'call_xyz',
      name: 'ev__echo',
      arguments: '{"message":"hello responses"}',
      status: 'completed',
    };
    assertShape('responses', 'FunctionToolCall', call);
    for (const format of ['openai', 'openai-responses']) {
      const response = await execute(format, call);
      assert.equal(response.status, 200);
      const item = await response.json();
      assertShape('responses', 'FunctionCallOutputItemParam', item);
      assert.deepEqual(item, { type: 'function_call_output', call_id: 'call_xyz', output: 'Echo: hello responses' });
    }
  });

  test('an Anthropic tool_use block is answered with a tool_result block, images as image blocks', async () => {
    const use = { type: 'tool_use', id: 'toolu_01', name: 'ev__echo', input: { message: 'hello claude' } };
    assertShape('anthropic', 'ToolUseBlock', use);
    const response = await execute('anthropic', use);
    assert.equal(response.status, 200);
    const block = await response.json();
    assertShape('anthropic', 'ToolResultBlockParam', block);
    assert.deepEqual(block, {
      type: 'tool_result',
      tool_use_id: 'toolu_01',
      content: [{ type: 'text', text: 'Echo: hello claude' }],
    });
    const image = await (
      await execute('anthropic', { type: 'tool_use', id: 'toolu_02', name: 'ev__get-tiny-image', input: {} })
    ).json();
    assertShape('anthropic', 'ToolResultBlockParam', image);
    const kinds = (image as { content: { type: string; source?: { media_type: string } }[] }).content;
    assert.ok(kinds.some((item) => item.type === 'image' && item.source?.media_type === 'image/png'));
  });

  test('a tool that fails is a result marked as an error, not an HTTP error (Anthropic: is_error)', async () => {
    const response = await execute('anthropic', {
      type: 'tool_use',
      id: 'toolu_03',
      name: 'ev__get-sum',
      input: { a: 'not a number' },
    });
    assert.equal(response.status, 200);
    const block = await response.json();
    assertShape('anthropic', 'ToolResultBlockParam', block);
    assert.equal((block as { is_error?: boolean }).is_error, true);
  });

  test('a tool outside the key’s allow-list is refused exactly like one that does not exist', async () => {
    const outside = await execute(undefined, { name: 'ev__get-sum', arguments: { a: 1, b: 2 } }, echoOnly);
    const missing = await execute(undefined, { name: 'ev__no-such-tool', arguments: {} }, echoOnly);
    await refusal(outside, 404, 'TOOL_NOT_FOUND', /^Tool ev__get-sum not found$/);
    await refusal(missing, 404, 'TOOL_NOT_FOUND', /^Tool ev__no-such-tool not found$/);
  });

  test('refusals: no key, unknown key, unknown format, wrong content type, wrong method', async () => {
    await refusal(await get('/v1/mcp/tools', undefined), 401, 'UNAUTHENTICATED');
    await refusal(await execute(undefined, { name: 'ev__echo' }, 'pcs_not-a-key'), 401, 'UNAUTHENTICATED');
    await refusal(await get('/v1/mcp/tools?format=gemini', all), 400, 'UNKNOWN_FORMAT', /"openai"/);
    await refusal(await execute('gemini', { name: 'ev__echo' }), 400, 'UNKNOWN_FORMAT');
    const text = await fetch(`${base}/v1/mcp/tool/execute`, {
      method: 'POST',
      headers: { authorization: `Bearer ${all}`, 'content-type': 'text/plain' },
      body: '{}',
    });
    await refusal(text, 415, 'UNSUPPORTED_MEDIA_TYPE');
    await refusal(await get('/v1/mcp/tool/execute', all), 405, 'METHOD_NOT_ALLOWED');
  });

  test('malformed bodies are refused with 400 naming the field', async () => {
    await refusal(await execute(undefined, '{"name": "ev__echo",'), 400, 'INVALID_JSON');
    await refusal(await execute(undefined, { arguments: {} }), 400, 'INVALID_BODY', /name/);
    await refusal(await execute(undefined, { name: 'ev__echo', arguments: [1] }), 400, 'INVALID_BODY', /arguments/);
    await refusal(
      await execute('openai', {
        id: 'c1',
        type: 'function',
        function: { name: 'ev__echo', arguments: { message: 'x' } },
      }),
      400,
      'INVALID_BODY',
      /function\.arguments/,
    );
    await refusal(
      await execute('openai', { id: 'c1', type: 'function', function: { name: 'ev__echo', arguments: '[1, 2]' } }),
      400,
      'INVALID_BODY',
      /function\.arguments: must be the JSON text of an object/,
    );
    await refusal(
      await execute('anthropic', { type: 'tool_use', id: 't1', name: 'ev__echo' }),
      400,
      'INVALID_BODY',
      /input/,
    );
    await refusal(await execute('anthropic', { name: 'ev__echo', arguments: {} }), 400, 'INVALID_BODY', /tool_use/);
    await refusal(
      await execute(undefined, { name: 'ev__echo', arguments: { message: 'x' } }, all, {
        'x-portcullis-parent-request': 'p'.repeat(300),
      }),
      400,
      'INVALID_PARENT_REQUEST',
    );
  });

  test('oversize arguments are refused with 413 before the tool runs, in every format', async () => {
    const big = 'x'.repeat(MAX_BODY_BYTES + 1);
    await refusal(
      await execute(undefined, { name: 'ev__echo', arguments: { message: big } }),
      413,
      'PAYLOAD_TOO_LARGE',
    );
    await refusal(
      await execute('openai', { id: 'c', type: 'function', function: { name: 'ev__echo', arguments: big } }),
      413,
      'PAYLOAD_TOO_LARGE',
    );
    await refusal(
      await execute('anthropic', { type: 'tool_use', id: 't', name: 'ev__echo', input: { message: big } }),
      413,
      'PAYLOAD_TOO_LARGE',
      new RegExp(String(MAX_BODY_BYTES)),
    );
  });

  test(`/v1/openapi.json is an OpenAPI 3.1 document of the surface, its schemas those that \
validate requests`, async () => {
    const response = await get('/v1/openapi.json', undefined);
    assert.equal(response.status, 200);
    const document = (await response.json()) as {
      openapi: string;
      paths: Record<string, Record<string, unknown>>;
      components: { schemas: Record<string, { required?: string[] }> };
    };
    assert.equal(document.openapi, '3.1.0');
    assert.deepEqual(Object.keys(document.paths).sort(), ['/v1/mcp/tool/execute', '/v1/mcp/tools']);
    assert.deepEqual(document.components.schemas['AnthropicToolUse']?.required, ['type', 'id', 'name', 'input']);
    assert.deepEqual(document.components.schemas['OpenAIChatToolCall']?.required, ['id', 'type', 'function']);
    // The document's component schemas validate what the API accepts and refuse what it refuses.
    const validator = new Ajv2020({ strict: false });
    validator.addSchema({ $id: 'doc', components: document.components });
    const toolUse = validator.compile({ $ref: 'doc#/components/schemas/AnthropicToolUse' });
    assert.equal(toolUse({ type: 'tool_use', id: 't', name: 'n', input: {} }), true);
    assert.equal(toolUse({ type: 'tool_use', id: 't', name: 'n' }), false);
  });

  test('traceparent, parent request and model cost headers land in the audit record', async () => {
    const traceId = '0af7651916cd43dd8448eb211c80319c';
    const response = await execute(
      'openai',
      { id: 'c1', type: 'function', function: { name: 'ev__echo', arguments: '{"message":"traced"}' } },
      all,
      {
        traceparent: `00-${traceId}-b7ad6b7169203331-01`,
        'x-portcullis-parent-request': 'rest-run-7',
        'x-portcullis-model-cost-micros': '4200',
      },
    );
    assert.equal(response.status, 200);
    const rows = await eventually('the REST call is stored', async () => {
      const found = await env.schema.query<{ trace_id: string | null; model_cost_micros: string | null; tool: string }>(
        `SELECT trace_id, model_cost_micros::text, tool FROM audit_events WHERE parent_id = 'rest-run-7'`,
      );
      return found.length === 1 ? found : undefined;
    });
    assert.deepEqual(rows[0], { trace_id: traceId, model_cost_micros: '4200', tool: 'ev__echo' });
  });
});
