/**
 * Two control-plane replicas on one fresh schema, for the tests of what crosses replicas (relays, audit
 * subscriptions): node-a follows replica 1, node-b replica 2, upstream `ev` is server-everything over stdio,
 * and one key allowed `ev__*` is accepted by both nodes. `dispose()` stops everything and drops the schema.
 */
import { createTestSchema, type TestSchema } from './database.ts';
import { eventually } from './eventually.ts';
import { ControlPlaneProcess, DataPlaneProcess, accepts } from './gateway.ts';
import { CREATE_KEY, CREATE_UPSTREAM, graphqlOk } from './graphql.ts';
import { EVERYTHING_SERVER } from './processes.ts';

export interface TwoReplicas {
  readonly schema: TestSchema;
  readonly replica1: ControlPlaneProcess;
  readonly replica2: ControlPlaneProcess;
  readonly nodeA: DataPlaneProcess;
  readonly nodeB: DataPlaneProcess;
  readonly key: { readonly id: string; readonly secret: string };
  dispose(): Promise<void>;
}

export async function startTwoReplicas(): Promise<TwoReplicas> {
  const schema = await createTestSchema();
  const started: { stop(): Promise<unknown> }[] = [];
  const dispose = async () => {
    await Promise.allSettled(started.filter((s) => s instanceof DataPlaneProcess).map((s) => s.stop()));
    await Promise.allSettled(started.filter((s) => s instanceof ControlPlaneProcess).map((s) => s.stop()));
    await schema.drop();
  };
  try {
    const replica1 = await ControlPlaneProcess.start(schema.url, schema.name);
    started.push(replica1);
    const replica2 = await ControlPlaneProcess.start(schema.url, schema.name);
    started.push(replica2);
    const [nodeA, nodeB] = await Promise.all([
      DataPlaneProcess.start(replica1, 'node-a'),
      DataPlaneProcess.start(replica2, 'node-b'),
    ]);
    started.push(nodeA, nodeB);
    await graphqlOk(replica1.graphqlUrl, replica1.adminToken, CREATE_UPSTREAM, {
      input: { name: 'ev', transport: 'STDIO', command: process.execPath, args: [EVERYTHING_SERVER, 'stdio'] },
    });
    const created = await graphqlOk<{ createVirtualKey: { secret: string; key: { id: string } } }>(
      replica1.graphqlUrl,
      replica1.adminToken,
      CREATE_KEY,
      { input: { name: 'agent', allowedTools: ['ev__*'] } },
    );
    const key = { id: created.createVirtualKey.key.id, secret: created.createVirtualKey.secret };
    await eventually(
      'the key reached both nodes',
      async () => (await accepts(nodeA.mcpUrl, key.secret)) && (await accepts(nodeB.mcpUrl, key.secret)),
      15_000,
    );
    return { schema, replica1, replica2, nodeA, nodeB, key, dispose };
  } catch (error) {
    await dispose();
    throw error;
  }
}
