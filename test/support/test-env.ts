/**
 * One disposable test environment for the end-to-end tests:
 *
 *   await using env = await startTestEnv({
 *     nodes: ['node-a'], upstreams: [everythingUpstream('ev')], keys: [{ name: 'k' }],
 *   });
 *
 * It makes a fresh schema on the machine's PostgreSQL, starts a control plane on it (its own process by default,
 * in this process, or none for tests of one database component), connects data-plane nodes (real processes) and
 * hand-driven config streams, registers
 * upstreams and creates keys through GraphQL, and waits until every node accepts every key. Whatever it started
 * (and whatever a test hands to `env.defer`) is stopped in reverse order when the environment is disposed, also
 * when a step of the start fails; the schema is dropped last. Where one environment serves a whole `describe`,
 * start it in `before` and call `env.dispose()` in `after`.
 */
import { after, afterEach, before } from 'node:test';
import type { DataSource } from 'typeorm';
import { openDatabase } from '../../control-plane/src/db/data-source.ts';
import type { ControlPlane, ControlPlaneOptions } from '../../control-plane/src/index.ts';
import { NODE_TOKEN, TestNode, startOnSchema } from '../e2e/control-plane-harness.ts';
import { createTestSchema, type TestSchema } from './database.ts';
import { ControlPlaneProcess, DataPlaneProcess, accepts } from './gateway.ts';
import { CREATE_KEY, CREATE_UPSTREAM, type GraphQLResponse, graphql, graphqlOk } from './graphql.ts';
import { EVERYTHING_SERVER } from './processes.ts';
import { eventually } from './eventually.ts';

/** A `CreateUpstreamInput`, as the GraphQL API takes it. */
export type UpstreamInput = { name: string; transport: 'STDIO' | 'STREAMABLE_HTTP' | 'SSE' } & Record<string, unknown>;
/** A `CreateVirtualKeyInput`. */
export interface KeyInput {
  name: string;
  allowedTools?: readonly string[];
  teamId?: string;
  codeMode?: 'INHERIT' | 'ON' | 'OFF';
  auditContent?: 'INHERIT' | 'ON' | 'OFF';
}
export interface NodeSpec {
  id: string;
  args?: readonly string[];
  /** Overrides of the node's environment (`PORTCULLIS_NODE_TOKEN: ''` drops the token). */
  env?: NodeJS.ProcessEnv;
}

export interface TestEnvOptions {
  /** Prefix of the schema's name (default `test`). */
  schemaPrefix?: string;
  /**
   * `process` (default): `portcullis control-plane` as a child process, restartable (`env.controlPlane`).
   * `in-process`: `startControlPlane` in the test's own process (`env.plane`), with `overrides` applied.
   * `none`: only the schema (for tests of one component on the database, `env.openDatabase`).
   */
  controlPlane?: 'process' | 'in-process' | 'none';
  overrides?: Partial<ControlPlaneOptions>;
  /** More flags and environment for the control plane's process (e.g. TLS). */
  processExtra?: { args?: readonly string[]; env?: NodeJS.ProcessEnv };
  /** Data-plane nodes, each a real `portcullis data-plane` process. */
  nodes?: readonly (string | NodeSpec)[];
  /** Config streams driven by hand (`TestNode`), each greeted with its id and holding its first snapshot. */
  configStreams?: readonly string[];
  upstreams?: readonly UpstreamInput[];
  keys?: readonly KeyInput[];
}

export interface CreatedKey {
  readonly id: string;
  readonly name: string;
  readonly secret: string;
}

