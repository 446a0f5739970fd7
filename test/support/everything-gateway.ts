import type { TestSchema } from './database.ts';
import type { ControlPlaneProcess, DataPlaneProcess } from './gateway.ts';
import { everythingUpstream, startTestEnv } from './test-env.ts';

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
 * Kept for tests not yet moved to `startTestEnv` (test-env.ts), which it wraps: a control plane process on a
 * fresh schema, its nodes, server-everything over stdio as `ev`, one key; resolves once every node accepts it.
 */
export async function startEverythingGateway(options: {
  nodes: ReadonlyArray<{ id: string; args?: readonly string[] }>;
  key: { name: string; allowedTools?: readonly string[] };
}): Promise<EverythingGateway> {
  const env = await startTestEnv({ nodes: options.nodes, upstreams: [everythingUpstream('ev')], keys: [options.key] });
  return { schema: env.schema, controlPlane: env.controlPlane!, nodes: env.nodes, key: env.key, stop: env.dispose };
}
