import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { z } from 'zod';
import { commands } from '../../cli/src/commands/index.ts';

// No Docker engine runs here, so the compose file is kept honest by checking it against the CLI.
const Compose = z.object({
  services: z.record(
    z.string(),
    z.object({ command: z.array(z.string()).optional(), environment: z.record(z.string(), z.string()).optional(), build: z.string().optional() }).loose(),
  ),
});

const compose = Compose.parse(parse(readFileSync('docker-compose.yml', 'utf8')));
const portcullisServices = Object.entries(compose.services).filter(([, service]) => service.build === '.');

test('docker-compose.yml runs only commands the CLI has', () => {
  assert.ok(portcullisServices.length >= 2, 'the compose file runs the control plane and data-plane nodes');
  for (const [name, service] of portcullisServices) {
    const command = service.command?.[0];
    assert.ok(command && Object.hasOwn(commands, command), `service ${name} runs "${command}", which is not a portcullis command`);
  }
});

test('docker-compose.yml sets only environment variables its command reads', () => {
  for (const [name, service] of portcullisServices) {
    const command = commands[service.command?.[0] ?? ''];
    assert.ok(command);
    const known = new Set(Object.values(command.options).flatMap((spec) => (spec.env ? [spec.env] : [])));
    for (const variable of Object.keys(service.environment ?? {})) {
      assert.ok(known.has(variable), `service ${name} sets ${variable}, which "portcullis ${service.command?.[0]}" does not read`);
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
