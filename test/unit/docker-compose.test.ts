import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { z } from 'zod';
import { COMMAND_NAMES, loadCommand } from '../../cli/src/commands/index.ts';
import { readOptions } from '../../cli/src/options.ts';

// No Docker engine runs here, so the compose file and the Dockerfile are kept honest by checking them against
// the CLI.
const Compose = z.object({
  services: z.record(
    z.string(),
    z
      .object({
        command: z.array(z.string()).optional(),
        environment: z.record(z.string(), z.string()).optional(),
        build: z.string().optional(),
        volumes: z.array(z.string()).optional(),
      })
      .loose(),
  ),
});

const compose = Compose.parse(parse(readFileSync('docker-compose.yml', 'utf8')));
const portcullisServices = Object.entries(compose.services).filter(([, service]) => service.build === '.');

test('docker-compose.yml runs only commands the CLI has', () => {
  assert.ok(portcullisServices.length >= 2, 'the compose file runs the control plane and data-plane nodes');
  for (const [name, service] of portcullisServices) {
    const command = service.command?.[0];
    assert.ok(
      command && COMMAND_NAMES.includes(command),
      `service ${name} runs "${command}", which is not a portcullis command`,
    );
  }
});

test('docker-compose.yml sets only environment variables its command reads', async () => {
  for (const [name, service] of portcullisServices) {
    const command = await loadCommand(service.command?.[0] ?? '');
    assert.ok(command);
    const known = new Set(Object.values(command.options).flatMap((spec) => (spec.env ? [spec.env] : [])));
    for (const variable of Object.keys(service.environment ?? {})) {
      assert.ok(
        known.has(variable),
        `service ${name} sets ${variable}, which "portcullis ${service.command?.[0]}" does not read`,
      );
    }
  }
});

test('every data-plane node in docker-compose.yml has the settings it cannot start without', () => {
  for (const [name, service] of portcullisServices.filter(([, s]) => s.command?.[0] === 'data-plane')) {
    for (const required of ['PORTCULLIS_NODE_TOKEN', 'PORTCULLIS_CONTROL_PLANE', 'PORTCULLIS_NODE_ID']) {
      assert.ok(service.environment?.[required], `${name} needs ${required}`);
    }
  }
});

test('every data-plane node keeps its audit spool and snapshot cache on a volume of its own', () => {
  const nodes = portcullisServices.filter(([, s]) => s.command?.[0] === 'data-plane');
  const seen = new Set<string>();
  for (const [name, service] of nodes) {
    const mounts = (service.volumes ?? []).map((volume) => volume.split(':'));
    for (const variable of ['PORTCULLIS_AUDIT_SPOOL_DIR', 'PORTCULLIS_SNAPSHOT_CACHE']) {
      const path = service.environment?.[variable] ?? '';
      const mount = mounts.find(([, target]) => target !== undefined && path.startsWith(`${target}/`));
      assert.ok(mount, `${name}: ${variable} (${path || 'unset'}) is not on a volume, so a restart loses it`);
      seen.add(`${mount[0]}:${path}`);
    }
    const own = mounts.map(([source]) => source);
    for (const [other, otherService] of nodes) {
      if (other === name) continue;
      for (const volume of otherService.volumes ?? [])
        assert.ok(!own.includes(volume.split(':')[0]), `${name} and ${other} share a volume: one spool per node`);
    }
  }
  assert.equal(seen.size, nodes.length * 2);
});

/** One instruction of the Dockerfile: `RUN npm ci` → { instruction: 'RUN', args: 'npm ci', stage }. */
interface DockerInstruction {
  instruction: string;
  args: string;
  stage: number;
}

function parseDockerfile(text: string): DockerInstruction[] {
  const joined = text.replace(/\\\r?\n/g, ' ');
  const instructions: DockerInstruction[] = [];
  let stage = -1;
  for (const line of joined.split(/\r?\n/)) {
    const match = /^\s*([A-Za-z]+)\s+(.*)$/.exec(line);
    if (!match || line.trimStart().startsWith('#')) continue;
    const instruction = match[1]!.toUpperCase();
    if (instruction === 'FROM') stage++;
    instructions.push({ instruction, args: match[2]!.trim(), stage });
  }
  return instructions;
}

/** The exec (JSON array) form of CMD/ENTRYPOINT; the shell form would hide signals from node (PID 1). */
function execForm(args: string): string[] {
  const parsed: unknown = JSON.parse(args);
  return z.array(z.string()).parse(parsed);
}

