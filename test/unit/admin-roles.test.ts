import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { REPO_ROOT } from '../support/processes.ts';
import { readFileSync } from 'node:fs';
import { buildSchema } from 'graphql';
import { FIELD_ROLES, rolesFor } from '../../control-plane/src/admins/roles.ts';

const schema = buildSchema(readFileSync(resolve(REPO_ROOT, 'schema.graphql'), 'utf8'));
const mutations = Object.keys(schema.getMutationType()!.getFields());

test('no mutation is open to auditors, and one not in the table is admin-only', () => {
  for (const name of mutations) assert.ok(!rolesFor('Mutation', name, true).includes('auditor'), name);
  assert.deepEqual(rolesFor('Mutation', 'someNewMutation', true), ['admin']);
});

test('every entry of the role table names a field the schema has', () => {
  for (const entry of Object.keys(FIELD_ROLES)) {
    const [type, field] = entry.split('.');
    const fields = (schema.getType(type!) as { getFields?: () => Record<string, unknown> } | undefined)?.getFields?.();
    assert.ok(fields?.[field!], `${entry} is not in schema.graphql`);
  }
});
