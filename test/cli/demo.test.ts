import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

function cirrus(args: string[], timeoutMs = 60_000) {
  return spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', timeout: timeoutMs, env: { ...process.env, CIRRUS_LOG_LEVEL: 'silent' } });
}

test('cirrus demo runs cluster, gateway and load and prints a summary next to the oracle', () => {
  const r = cirrus(['demo', '--duration', '3', '--rps', '50', '--scenario', 'healthy', '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /dashboard: http:\/\/127\.0\.0\.1:\d+\//);
  const m = /cirrus demo: (\d+) ok, (\d+) failed of (\d+) sent/.exec(r.stdout);
  assert.ok(m, r.stdout);
  const [ok, failed, sent] = [Number(m[1]), Number(m[2]), Number(m[3])];
  assert.ok(sent >= 100, `sent ${sent}`);
  assert.equal(ok + failed, sent);
  assert.equal(failed, 0, 'healthy providers never fail');
  assert.match(r.stdout, /% of the oracle/);
});

test('cirrus demo rejects an unknown scenario, naming the option', () => {
  const r = cirrus(['demo', '--scenario', 'nope']);
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /--scenario must be one of/);
});

test('cirrus --help lists the sub-commands', () => {
  const r = cirrus(['--help']);
  assert.equal(r.status, 0);
  assert.match(r.stdout, /demo/);
});
