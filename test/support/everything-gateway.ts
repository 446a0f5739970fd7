import { createTestSchema, type TestSchema } from './database.ts';
import { ControlPlaneProcess, DataPlaneProcess, accepts, eventually } from './gateway.ts';
import { CREATE_KEY, CREATE_UPSTREAM, graphqlOk } from './graphql.ts';
import { EVERYTHING_SERVER } from './processes.ts';

/** A whole gateway as a user runs it, with server-everything behind it and one key (see startEverythingGateway). */
export interface EverythingGateway {
  readonly schema: TestSchema;
  readonly controlPlane: ControlPlaneProcess;
  readonly nodes: readonly DataPlaneProcess[];
  readonly key: { readonly id: string; readonly secret: string };
  /** Stops the nodes and the control plane, and drops the schema. */
  stop(): Promise<void>;
}

/**
 * A control plane on a fresh schema of the machine's PostgreSQL and its nodes (each with its own
 * flags), all real processes; server-everything over stdio registered through GraphQL as `ev`; one
 * key. Resolves once every node accepts the key; whatever started is stopped if a step fails.
 */
export async function startEverythingGateway(options: { nodes: ReadonlyArray<{ id: string; args?: readonly string[] }>; key: { name: string; allowedTools?: readonly string[] } }): Promise<EverythingGateway> {
  const schema = await createTestSchema();
  let controlPlane: ControlPlaneProcess | undefined;
  const nodes: DataPlaneProcess[] = [];
  const stop = async () => {
    await Promise.allSettled(nodes.map((node) => node.stop()));
    await controlPlane?.stop();
    await schema.drop();
  };
  try {
    const plane = (controlPlane = await ControlPlaneProcess.start(schema.url, schema.name));
    nodes.push(...(await Promise.all(options.nodes.map((node) => DataPlaneProcess.start(plane, node.id, node.args ?? [])))));
    await graphqlOk(plane.graphqlUrl, plane.adminToken, CREATE_UPSTREAM, { input: { name: 'ev', transport: 'STDIO', command: process.execPath, args: [EVERYTHING_SERVER, 'stdio'] } });
    const created = await graphqlOk<{ createVirtualKey: { secret: string; key: { id: string } } }>(plane.graphqlUrl, plane.adminToken, CREATE_KEY, { input: options.key });
    const key = { id: created.createVirtualKey.key.id, secret: created.createVirtualKey.secret };
    await eventually('every node accepts the key', async () => (await Promise.all(nodes.map((node) => accepts(node.mcpUrl, key.secret)))).every(Boolean), 15_000);
    return { schema, controlPlane: plane, nodes, key, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}
