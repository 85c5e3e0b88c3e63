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

test('sim registers cluster, load, oracle and scenarios with their required options', async () => {
  const program = new Command().exitOverride();
  registerSimCommands(program);
  const sim = program.commands.find((c) => c.name() === 'sim');
  assert.ok(sim);
  assert.deepEqual(sim.commands.map((c) => c.name()).sort(), ['cluster', 'load', 'oracle', 'scenarios']);
  const load = sim.commands.find((c) => c.name() === 'load');
  assert.ok(load);
  for (const c of sim.commands) c.exitOverride().configureOutput({ writeErr: () => undefined });
  await assert.rejects(program.parseAsync(['node', 'cirrus', 'sim', 'load', '--rps', '10']), { code: 'commander.missingMandatoryOptionValue' });
  await assert.rejects(program.parseAsync(['node', 'cirrus', 'sim', 'load', '--rps', 'many', '--duration', '1s', '--target', 'http://127.0.0.1:1']), {
    code: 'CIRRUS_SIM_BAD_ARGUMENT',
    argument: '--rps',
  });
});

test('sim oracle prints the oracle and the wait frontier of a scenario without starting a cluster', async () => {
  const program = new Command().exitOverride();
  registerSimCommands(program);
  const lines: string[] = [];
  const write = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((chunk: string | Uint8Array): boolean => {
    lines.push(String(chunk));
    return true;
  }) as typeof process.stdout.write;
  try {
    await program.parseAsync(['node', 'cirrus', 'sim', 'oracle', '--scenario', 'sudden-death', '--rps', '500', '--max-wait-ms', '1000,5000', '--json']);
  } finally {
    process.stdout.write = write;
  }
  const r = JSON.parse(lines.join('')) as { oracle: number; offered: number; frontier: Array<{ maxWaitMs: number; successes: number; successesWithP99AtCap: number }> };
  assert.equal(r.offered, 30_000);
  assert.deepEqual(r.frontier.map((p) => p.maxWaitMs), [1_000, 5_000]);
  assert.equal(r.frontier[1].successes, r.oracle);
  // Two of three providers black-hole for 20 s: every second of wait given up loses requests.
  assert.ok(r.frontier[0].successes < r.oracle - 1_000, JSON.stringify(r));
  const sim = program.commands.find((c) => c.name() === 'sim');
  for (const c of sim?.commands ?? []) c.exitOverride().configureOutput({ writeErr: () => undefined });
  await assert.rejects(program.parseAsync(['node', 'cirrus', 'sim', 'oracle', '--scenario', 'tight', '--max-wait-ms', '1000,9000']), {
    code: 'CIRRUS_SIM_BAD_ARGUMENT',
    argument: '--max-wait-ms',
  });
});
