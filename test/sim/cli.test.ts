import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Command } from 'commander';
import { parseDurationMs, registerSimCommands } from '../../src/cli/sim.js';

test('durations read as ms, s or m; a bare number is seconds', () => {
  assert.equal(parseDurationMs('--duration', '500ms'), 500);
  assert.equal(parseDurationMs('--duration', '60s'), 60_000);
  assert.equal(parseDurationMs('--duration', '1.5m'), 90_000);
  assert.equal(parseDurationMs('--duration', '2'), 2_000);
  assert.throws(() => parseDurationMs('--duration', '1h'), { code: 'CIRRUS_SIM_BAD_ARGUMENT', argument: '--duration' });
  assert.throws(() => parseDurationMs('--warmup', '0ms'), { code: 'CIRRUS_SIM_BAD_ARGUMENT', argument: '--warmup' });
});

test('sim registers cluster, load and scenarios with their required options', async () => {
  const program = new Command().exitOverride();
  registerSimCommands(program);
  const sim = program.commands.find((c) => c.name() === 'sim');
  assert.ok(sim);
  assert.deepEqual(sim.commands.map((c) => c.name()).sort(), ['cluster', 'load', 'scenarios']);
  const load = sim.commands.find((c) => c.name() === 'load');
  assert.ok(load);
  for (const c of sim.commands) c.exitOverride().configureOutput({ writeErr: () => undefined });
  await assert.rejects(program.parseAsync(['node', 'cirrus', 'sim', 'load', '--rps', '10']), { code: 'commander.missingMandatoryOptionValue' });
  await assert.rejects(program.parseAsync(['node', 'cirrus', 'sim', 'load', '--rps', 'many', '--duration', '1s', '--target', 'http://127.0.0.1:1']), {
    code: 'CIRRUS_SIM_BAD_ARGUMENT',
    argument: '--rps',
  });
});