export interface TestEnv extends AsyncDisposable {
  readonly schema: TestSchema;
  /** The control plane's process (`controlPlane: 'process'`). */
  readonly controlPlane: ControlPlaneProcess | undefined;
  /** The in-process control plane (`controlPlane: 'in-process'`). */
  readonly plane: ControlPlane | undefined;
  readonly graphqlUrl: string;
  readonly grpcAddress: string;
  readonly adminToken: string;
  readonly nodeToken: string;
  readonly nodes: DataPlaneProcess[];
  readonly configStreams: TestNode[];
  readonly upstreams: { id: string; name: string }[];
  readonly keys: CreatedKey[];
  /** The first key of `options.keys`. */
  readonly key: CreatedKey;
  /** The node started with this id. */
  node(id: string): DataPlaneProcess;
  /** A TypeORM data source on the schema (migrated), destroyed with the environment. */
  openDatabase(poolSize?: number): Promise<DataSource>;
  /** A GraphQL operation with the admin token (or `token`; `null` sends none). */
  gql<T = Record<string, unknown>>(
    query: string,
    variables?: Record<string, unknown>,
    token?: string | null,
  ): Promise<GraphQLResponse<T>>;
  /** Like `gql`, failing with the server's errors when there are any. */
  gqlOk<T = Record<string, unknown>>(query: string, variables?: Record<string, unknown>): Promise<T>;
  startNode(spec: string | NodeSpec): Promise<DataPlaneProcess>;
  connectConfigStream(nodeId: string): Promise<TestNode>;
  createUpstream(input: UpstreamInput): Promise<{ id: string; name: string }>;
  createKey(input: KeyInput): Promise<CreatedKey>;
  /** Resolves once every node accepts every key. */
  keysReachedNodes(timeoutMs?: number): Promise<void>;
  /** Runs `cleanup` when the environment is disposed (in reverse order of registration). */
  defer(cleanup: () => unknown): void;
  dispose(): Promise<void>;
}

/** server-everything over stdio, as an upstream named `name`. */
export function everythingUpstream(name: string, fields: Record<string, unknown> = {}): UpstreamInput {
  return { name, transport: 'STDIO', command: process.execPath, args: [EVERYTHING_SERVER, 'stdio'], ...fields };
}

/**
 * One environment for a whole `describe`: started before its tests (handed to `started`, for the suite to keep
 * what it uses), the rows of `emptied` deleted after each test, disposed after the last.
 */
export function useTestEnv(
  options: TestEnvOptions,
  started: (env: TestEnv) => void,
  emptied: readonly string[] = [],
): void {
  let env: TestEnv | undefined;
  before(async () => {
    env = await startTestEnv(options);
    started(env);
  });
  afterEach(async () => {
    for (const table of emptied) await env?.schema.query(`DELETE FROM ${table}`);
  });
  after(async () => {
    await env?.dispose();
  });
}

export async function startTestEnv(options: TestEnvOptions = {}): Promise<TestEnv> {
  const schema = await createTestSchema(options.schemaPrefix);
  const cleanups: (() => unknown)[] = [];
  let disposed: Promise<void> | undefined;
  const dispose = (): Promise<void> => {
    disposed ??= (async () => {
      for (const cleanup of cleanups.reverse()) {
        await Promise.resolve()
          .then(cleanup)
          .catch(() => undefined);
      }
      await schema.drop();
    })();
    return disposed;
  };
  try {
    const env = await build(schema, options, cleanups, dispose);
    return env;
  } catch (error) {
    await dispose();
    throw error;
  }
}