const dockerfile = parseDockerfile(readFileSync('Dockerfile', 'utf8'));
const finalStage = Math.max(...dockerfile.map((i) => i.stage));
const final = (name: string) => dockerfile.filter((i) => i.stage === finalStage && i.instruction === name);
const imageEnv: Record<string, string> = Object.fromEntries(
  final('ENV').map((i) => {
    const [name, ...value] = i.args.split('=');
    return [name!.trim(), value.join('=').trim()];
  }),
);
const cmd = execForm(final('CMD').at(-1)?.args ?? '[]');
const entrypoint = execForm(final('ENTRYPOINT').at(-1)?.args ?? '[]');

test('the Dockerfile builds on a supported Node LTS (22 or 24) in every stage', () => {
  const images = dockerfile.filter((i) => i.instruction === 'FROM').map((i) => i.args.split(/\s+/)[0]!);
  assert.ok(images.length > 0);
  for (const image of images) {
    const major = /^node:(\d+)/.exec(image)?.[1];
    assert.ok(major === '22' || major === '24', `${image} is not Node 22 or 24`);
  }
});

test("the Dockerfile's ENTRYPOINT runs the compiled CLI that its build produces", () => {
  assert.equal(entrypoint[0], 'node');
  const script = entrypoint[1] ?? '';
  const source = script.replace(/^dist\//, '').replace(/\.js$/, '.ts');
  assert.ok(existsSync(source), `${script} is compiled from ${source}, which does not exist`);
  const build = JSON.parse(readFileSync('tsconfig.build.json', 'utf8')) as { include: string[] };
  assert.ok(
    build.include.some((dir) => source.startsWith(`${dir}/`)),
    `tsconfig.build.json does not compile ${source}`,
  );
  assert.ok(
    dockerfile.some((i) => i.instruction === 'RUN' && /\bnpm run build\b/.test(i.args)),
    'the image runs npm run build',
  );
  assert.ok(
    final('COPY').some((i) => /\bdist\b/.test(i.args)),
    'the final stage holds dist/',
  );
});

test("the Dockerfile's CMD is a CLI command with flags and ENV it accepts", async () => {
  const command = await loadCommand(cmd[0] ?? '');
  assert.ok(command, `CMD runs "${cmd[0]}", which is not a portcullis command`);
  const known = new Set(Object.values(command.options).flatMap((spec) => (spec.env ? [spec.env] : [])));
  for (const variable of Object.keys(imageEnv).filter((name) => name !== 'NODE_ENV')) {
    assert.ok(known.has(variable), `ENV ${variable} is not read by "portcullis ${cmd[0]}"`);
  }
  assert.doesNotThrow(() => readOptions(command.options, cmd.slice(1), imageEnv));
  for (const [name, service] of portcullisServices) {
    assert.equal(service['entrypoint'], undefined, `${name} keeps the image's ENTRYPOINT and sets only command`);
  }
});

test('the Dockerfile EXPOSEs exactly the ports its CMD listens on beyond the container', async () => {
  const command = await loadCommand(cmd[0] ?? '');
  assert.ok(command);
  const options = readOptions(command.options, cmd.slice(1), imageEnv) as Record<string, unknown>;
  const reachable = Object.keys(command.options)
    .filter((key) => key === 'port' || key.endsWith('Port'))
    .filter((key) => options[key === 'port' ? 'host' : key.replace(/Port$/, 'Host')] === '0.0.0.0')
    .map((key) => String(options[key]));
  const exposed = final('EXPOSE').flatMap((i) => i.args.split(/\s+/).map((port) => port.replace(/\/tcp$/, '')));
  assert.deepEqual(exposed.sort(), reachable.sort());
});

test("the image's data dir is a volume the unprivileged user owns", () => {
  const user = final('USER').at(-1)?.args;
  assert.ok(user && user !== 'root' && user !== '0', 'the image runs as an unprivileged user');
  const dataDir = imageEnv['PORTCULLIS_DATA_DIR'];
  assert.ok(dataDir, 'ENV PORTCULLIS_DATA_DIR names where dev keeps its embedded database');
  assert.ok(
    final('VOLUME').some((i) => i.args.split(/\s+/).includes(dataDir)),
    `VOLUME ${dataDir}`,
  );
  assert.ok(
    final('RUN').some((i) => i.args.includes(`chown ${user}`) && i.args.includes(dataDir)),
    `chown ${user} ${dataDir}`,
  );
});
