/**
 * `portcullis plan | apply | export` (issue 18) as a platform team runs them from CI: the real CLI
 * against a control plane on PostgreSQL. Round trips, prune against hand-made objects, a change
 * between plan and apply, invalid documents named by file:line and field, and credentials that
 * never come back out.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { CREATE_UPSTREAM } from '../support/graphql.ts';
import { REPO_ROOT, cliArgs } from '../support/processes.ts';
import { startTestEnv, type TestEnv } from '../support/test-env.ts';

const run = promisify(execFile);
const BEARER = 'bearer-Zq81-never-printed';
const ENV_SECRET = 'env-secret-Wk27-never-printed';
const HEADER_SECRET = 'header-secret-Pp55-never-printed';

describe('declarative configuration: plan, apply, export', () => {
  let env: TestEnv;
  let dir: string;
  /** Every line the CLI printed, to check no credential ever appears. */
  const printed: string[] = [];

  async function cli(...args: string[]): Promise<{ code: number; out: string }> {
    const childEnv = {
      ...process.env,
      PORTCULLIS_URL: env.graphqlUrl,
      PORTCULLIS_ADMIN_TOKEN: env.adminToken,
      DECL_BEARER: BEARER,
      DECL_ENV_SECRET: ENV_SECRET,
    };
    try {
      const { stdout, stderr } = await run(process.execPath, cliArgs(args), {
        env: { ...childEnv, TSX_TSCONFIG_PATH: resolve(REPO_ROOT, 'tsconfig.json') },
        cwd: dir,
      });
      printed.push(stdout, stderr);
      return { code: 0, out: stdout + stderr };
    } catch (error) {
      const failed = error as { code?: number; stdout?: string; stderr?: string };
      if (typeof failed.code !== 'number') throw error;
      const out = `${failed.stdout ?? ''}${failed.stderr ?? ''}`;
      printed.push(out);
      return { code: failed.code, out };
    }
  }

  const gateway = (extra = '') => `version: 1
customers:
  - name: acme
    rateLimits: { requestsPerMinute: 600 }
teams:
  - name: platform
    customer: acme
    allowedTools: ["ev__*"]
    budget: { period: MONTH, amountMicros: 5000000 }
mcpAuthorization:
  resource: https://gw.example.com/mcp
  identityProviders:
    - { issuer: https://idp.example.com, teamClaim: groups, teams: [{ claimValue: eng, team: platform }] }
upstreams:
  - name: ev
    transport: STDIO
    command: ${JSON.stringify(process.execPath)}
    args: ["server.js", "stdio"]
    env:
      - { name: API_KEY, value: "\${env:DECL_ENV_SECRET}" }
    prices: { default: 100, tools: { echo: 5 } }
    policies:
      - { tool: echo, policy: APPROVE, argument: message, pattern: "^rm", approvalVia: CLIENT }
  - name: web
    transport: STREAMABLE_HTTP
    url: https://mcp.example.com/mcp
    bearerToken: "\${env:DECL_BEARER}"
    headers:
      - { name: X-Tenant, value: "${HEADER_SECRET}" }
    callTimeoutMs: 30000
keys:
  - name: ci-bot
    team: platform
    rateLimits: { toolCallsPerMinute: 60 }
${extra}`;

  const file = (name: string) => join(dir, name);
  const upstreamNames = async () =>
    (await env.gqlOk<{ upstreams: Array<{ name: string }> }>(`{ upstreams { name } }`)).upstreams.map((u) => u.name);

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'decl-'));
    env = await startTestEnv({ schemaPrefix: 'decl', controlPlane: 'in-process' });
    await writeFile(file('gateway.yaml'), gateway());
  });

  after(async () => {
    await env?.dispose();
    await rm(dir, { recursive: true, force: true });
  });

  it('plans, applies in one revision, then finds nothing to do; export applies back to no change', async () => {
    const plan = await cli('plan', '-f', 'gateway.yaml');
    assert.equal(plan.code, 0, plan.out);
    assert.match(plan.out, /\+ upstream ev\n/);
    assert.match(plan.out, /\+ key ci-bot\n/);
    assert.match(plan.out, /\+ settings mcpAuthorization\n\s+resource: "https:\/\/gw\.example\.com\/mcp"/);
    assert.match(plan.out, /bearerToken: \(set\)/);
    assert.match(plan.out, /env: \(set\)/);
    assert.equal(await upstreamNames().then((n) => n.length), 0, 'a plan changes nothing');
    const revision = /--expected-revision (\d+)/.exec(plan.out)?.[1];
    assert.ok(revision, plan.out);

    const applied = await cli(
      'apply',
      '-f',
      'gateway.yaml',
      '--expected-revision',
      revision,
      '--secrets-out',
      's.json',
    );
    assert.equal(applied.code, 0, applied.out);
    assert.match(applied.out, new RegExp(`Applied: revision ${revision} -> ${Number(revision) + 1}\\.`));
    const secrets = JSON.parse(await readFile(file('s.json'), 'utf8')) as {
      keys: Array<{ name: string; secret: string }>;
    };
    assert.equal(secrets.keys[0]?.name, 'ci-bot');
    assert.match(secrets.keys[0]!.secret, /^pcs_/);
    assert.equal((await stat(file('s.json'))).mode & 0o777, 0o600);
    assert.ok(!applied.out.includes('pcs_'), 'the key secret went to the file only');
    assert.deepEqual(await upstreamNames(), ['ev', 'web']);
    const policies = await env.gqlOk<{ upstreams: Array<{ name: string; policies: Array<{ approvalVia: string }> }> }>(
      `{ upstreams { name policies { approvalVia } } }`,
    );
    assert.equal(policies.upstreams.find((u) => u.name === 'ev')?.policies[0]?.approvalVia, 'CLIENT');

    for (const again of ['plan', 'apply']) {
      const second = await cli(again, '-f', 'gateway.yaml');
      assert.equal(second.code, 0, second.out);
      assert.match(second.out, new RegExp(`^No changes: .*\\(revision ${Number(revision) + 1}\\)`), second.out);
    }

    const exported = await cli('export', '--output', 'exported.yaml');
    assert.equal(exported.code, 0, exported.out);
    const text = await readFile(file('exported.yaml'), 'utf8');
    assert.match(text, /keep: true/);
    assert.match(text, /claimValue: eng\n\s+team: platform/, 'MCP authorization maps claims to teams by name');
    for (const secret of [BEARER, ENV_SECRET, HEADER_SECRET]) assert.ok(!text.includes(secret));
    const back = await cli('apply', '-f', 'exported.yaml');
    assert.match(back.out, /^No changes/, `${back.out}\n${text}`);

    // A change shows as a field diff; a changed credential only as "(changed)".
    await writeFile(
      file('changed.yaml'),
      gateway()
        .replace('requestsPerMinute: 600', 'requestsPerMinute: 900')
        .replace(HEADER_SECRET, `${HEADER_SECRET}-2`)
        .replace('toolCallsPerMinute: 60 }', 'toolCallsPerMinute: 60 }\n    codeMode: ON'),
    );
    const diff = await cli('plan', '-f', 'changed.yaml');
    assert.match(
      diff.out,
      /~ customer acme\n\s+rateLimits: \{"requestsPerMinute":600\} -> \{"requestsPerMinute":900\}/,
    );
    assert.match(diff.out, /~ upstream web\n\s+headers: \(changed\)/);
    assert.match(diff.out, /~ key ci-bot\n\s+codeMode: "INHERIT" -> "ON"/, "a live key's code mode changes in place");
  });

  it('names the file, line and field of an invalid document, and applies nothing of it', async () => {
    await writeFile(file('typo.yaml'), 'version: 1\nupstreams:\n  - name: x\n    transport: STDIO\n    comand: node\n');
    const typo = await cli('plan', '-f', 'typo.yaml');
    assert.equal(typo.code, 2);
    assert.match(typo.out, /typo\.yaml:5 upstreams\[0\]\.comand: is not a field here/);

    // Checked by the service createUpstream uses, reported at the document's line; the customer created before
    // it in the same apply is not kept.
    const badUrl = gateway()
      .replace('customers:\n', 'customers:\n  - name: beta\n')
      .replace('keys:\n', '  - name: broken\n    transport: SSE\n    url: ftp://files.example.com\nkeys:\n');
    await writeFile(file('bad-url.yaml'), badUrl);
    const urlLine = badUrl.split('\n').findIndex((line) => line.includes('ftp://')) + 1;
    const bad = await cli('apply', '-f', 'bad-url.yaml');
    assert.equal(bad.code, 2, bad.out);
    assert.match(bad.out, new RegExp(`bad-url\\.yaml:${urlLine} upstreams\\[2\\]\\.url: must be an absolute http`));
    const customers = await env.gqlOk<{ customers: Array<{ name: string }> }>(`{ customers { name } }`);
    assert.deepEqual(
      customers.customers.map((c) => c.name),
      ['acme'],
      'nothing of a refused apply stays',
    );

    await writeFile(file('unset.yaml'), `version: 1\ncustomers:\n  - name: "\${env:DECL_NOT_SET}"\n`);
    // MCP authorization: a team by a name nothing has, and the service's own checks, named in the document.
    const DRY = `mutation ($d: JSON!) { applyConfig(document: $d, dryRun: true) { revision } }`;
    const provider = { issuer: 'https://idp.example.com', teams: [{ claimValue: '*', team: 'nope' }] };
    for (const [fields, message] of [
      [{}, /^mcpAuthorization\.identityProviders\[0\]\.teams\[0\]\.team: no team is named "nope"/],
      [
        { issuer: 'ftp://idp', teams: [{ claimValue: '*', team: 'platform' }] },
        /^mcpAuthorization\.identityProviders\[0\]\.issuer: is not an http\(s\) URL/,
      ],
    ] as const) {
      const mcpAuthorization = {
        resource: 'https://gw.example.com/mcp',
        identityProviders: [{ ...provider, ...fields }],
      };
      const refused = await env.gql(DRY, { d: { version: 1, mcpAuthorization } });
      assert.equal(refused.errors?.[0]?.extensions?.['code'], 'BAD_USER_INPUT', JSON.stringify(refused.errors));
      assert.match(refused.errors?.[0]?.message ?? '', message);
    }

    // New keys are made in batches of 1000; a bad one in the second is still named by its own entry.
    const keys = [
      ...Array.from({ length: 1001 }, (_, i) => ({ name: `bot-${i}` })),
      { name: 'bad', deniedTools: ['echo'] },
    ];
    const badKey = await env.gql(DRY, { d: { version: 1, keys } });
    assert.equal(badKey.errors?.[0]?.extensions?.['code'], 'BAD_USER_INPUT', JSON.stringify(badKey.errors));
    assert.match(badKey.errors?.[0]?.message ?? '', /^keys\[1001\]\.deniedTools\[0\]: .*no "<upstream>__" prefix/);

    const unset = await cli('plan', '-f', 'unset.yaml');
    assert.match(unset.out, /unset\.yaml:3 customers\[0\]\.name: refers to \$\{env:DECL_NOT_SET\}, which is not set/);
  });

  it('refuses an apply when the configuration changed after the plan', async () => {
    await writeFile(file('more.yaml'), gateway('  - name: deploy-bot\n'));
    const plan = await cli('plan', '-f', 'more.yaml');
    const revision = /--expected-revision (\d+)/.exec(plan.out)?.[1];
    assert.ok(revision, plan.out);
    await env.gqlOk(`mutation { createTeam(input: { name: "made-meanwhile" }) { id } }`);
    const refused = await cli('apply', '-f', 'more.yaml', '--expected-revision', revision);
    assert.equal(refused.code, 2, refused.out);
    assert.match(refused.out, /changed since the plan .*\(REVISION_MISMATCH\)/);
    const keys = await env.gqlOk<{ virtualKeys: Array<{ name: string }> }>(`{ virtualKeys { name } }`);
    assert.ok(!keys.virtualKeys.some((k) => k.name === 'deploy-bot'));
  });

  it('prunes only managed objects (teams, customers once unused); a hand-made one changes once adopted', async () => {
    await env.gqlOk(CREATE_UPSTREAM, { input: { name: 'hand', transport: 'SSE', url: 'https://hand.example.com' } });
    // ci-bot (managed) is gone from the file: revoked; "hand" and the team made by hand stay.
    const withoutKey = gateway().replace(/keys:[\s\S]*$/, '');
    await writeFile(file('pruned.yaml'), withoutKey);
    const pruned = await cli('apply', '-f', 'pruned.yaml', '--prune');
    assert.equal(pruned.code, 0, pruned.out);
    assert.match(pruned.out, /- key ci-bot\n/);
    assert.ok(!pruned.out.includes('hand') && !pruned.out.includes('made-meanwhile'), pruned.out);
    assert.deepEqual(await upstreamNames(), ['ev', 'hand', 'web']);

    // Export lists what was made by hand under adopt (the team made between plan and apply, the upstream).
    const exported = await cli('export', '--format', 'json');
    const document = JSON.parse(exported.out) as { adopt?: Record<string, string[]> };
    assert.deepEqual(document.adopt, { teams: ['made-meanwhile'], upstreams: ['hand'] });

    const hand = '  - { name: hand, transport: SSE, url: https://hand.example.com/v2 }\n';
    const naming = withoutKey.replace('upstreams:\n', `upstreams:\n${hand}`);
    await writeFile(file('naming.yaml'), naming);
    const refused = await cli('apply', '-f', 'naming.yaml');
    assert.match(
      refused.out,
      /naming\.yaml:\d+ upstreams\[0\]\.name: an upstream named "hand" exists and was not made/,
    );
    // Adopting it, and creating a key without --secrets-out: its secret is printed, this once.
    await writeFile(file('adopting.yaml'), `${naming}keys:\n  - name: fresh-bot\nadopt:\n  upstreams: [hand]\n`);
    const adopted = await cli('apply', '-f', 'adopting.yaml');
    assert.match(adopted.out, /shown this once[^\n]*\n\s+fresh-bot: pcs_\S{43}\n/);
    assert.match(
      adopted.out,
      /> upstream hand \(adopt[^\n]*\n\s+url: "https:\/\/hand\.example\.com" -> "https:\/\/hand\.example\.com\/v2"/,
    );

    // Adopted, it is managed: a prune without it deletes it.
    const gone = await cli('apply', '-f', 'pruned.yaml', '--prune');
    assert.match(gone.out, /- key fresh-bot\n[\s\S]*- upstream hand\n/);
    assert.deepEqual(await upstreamNames(), ['ev', 'web']);

    // Teams and customers too, once nothing else uses them: a key made by hand in the team refuses it all.
    const teams = await env.gqlOk<{ teams: Array<{ id: string; name: string }> }>(`{ teams { id name } }`);
    const teamId = teams.teams.find((team) => team.name === 'platform')!.id;
    const handKey = await env.gqlOk<{ createVirtualKey: { key: { id: string } } }>(
      `mutation ($t: ID!) { createVirtualKey(input: { name: "hand-key", teamId: $t }) { key { id } } }`,
      { t: teamId },
    );
    const APPLY = `mutation ($d: JSON!) { applyConfig(document: $d, prune: true) { changes { action kind name } } }`;
    const refusedPrune = await env.gql(APPLY, { d: { version: 1 } });
    assert.equal(refusedPrune.errors?.[0]?.extensions?.['code'], 'CONFLICT', JSON.stringify(refusedPrune.errors));
    assert.match(refusedPrune.errors?.[0]?.message ?? '', /^teams: team "platform" is still used by 1 live key/);
    assert.deepEqual(await upstreamNames(), ['ev', 'web'], 'nothing of a refused prune stays');
    await env.gqlOk(`mutation ($id: ID!) { revokeVirtualKey(id: $id) { id } }`, {
      id: handKey.createVirtualKey.key.id,
    });
    const emptied = await env.gqlOk<{
      applyConfig: { changes: Array<{ action: string; kind: string; name: string }> };
    }>(APPLY, { d: { version: 1, mcpAuthorization: null } }); // null clears the settings (omitted: left as is)
    assert.deepEqual(
      emptied.applyConfig.changes.map((c) => `${c.action} ${c.kind} ${c.name}`),
      [
        'DELETE settings mcpAuthorization',
        'DELETE upstream ev',
        'DELETE upstream web',
        'DELETE team platform',
        'DELETE customer acme',
      ],
    );
    const left = await env.gqlOk<{ teams: Array<{ name: string }>; customers: Array<{ name: string }> }>(
      `{ teams { name } customers { name } }`,
    );
    assert.deepEqual(left, { teams: [{ name: 'made-meanwhile' }], customers: [] }, 'what was made by hand stays');
  });

  it('never printed a credential', () => {
    const all = printed.join('\n');
    for (const secret of [BEARER, ENV_SECRET, HEADER_SECRET])
      assert.ok(!all.includes(secret), 'a credential was printed');
  });
});
