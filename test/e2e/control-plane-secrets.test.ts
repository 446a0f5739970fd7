// Not on startTestEnv: it starts control planes in turn on one schema with different secret keys and data dirs.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { deriveKeyId, parseSecretKey } from '../../control-plane/src/secrets/index.ts';
import { UpstreamReport, UpstreamState } from '../../proto/gen/portcullis/v1/config.ts';
import { createTestSchema, type TestSchema } from '../support/database.ts';
import { NODE_TOKEN, SECRET_KEY, TestNode, gql, gqlOk, startOnSchema } from './control-plane-harness.ts';
import { eventually } from '../support/eventually.ts';

const CREATE =
  `mutation ($input: CreateUpstreamInput!) { createUpstream(input: $input) { id name env { name isSet ` +
  `} headers { name isSet } hasBearerToken } }`;
const UPDATE =
  `mutation ($id: ID!, $input: UpdateUpstreamInput!) { updateUpstream(id: $id, input: $input) { id ` +
  `env { name isSet } headers { name isSet } hasBearerToken } }`;

/** Distinct, greppable secret values. */
const secret = (label: string) => `${label}-${randomBytes(12).toString('hex')}`;

/** Every stored upstream row as text (all columns). */
async function upstreamRowsText(schema: TestSchema): Promise<string> {
  const rows = await schema.query<{ row: string }>('SELECT row_to_json(u)::text AS row FROM upstreams u');
  return rows.map((r) => r.row).join('\n');
}

