/**
 * Audit delivery loses nothing: SDK agents keep calling while the control plane is killed and
 * restarted, and while a node is killed with SIGKILL and restarted on the same spool directory;
 * afterwards every call an agent saw answered has exactly one row in PostgreSQL.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connectLegacyAgent, connectModernAgent } from '../support/agents.ts';
import { DataPlaneProcess } from '../support/gateway.ts';
import { everythingUpstream, startTestEnv, type TestEnv } from '../support/test-env.ts';
import { eventually } from '../support/eventually.ts';

type Call = (message: string) => Promise<unknown>;

/** Agents calling `ev__echo` in a loop, each message unique; `answered` holds those that got a result. */
class Traffic {
  readonly answered: string[] = [];
  failed = 0;
  private running = true;
  private readonly loops: Promise<void>[];

  constructor(callers: readonly Call[], tag: string) {
    this.loops = callers.map(async (call, agent) => {
      for (let n = 0; this.running; n++) {
        const message = `${tag}-${agent}-${n}`;
        try {
          await call(message);
          this.answered.push(message);
        } catch {
          this.failed++;
          if (this.failed > 10_000) return;
        }
      }
    });
  }

  /** Resolves once `count` more calls were answered. */
  async more(count: number, what: string): Promise<void> {
    const target = this.answered.length + count;
    await eventually(what, () => this.answered.length >= target, 30_000);
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
  }
}

async function callers(mcpUrl: string, secret: string): Promise<{ calls: Call[]; close: () => Promise<void> }> {
  const legacy = await Promise.all([0, 1, 2].map(() => connectLegacyAgent(mcpUrl, secret)));
  const modern = await connectModernAgent(mcpUrl, secret);
  const calls: Call[] = [
    ...legacy.map(
      ({ client }) =>
        (message: string) =>
          client.callTool({ name: 'ev__echo', arguments: { message } }),
    ),
    (message: string) => modern.callTool({ name: 'ev__echo', arguments: { message } }),
  ];
  return {
    calls,
    close: async () => {
      await Promise.all([...legacy.map(({ client }) => client.close()), modern.close()]);
    },
  };
}

describe('audit delivery', () => {
  let env: TestEnv;
  let spoolDir: string;

  before(async () => {
    spoolDir = await mkdtemp(join(tmpdir(), 'audit-delivery-'));
    env = await startTestEnv({
      schemaPrefix: 'audit_delivery',
      upstreams: [everythingUpstream('ev')],
      keys: [{ name: 'k' }],
    });
    await env.startNode({ id: 'spool-node', args: ['--audit-spool-dir', spoolDir] });
    await env.keysReachedNodes();
  });
  after(async () => {
    await env?.dispose();
    await rm(spoolDir, { recursive: true, force: true });
  });

  /** How many rows each message of `tag` has. */
  async function rowsPerMessage(tag: string): Promise<Map<string, number>> {
    const rows = await env.schema.query<{ message: string; count: string }>(
      `SELECT (arguments::jsonb)->>'message' AS message, count(*) AS count FROM audit_events
        WHERE kind = 'tool_call' AND arguments LIKE $1 GROUP BY 1`,
      [`%"${tag}-%`],
    );
    return new Map(rows.map((r) => [r.message, Number(r.count)]));
  }

  async function expectExactlyOnce(tag: string, answered: readonly string[]): Promise<void> {
    let counts = new Map<string, number>();
    await eventually(
      `all ${answered.length} answered calls of ${tag} stored`,
      async () => {
        counts = await rowsPerMessage(tag);
        return answered.every((m) => counts.has(m));
      },
      60_000,
    );
    for (const message of answered) assert.equal(counts.get(message), 1, `${message} has exactly one row`);
  }

  it('keeps every answered call’s record through a control-plane outage during traffic', async () => {
    const agents = await callers(env.node('spool-node').mcpUrl, env.key.secret);
    const traffic = new Traffic(agents.calls, 'cp-outage');
    try {
      await traffic.more(50, 'calls before the outage');
      await env.controlPlane!.stop();
      await traffic.more(200, 'calls answered while the control plane is down');
      await env.controlPlane!.restart();
      await traffic.more(50, 'calls after the control plane is back');
    } finally {
      await traffic.stop();
      await agents.close();
    }
    assert.ok(traffic.answered.length >= 300);
    await expectExactlyOnce('cp-outage', traffic.answered);
    // Both streams' control plane said it takes rows: the node shipped them as they are, converting none.
    assert.doesNotMatch(env.node('spool-node').process.log, /takes audit records as JSON objects only/);
  });

  it('keeps every answered call’s record when the node is killed with SIGKILL and restarted on its spool', async () => {
    let node = env.node('spool-node');
    const agents = await callers(node.mcpUrl, env.key.secret);
    const traffic = new Traffic(agents.calls, 'sigkill');
    try {
      await traffic.more(50, 'calls before the outage');
      // Nothing is acknowledged while the control plane is away: the records live only in the spool.
      await env.controlPlane!.stop();
      await traffic.more(200, 'calls spooled while the control plane is down');
      await node.process.kill();
    } finally {
      await traffic.stop();
      await agents.close().catch(() => undefined);
    }
    await env.controlPlane!.restart();
    node = await DataPlaneProcess.start(env.controlPlane!, 'spool-node', ['--audit-spool-dir', spoolDir]);
    env.defer(() => node.stop());
    assert.ok(traffic.answered.length >= 250);
    await expectExactlyOnce('sigkill', traffic.answered);
  });
});
