/**
 * Content logging set from the control plane (issue 14): an upstream's `auditContent`, a key's
 * `auditContent` (INHERIT | ON | OFF) and the gateway default `auditSettings.contentDefault` reach
 * a real node through the snapshot, and SDK agents' calls are recorded with or without their
 * arguments and results accordingly; the node's own flags switch content off on top of that. The
 * declarative document carries all three; bad values are refused naming the field.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { connectModernAgent } from '../support/agents.ts';
import { eventually } from '../support/eventually.ts';
import { NODES } from '../support/graphql.ts';
import { type CreatedKey, everythingUpstream, startTestEnv, type TestEnv } from '../support/test-env.ts';

interface Row {
  key_id: string;
  upstream: string;
  arguments: string | null;
  result: string | null;
}

describe('audit content set from the control plane', () => {
  let env: TestEnv;
  let mcpUrl: string;
  let loud: CreatedKey;
  let quiet: CreatedKey;
  let forced: CreatedKey;
  let flagged: CreatedKey;

  before(async () => {
    env = await startTestEnv({
      schemaPrefix: 'audit_content',
      upstreams: [everythingUpstream('ev'), everythingUpstream('hush', { auditContent: false })],
      keys: [
        { name: 'loud' },
        { name: 'quiet', auditContent: 'OFF' },
        { name: 'forced', auditContent: 'ON' },
        { name: 'flagged', auditContent: 'ON' },
      ],
    });
    [loud, quiet, forced, flagged] = env.keys as [CreatedKey, CreatedKey, CreatedKey, CreatedKey];
    const node = await env.startNode({ id: 'content-node', args: ['--audit-content-off-keys', flagged.id] });
    mcpUrl = node.mcpUrl;
    await env.keysReachedNodes();
  });
  after(() => env?.dispose());

  /** Resolves once every node runs the newest configuration revision. */
  async function nodesCaughtUp(): Promise<void> {
    await eventually('the node runs the newest revision', async () => {
      const { nodes, config } = await env.gqlOk<{
        nodes: Array<{ appliedVersion: string | null }>;
        config: { version: string };
      }>(NODES);
      return nodes.length > 0 && nodes.every((n) => n.appliedVersion === config.version);
    });
  }

  /** One echo call by `key` to `upstream`, and its stored record (tagged with a fresh parent id). */
  async function echo(key: CreatedKey, upstream: string): Promise<Row> {
    const parent = randomUUID();
    const message = `content-${parent}`;
    const client = await connectModernAgent(mcpUrl, key.secret);
    try {
      const result = await client.callTool({
        name: `${upstream}__echo`,
        arguments: { message },
        _meta: { 'io.portcullis/parent-request': parent },
      });
      assert.equal(result.isError, undefined);
    } finally {
      await client.close();
    }
    const [row] = await eventually(`the call by ${key.name} to ${upstream} is stored`, async () => {
      const found = await env.schema.query<Row>(
        `SELECT key_id, upstream, arguments, result FROM audit_events WHERE parent_id = $1 AND kind = 'tool_call'`,
        [parent],
      );
      return found.length === 1 ? found : undefined;
    });
    assert.equal(row!.key_id, key.id);
    assert.equal(row!.upstream, upstream);
    if (row!.arguments !== null) assert.deepEqual(JSON.parse(row!.arguments), { message });
    if (row!.result !== null) assert.match(row!.result, new RegExp(`Echo: ${message}`));
    return row!;
  }

  const recorded = (row: Row) => row.arguments !== null && row.result !== null;
  const withheld = (row: Row) => row.arguments === null && row.result === null;

  it('shows the settings in GraphQL', async () => {
    const data = await env.gqlOk<{
      upstreams: Array<{ name: string; auditContent: boolean }>;
      virtualKeys: Array<{ name: string; auditContent: string }>;
      auditSettings: { contentDefault: boolean };
    }>('{ upstreams { name auditContent } virtualKeys { name auditContent } auditSettings { contentDefault } }');
    assert.deepEqual(
      data.upstreams.map((u) => [u.name, u.auditContent]),
      [
        ['ev', true],
        ['hush', false],
      ],
    );
    assert.deepEqual(
      data.virtualKeys.map((k) => [k.name, k.auditContent]),
      [
        ['loud', 'INHERIT'],
        ['quiet', 'OFF'],
        ['forced', 'ON'],
        ['flagged', 'ON'],
      ],
    );
    assert.deepEqual(data.auditSettings, { contentDefault: true });
  });

  it('records content unless the upstream, the key or a node flag switches it off', async () => {
    assert.ok(recorded(await echo(loud, 'ev')), 'INHERIT key, upstream on, default on: recorded');
    assert.ok(withheld(await echo(loud, 'hush')), 'upstream auditContent false: withheld');
    assert.ok(withheld(await echo(quiet, 'ev')), 'key OFF: withheld');
    assert.ok(recorded(await echo(forced, 'ev')), 'key ON: recorded');
    assert.ok(withheld(await echo(forced, 'hush')), 'an upstream switched off wins over a key ON');
    assert.ok(withheld(await echo(flagged, 'ev')), "the node's --audit-content-off-keys wins over a key ON");
  });

  it('follows changes: the gateway default, an upstream and a key switched at run time', async () => {
    await env.gqlOk('mutation { setAuditSettings(input: { contentDefault: false }) { contentDefault } }');
    await nodesCaughtUp();
    assert.ok(withheld(await echo(loud, 'ev')), 'INHERIT follows the default, now off');
    assert.ok(recorded(await echo(forced, 'ev')), 'key ON records whatever the default');

    const hush = env.upstreams.find((u) => u.name === 'hush')!;
    await env.gqlOk('mutation ($id: ID!) { updateUpstream(id: $id, input: { auditContent: true }) { id } }', {
      id: hush.id,
    });
    await env.gqlOk('mutation ($id: ID!) { updateVirtualKey(id: $id, input: { auditContent: ON }) { auditContent } }', {
      id: quiet.id,
    });
    await nodesCaughtUp();
    assert.ok(recorded(await echo(forced, 'hush')), 'the upstream switched back on');
    assert.ok(recorded(await echo(quiet, 'ev')), 'the key switched to ON');

    await env.gqlOk('mutation { setAuditSettings(input: { contentDefault: true }) { contentDefault } }');
    await nodesCaughtUp();
    assert.ok(recorded(await echo(loud, 'ev')), 'the default back on');
  });

  it('carries the settings in the declarative document: plan, apply, export', async () => {
    const document = {
      version: 1,
      upstreams: [{ ...everythingUpstream('decl'), auditContent: false }],
      keys: [{ name: 'decl-key', auditContent: 'OFF' }],
      auditSettings: { contentDefault: false },
    };
    type Applied = {
      applyConfig: { changes: Array<{ action: string; kind: string; name: string; fields: Array<{ field: string }> }> };
    };
    const apply =
      'mutation ($d: JSON!, $dry: Boolean) { applyConfig(document: $d, dryRun: $dry) { changes { ' +
      'action kind name fields { field } } } }';
    const plan = await env.gqlOk<Applied>(apply, { d: document, dry: true });
    const fieldsOf = (result: Applied, name: string) =>
      result.applyConfig.changes.find((c) => c.name === name)?.fields.map((f) => f.field) ?? [];
    assert.ok(fieldsOf(plan, 'decl').includes('auditContent'), 'the plan shows the upstream setting');
    assert.ok(fieldsOf(plan, 'decl-key').includes('auditContent'), 'the plan shows the key setting');
    assert.deepEqual(fieldsOf(plan, 'auditSettings'), ['contentDefault']);

    await env.gqlOk<Applied>(apply, { d: document, dry: false });
    const exported = await env.gqlOk<{ exportConfig: { document: Record<string, unknown> } }>(
      '{ exportConfig { document } }',
    );
    const doc = exported.exportConfig.document as {
      upstreams: Array<{ name: string; auditContent?: boolean }>;
      keys: Array<{ name: string; auditContent?: string }>;
      auditSettings?: unknown;
    };
    assert.equal(doc.upstreams.find((u) => u.name === 'decl')?.auditContent, false);
    assert.equal(doc.keys.find((k) => k.name === 'decl-key')?.auditContent, 'OFF');
    assert.equal(doc.upstreams.find((u) => u.name === 'ev')?.auditContent, undefined, 'defaults are left out');
    assert.deepEqual(doc.auditSettings, { contentDefault: false });
    const again = await env.gqlOk<Applied>(apply, { d: document, dry: true });
    assert.deepEqual(again.applyConfig.changes, [], 'applying the same document again changes nothing');

    await env.gqlOk<Applied>(apply, { d: { version: 1, auditSettings: { contentDefault: true } }, dry: false });
  });

  it('refuses bad values naming the field and the fix', async () => {
    const bad = async (document: unknown) => {
      const response = await env.gql('mutation ($d: JSON!) { applyConfig(document: $d, dryRun: true) { revision } }', {
        d: document,
      });
      const message = response.errors?.[0]?.message ?? '';
      assert.equal(response.errors?.[0]?.extensions?.['code'], 'BAD_USER_INPUT', message);
      return message;
    };
    assert.match(
      await bad({ version: 1, keys: [{ name: 'k', auditContent: 'SOMETIMES' }] }),
      /keys\[0\]\.auditContent: must be one of INHERIT \(auditSettings\.contentDefault\), ON, OFF/,
    );
    assert.match(
      await bad({ version: 1, upstreams: [{ ...everythingUpstream('u'), auditContent: 'no' }] }),
      /upstreams\[0\]\.auditContent: must be true or false/,
    );
    assert.match(
      await bad({ version: 1, auditSettings: { contentDefault: 'off' } }),
      /auditSettings\.contentDefault: must be true or false/,
    );
  });
});