describe('upstream credentials at rest', () => {
  let schema: TestSchema;
  const nodes: TestNode[] = [];
  const connect = (address: string) => {
    const node = new TestNode(address, NODE_TOKEN);
    nodes.push(node);
    return node;
  };

  before(async () => {
    schema = await createTestSchema('secrets');
  });
  after(async () => {
    for (const node of nodes) node.close();
    await schema?.drop();
  });

  it(`stores env, header and bearer values only as AES-256-GCM ciphertext, returns names only, and sends plaintext to \
nodes`, async () => {
    const plane = await startOnSchema(schema);
    try {
      const values = { env: secret('env'), header: secret('hdr'), bearer: secret('bearer') };
      const stdio = (
        await gqlOk(plane, CREATE, {
          input: {
            name: 'sealed-stdio',
            transport: 'STDIO',
            command: 'node',
            env: [
              { name: 'API_TOKEN', value: values.env },
              { name: 'EMPTY', value: '' },
            ],
          },
        })
      ).createUpstream;
      const http = (
        await gqlOk(plane, CREATE, {
          input: {
            name: 'sealed-http',
            transport: 'STREAMABLE_HTTP',
            url: 'https://mcp.example.com/mcp',
            headers: [{ name: 'X-Api-Key', value: values.header }],
            bearerToken: values.bearer,
          },
        })
      ).createUpstream;
      assert.deepEqual(stdio.env, [
        { name: 'API_TOKEN', isSet: true },
        { name: 'EMPTY', isSet: false },
      ]);
      assert.deepEqual(http.headers, [{ name: 'X-Api-Key', isSet: true }]);
      assert.equal(http.hasBearerToken, true);
      assert.equal(stdio.hasBearerToken, false);

      const stored = await upstreamRowsText(schema);
      for (const value of Object.values(values))
        assert.ok(!stored.includes(value), 'no plaintext value in the upstreams table');
      const kid = deriveKeyId(Buffer.from(SECRET_KEY, 'hex'));
      const [row] = await schema.query<{
        env: Array<{ name: string; secret: string }>;
        headers: Array<{ name: string; secret: string }>;
        bearer_token: string;
      }>('SELECT env, headers, bearer_token FROM upstreams WHERE id = $1', [http.id]);
      assert.match(row!.headers[0]!.secret, new RegExp(`^v1\\.${kid}\\.[A-Za-z0-9_-]{16}\\.[A-Za-z0-9_-]+$`));
      assert.match(row!.bearer_token, new RegExp(`^v1\\.${kid}\\.`));

      const listed = await gql(
        plane,
        '{ upstreams { name env { name isSet } headers { name isSet } hasBearerToken } }',
      );
      assert.equal(listed.errors, undefined);
      for (const value of Object.values(values))
        assert.ok(!JSON.stringify(listed).includes(value), 'GraphQL never returns a value');

      const node = connect(plane.grpcAddress);
      node.hello('secrets-node');
      const snapshot = await node.snapshot((s) => s.upstreams.length === 2);
      const stdioConfig = snapshot.upstreams.find((u) => u.id === stdio.id)!;
      const httpConfig = snapshot.upstreams.find((u) => u.id === http.id)!;
      assert.deepEqual(stdioConfig.env, [
        { name: 'API_TOKEN', value: values.env },
        { name: 'EMPTY', value: '' },
      ]);
      assert.deepEqual(httpConfig.headers, [
        { name: 'X-Api-Key', value: values.header },
        { name: 'Authorization', value: `Bearer ${values.bearer}` },
      ]);
      assert.ok(!httpConfig.configHash.includes(values.bearer));
    } finally {
      for (const node of nodes.splice(0)) node.close();
      await plane.close();
      await schema.query('DELETE FROM upstreams');
    }
  });

  it(`keeps decrypting under a previous key after rotation, re-encrypts with rotateSecrets, and refuses to start \
without the key`, async () => {
    const oldKey = randomBytes(32).toString('base64');
    const newKey = `k2026:${randomBytes(32).toString('hex')}`;
    const value = secret('rotate');
    const oldKid = parseSecretKey(oldKey, 'x').kid;
    let upstreamId: string;
    const first = await startOnSchema(schema, { secretKey: oldKey });
    try {
      upstreamId = (
        await gqlOk(first, CREATE, {
          input: {
            name: 'rotating',
            transport: 'SSE',
            url: 'http://127.0.0.1:9/sse',
            headers: [{ name: 'X-Key', value }],
            bearerToken: value,
          },
        })
      ).createUpstream.id;
    } finally {
      await first.close();
    }

    // The old key is retired from signing but still decrypts.
    const second = await startOnSchema(schema, { secretKey: newKey, previousSecretKeys: [oldKey] });
    try {
      assert.equal(second.secretKeyId, 'k2026');
      const node = connect(second.grpcAddress);
      node.hello('rotation-node');
      const snapshot = await node.snapshot((s) => s.upstreams.some((u) => u.id === upstreamId));
      assert.deepEqual(snapshot.upstreams.find((u) => u.id === upstreamId)!.headers, [
        { name: 'X-Key', value },
        { name: 'Authorization', value: `Bearer ${value}` },
      ]);
      // New values are sealed under the new key at once.
      await gqlOk(second, UPDATE, { id: upstreamId, input: { headers: [{ name: 'X-Key', value: `${value}-2` }] } });
      const mixed = await upstreamRowsText(schema);
      assert.ok(
        mixed.includes(`v1.${oldKid}.`) && mixed.includes('v1.k2026.'),
        'the bearer token is still under the old key, the new header under the new one',
      );

      const version = (await gqlOk(second, '{ config { version } }')).config.version;
      const rotated = (await gqlOk(second, 'mutation { rotateSecrets }')).rotateSecrets;
      assert.ok(rotated >= 1, `re-encrypted ${rotated}`);
      assert.equal(
        (await gqlOk(second, 'mutation { rotateSecrets }')).rotateSecrets,
        0,
        'nothing left under an old key',
      );
      assert.equal(
        (await gqlOk(second, '{ config { version } }')).config.version,
        version,
        'rotation changes no value, so no new revision',
      );
      const after = await upstreamRowsText(schema);
      assert.ok(!after.includes(`v1.${oldKid}.`), 'no ciphertext under the old key remains');
    } finally {
      for (const node of nodes.splice(0)) node.close();
      await second.close();
    }

    // The old key is no longer needed.
    const third = await startOnSchema(schema, { secretKey: newKey });
    await third.close();

    // The wrong key: refused at startup, naming the key ids, never a value.
    await assert.rejects(startOnSchema(schema, { secretKey: oldKey }), (error: Error & { code?: string }) => {
      assert.equal(error.code, 'BAD_CONFIG');
      assert.match(
        error.message,
        new RegExp(
          '^secretKey: stored upstream credentials were encrypted under key id "k2026", ' +
            String.raw`which is neither the current secret key \("[0-9a-f]{8}"\)`,
        ),
      );
      assert.match(error.message, /PORTCULLIS_SECRET_KEYS_PREVIOUS/);
      assert.ok(!error.message.includes(value));
      return true;
    });
    await schema.query('DELETE FROM upstreams');
  });

  it(`refuses an altered ciphertext (at startup and in GraphQL) naming the key id and field, never the \
value`, async () => {
    const plane = await startOnSchema(schema);
    const value = secret('tamper');
    let id: string;
    try {
      id = (
        await gqlOk(plane, CREATE, {
          input: { name: 'tampered', transport: 'STDIO', command: 'node', env: [{ name: 'TOKEN', value }] },
        })
      ).createUpstream.id;
      const [row] = await schema.query<{ env: Array<{ name: string; secret: string }> }>(
        'SELECT env FROM upstreams WHERE id = $1',
        [id],
      );
      const parts = row!.env[0]!.secret.split('.');
      const body = Buffer.from(parts[3]!, 'base64url');
      body[0] = body[0]! ^ 0x01;
      parts[3] = body.toString('base64url');
      await schema.query(`UPDATE upstreams SET env = $2 WHERE id = $1`, [
        id,
        JSON.stringify([{ name: 'TOKEN', secret: parts.join('.') }]),
      ]);

      const result = await gql(plane, UPDATE, { id, input: { env: [{ name: 'TOKEN', value: 'x' }] } });
      assert.equal(result.errors?.[0]?.extensions?.['code'], 'SECRET_UNREADABLE');
      assert.match(
        result.errors![0]!.message,
        new RegExp(`upstream ${id} env TOKEN failed authentication under key id "[0-9a-f]{8}"`),
      );
      assert.ok(!JSON.stringify(result).includes(value));
    } finally {
      await plane.close();
    }
    await assert.rejects(startOnSchema(schema), (error: Error & { code?: string }) => {
      assert.equal(error.code, 'SECRET_UNREADABLE');
      assert.match(error.message, /env TOKEN failed authentication/);
      return true;
    });
    await schema.query('DELETE FROM upstreams WHERE id = $1', [id!]);
  });

  it('encrypts plaintext values left by the version before encryption when it starts', async () => {
    const value = secret('legacy');
    const id = '00000000-0000-4000-8000-00000000abcd';
    await schema.query(
      `INSERT INTO upstreams (id, name, transport, url, headers, env) VALUES ($1, 'legacy', 'STREAMABLE_HTTP', ` +
        `'http://127.0.0.1:9/mcp', $2, '[]')`,
      [
        id,
        JSON.stringify([
          { name: 'X-Legacy', value },
          { name: 'X-Empty', value: '' },
        ]),
      ],
    );
    assert.ok((await upstreamRowsText(schema)).includes(value), 'precondition: stored in plaintext');
    const plane = await startOnSchema(schema);
    try {
      assert.ok(!(await upstreamRowsText(schema)).includes(value), 'sealed at startup');
      const node = connect(plane.grpcAddress);
      node.hello('legacy-node');
      const snapshot = await node.snapshot((s) => s.upstreams.some((u) => u.id === id));
      assert.deepEqual(snapshot.upstreams.find((u) => u.id === id)!.headers, [
        { name: 'X-Legacy', value },
        { name: 'X-Empty', value: '' },
      ]);
      const view = (await gqlOk(plane, `{ upstream(id: "${id}") { headers { name isSet } } }`)).upstream;
      assert.deepEqual(view.headers, [
        { name: 'X-Legacy', isSet: true },
        { name: 'X-Empty', isSet: false },
      ]);
    } finally {
      for (const node of nodes.splice(0)) node.close();
      await plane.close();
    }
  });

  it('generates a key into <dataDir>/secret-key (mode 0600) when none is given, and reuses it', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'portcullis-key-'));
    const own = await createTestSchema('secretfile');
    try {
      const plane = await startOnSchema(own, { secretKey: undefined, dataDir });
      const file = join(dataDir, 'secret-key');
      try {
        assert.equal((await stat(file)).mode & 0o777, 0o600);
        const key = parseSecretKey(await readFile(file, 'utf8'), file);
        assert.equal(plane.secretKeyId, key.kid);
        await gqlOk(plane, CREATE, {
          input: { name: 'dev', transport: 'STDIO', command: 'node', env: [{ name: 'A', value: 'b-value-123' }] },
        });
      } finally {
        await plane.close();
      }
      const again = await startOnSchema(own, { secretKey: undefined, dataDir });
      assert.equal(again.secretKeyId, plane.secretKeyId);
      await again.close();
    } finally {
      await own.drop();
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  it('never writes a credential value to the log, at the most verbose level', async () => {
    const own = await createTestSchema('secretlog');
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _encoding, done) {
        lines.push(...String(chunk).split('\n').filter(Boolean));
        done();
      },
    });
    // No redaction configured here: the control plane itself must not hand values to the logger.
    const logger = pino({ level: 'trace' }, sink);
    const values = [
      secret('log-env'),
      secret('log-hdr'),
      secret('log-bearer'),
      secret('log-env2'),
      secret('log-bearer2'),
    ];
    const plane = await startOnSchema(own, { logger });
    try {
      const stdio = (
        await gqlOk(plane, CREATE, {
          input: {
            name: 'logged-stdio',
            transport: 'STDIO',
            command: 'node',
            env: [{ name: 'TOKEN', value: values[0] }],
          },
        })
      ).createUpstream;
      const http = (
        await gqlOk(plane, CREATE, {
          input: {
            name: 'logged-http',
            transport: 'SSE',
            url: 'http://127.0.0.1:9/sse',
            headers: [{ name: 'X-Key', value: values[1] }],
            bearerToken: values[2],
          },
        })
      ).createUpstream;
      const node = connect(plane.grpcAddress);
      node.hello('log-node');
      await node.snapshot((s) => s.upstreams.length === 2);
      await gqlOk(plane, UPDATE, { id: stdio.id, input: { env: [{ name: 'TOKEN', value: values[3] }] } });
      await gqlOk(plane, UPDATE, { id: http.id, input: { bearerToken: values[4] } });
      // Failures carrying secrets in their input: a duplicate name, an invalid field next to a secret.
      await gql(plane, CREATE, {
        input: { name: 'logged-http', transport: 'SSE', url: 'http://127.0.0.1:9/sse', bearerToken: values[2] },
      });
      await gql(plane, CREATE, {
        input: { name: 'bad name!', transport: 'STDIO', command: 'x', env: [{ name: 'T', value: values[0] }] },
      });
      await gql(plane, UPDATE, { id: stdio.id, input: { bearerToken: values[4] } });
      const last = await node.snapshot((s) =>
        s.upstreams.some((u) => u.headers.some((h) => h.value === `Bearer ${values[4]}`)),
      );
      node.send({
        kind: {
          $case: 'upstream',
          value: UpstreamReport.fromPartial({
            upstreamId: http.id,
            configHash: last.upstreams.find((u) => u.id === http.id)!.configHash,
            state: UpstreamState.UPSTREAM_STATE_DOWN,
            error: 'connect ECONNREFUSED',
            hasCatalog: false,
            tools: [],
            serverName: '',
            serverVersion: '',
            protocolVersion: '',
          }),
        },
      });
      await eventually(
        'report stored',
        async () => (await own.query('SELECT * FROM upstream_node_status')).length === 1,
      );
      await gqlOk(plane, 'mutation { rotateSecrets }');
      node.close();
      await eventually('node disconnected logged', () => lines.some((line) => line.includes('node disconnected')));
    } finally {
      await plane.close();
      await own.drop();
    }
    const log = lines.join('\n');
    assert.ok(lines.length >= 5, `the log was captured (${lines.length} lines)`);
    for (const message of ['control plane ready', 'node connected', 'config snapshot built'])
      assert.ok(log.includes(message), `logged "${message}"`);
    for (const value of values)
      assert.ok(
        !log.includes(value),
        `a credential value appears in the log:\n${lines.filter((line) => line.includes(value)).join('\n')}`,
      );
  });
});