async function build(
  schema: TestSchema,
  options: TestEnvOptions,
  cleanups: (() => unknown)[],
  dispose: () => Promise<void>,
): Promise<TestEnv> {
  const defer = (cleanup: () => unknown) => void cleanups.push(cleanup);
  let controlPlane: ControlPlaneProcess | undefined;
  let plane: ControlPlane | undefined;
  let endpoint: { graphqlUrl: string; grpcAddress: string; adminToken: string; nodeToken: string };
  if (options.controlPlane === 'none') {
    const absent = (): never => {
      throw new Error("this test environment was started with controlPlane: 'none'");
    };
    endpoint = {
      get graphqlUrl() {
        return absent();
      },
      get grpcAddress() {
        return absent();
      },
      get adminToken() {
        return absent();
      },
      get nodeToken() {
        return absent();
      },
    };
  } else if (options.controlPlane === 'in-process') {
    const started = await startOnSchema(schema, options.overrides);
    plane = started;
    defer(() => started.close());
    endpoint = { ...started, adminToken: started.adminToken, nodeToken: options.overrides?.nodeToken ?? NODE_TOKEN };
  } else {
    const started = await ControlPlaneProcess.start(schema.url, schema.name, options.processExtra);
    controlPlane = started;
    defer(() => started.stop());
    endpoint = {
      get graphqlUrl() {
        return started.graphqlUrl;
      },
      grpcAddress: started.grpcAddress,
      adminToken: started.adminToken,
      nodeToken: started.nodeToken,
    };
  }

  const nodes: DataPlaneProcess[] = [];
  const configStreams: TestNode[] = [];
  const upstreams: { id: string; name: string }[] = [];
  const keys: CreatedKey[] = [];
  const gql = <T>(query: string, variables: Record<string, unknown> = {}, token: string | null = endpoint.adminToken) =>
    graphql<T>(endpoint.graphqlUrl, token ?? undefined, query, variables);
  const gqlOk = <T>(query: string, variables: Record<string, unknown> = {}) =>
    graphqlOk<T>(endpoint.graphqlUrl, endpoint.adminToken, query, variables);

  const env: TestEnv = {
    schema,
    controlPlane,
    plane,
    get graphqlUrl() {
      return endpoint.graphqlUrl;
    },
    get grpcAddress() {
      return endpoint.grpcAddress;
    },
    get adminToken() {
      return endpoint.adminToken;
    },
    get nodeToken() {
      return endpoint.nodeToken;
    },
    nodes,
    configStreams,
    upstreams,
    keys,
    get key() {
      const first = keys[0];
      if (!first) throw new Error('this test environment was started without keys');
      return first;
    },
    node(id) {
      const found = nodes.find((node) => node.nodeId === id);
      if (!found) throw new Error(`no node ${id} in this test environment (${nodes.map((n) => n.nodeId).join(', ')})`);
      return found;
    },
    async openDatabase(poolSize = 2) {
      const dataSource = await openDatabase({ url: schema.url, schema: schema.name, poolSize, embedded: false });
      defer(() => dataSource.destroy());
      return dataSource;
    },
    gql,
    gqlOk,
    async startNode(spec) {
      const { id, args = [], env = {} } = typeof spec === 'string' ? { id: spec } : spec;
      const node = await DataPlaneProcess.start(endpoint, id, args, env);
      defer(() => node.stop());
      nodes.push(node);
      return node;
    },
    async connectConfigStream(nodeId) {
      const stream = new TestNode(endpoint.grpcAddress, endpoint.nodeToken);
      defer(() => stream.close());
      stream.hello(nodeId);
      await stream.snapshot();
      configStreams.push(stream);
      return stream;
    },
    async createUpstream(input) {
      const created = await gqlOk<{ createUpstream: { id: string; name: string } }>(CREATE_UPSTREAM, { input });
      upstreams.push(created.createUpstream);
      return created.createUpstream;
    },
    async createKey(input) {
      const created = await gqlOk<{ createVirtualKey: { secret: string; key: { id: string } } }>(CREATE_KEY, { input });
      const key = { id: created.createVirtualKey.key.id, name: input.name, secret: created.createVirtualKey.secret };
      keys.push(key);
      return key;
    },
    async keysReachedNodes(timeoutMs = 15_000) {
      await eventually(
        'every node accepts every key',
        async () => {
          const checks = nodes.flatMap((node) => keys.map((key) => accepts(node.mcpUrl, key.secret)));
          return (await Promise.all(checks)).every(Boolean);
        },
        timeoutMs,
      );
    },
    defer,
    dispose,
    [Symbol.asyncDispose]: dispose,
  };

  await Promise.all((options.nodes ?? []).map((spec) => env.startNode(spec)));
  for (const id of options.configStreams ?? []) await env.connectConfigStream(id);
  for (const input of options.upstreams ?? []) await env.createUpstream(input);
  for (const input of options.keys ?? []) await env.createKey(input);
  if (nodes.length > 0 && keys.length > 0) await env.keysReachedNodes();
  return env;
}
