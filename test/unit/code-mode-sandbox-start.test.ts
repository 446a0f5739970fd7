import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { DEFAULT_SANDBOX_LIMITS, SandboxPool, type ToolAnswer } from '../../data-plane/src/code-mode/sandbox-pool.ts';
import { eventually } from '../support/eventually.ts';

const sandbox = new SandboxPool({ workers: 2, limits: DEFAULT_SANDBOX_LIMITS, maxQueued: 4 });
after(() => sandbox.close());
const noCalls = () => Promise.reject(new Error('return 1 makes no tool calls'));

test('a warm pool says which idle workers hold a sandbox made ahead; runs on them are not cold starts', async () => {
  await sandbox.warm();
  assert.equal(sandbox.readyWorkers, 2, 'each worker made its first sandbox before it said ready');
  const both = await Promise.all([sandbox.run('return 1', noCalls), sandbox.run('return 1', noCalls)]);
  assert.ok(both.every((outcome) => outcome.ok));
  assert.equal(sandbox.coldStarts, 0, 'two runs on two ready workers start in sandboxes made ahead');

  // Idle again, each worker makes its next sandbox after answering.
  await eventually('both workers have made their next sandbox', () => sandbox.readyWorkers === 2, 10_000);
  let answer: ((value: ToolAnswer) => void) | undefined;
  const held = sandbox.run(
    'return await tools.up.t({})',
    () => new Promise<ToolAnswer>((resolve) => (answer = resolve)),
  );
  await eventually('the script is waiting for its call', () => answer !== undefined, 10_000);
  assert.equal(sandbox.readyWorkers, 1, 'the busy worker is not counted');
  answer!({ json: '7' });
  assert.deepEqual(await held, { ok: true, valueJson: '7', logs: '' });
  await eventually('ready again', () => sandbox.readyWorkers === 2, 10_000);
});
