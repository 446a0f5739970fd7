import { z } from 'zod';

/**
 * The four code-mode meta-tools: fixed names and arguments (issue 17), so any agent and benchmark
 * can rely on them. Their definitions are re-read by the model every turn, so every word here
 * costs as much as many elsewhere: they say only what a model needs to use them.
 */
export const META_TOOL_NAMES = ['search_tools', 'list_tool_files', 'read_tool_file', 'run_script'] as const;
export type MetaToolName = (typeof META_TOOL_NAMES)[number];

export function isMetaTool(name: unknown): name is MetaToolName {
  return typeof name === 'string' && (META_TOOL_NAMES as readonly string[]).includes(name);
}

export const META_TOOL_DEFINITIONS: readonly Record<string, unknown>[] = [
  {
    name: 'search_tools',
    description: 'Find tools by keywords. Returns stub file paths, best first.',
    inputSchema: {
      type: 'object',
      properties: { query: { type: 'string' }, limit: { type: 'integer', description: 'default 10' } },
      required: ['query'],
    },
  },
  {
    name: 'list_tool_files',
    description: 'List stub files: servers/<server>/<tool>.d.ts.',
    inputSchema: { type: 'object', properties: { path: { type: 'string', description: 'default servers' } } },
  },
  {
    name: 'read_tool_file',
    description: "Read a tool's TypeScript stub.",
    inputSchema: {
      type: 'object',
      properties: { path: { type: 'string' }, startLine: { type: 'integer' }, endLine: { type: 'integer' } },
      required: ['path'],
    },
  },
  {
    name: 'run_script',
    description:
      'Run async JavaScript calling tools as `await tools.<server>.<tool>(args)`; `return` the answer. console.log ' +
      'is captured.',
    inputSchema: { type: 'object', properties: { code: { type: 'string' } }, required: ['code'] },
  },
];

/** The meta-tools' arguments, checked; a problem becomes an isError result naming the field. */
export const META_TOOL_ARGUMENTS = {
  search_tools: z.object({
    query: z.string().min(1, 'give the words to look for'),
    limit: z.number().int().min(1).max(100, 'at most 100').optional(),
  }),
  list_tool_files: z.object({ path: z.string().optional() }),
  read_tool_file: z.object({
    path: z.string().min(1, 'give a path from search_tools or list_tool_files'),
    startLine: z.number().int().min(1).optional(),
    endLine: z.number().int().min(1).optional(),
  }),
  run_script: z.object({ code: z.string().min(1, 'give the script') }),
} satisfies Record<MetaToolName, z.ZodType>;
