import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { get, named, startUpstream, waitFor } from './helpers.js';

/** Runs `cirrus gateway ARGS` (the command as registered by src/cli/gateway.ts) in a child process. */
function runCli(args: string[]): { child: ChildProcess; stderr: () => string; exited: Promise<number | null> } {
  const cli = new URL('../../src/cli/gateway.js', import.meta.url).href;
  const commander = import.meta.resolve('commander');
  const script = `
    import { Command } from '${commander}';
    import { registerGatewayCommands } from '${cli}';
    const program = new Command().name('cirrus');
    registerGatewayCommands(program);
    program.parseAsync(process.argv).catch((e) => { process.stderr.write('cirrus: ' + e.code + ': ' + e.message + '\\n'); process.exitCode = 1; });
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script, 'cirrus', ...args], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, CIRRUS_LOG_LEVEL: 'silent' },
  });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, stderr: () => err, exited };
}

describe('cirrus gateway (CLI)', () => {
  test('--config: serves, reloads on SIGHUP, drains on SIGTERM', async () => {
    const a = await startUpstream(named('a', 0));
    const b = await startUpstream(named('b', 400));
    const dir = await mkdtemp(join(tmpdir(), 'cirrus-gw-cli-'));
    const file = join(dir, 'gateway.yaml');
    await writeFile(file, `listen: 127.0.0.1:0\nadmin: null\nupstreams: [${a.url}]\noutlier: { retryHung: false }\n`);
    const run = runCli(['gateway', '--config', file]);
    try {
      await waitFor(() => /proxy http:\/\/[0-9.:]+\n/.test(run.stderr()), 20_000, 'the gateway to print its URL');
      const url = /proxy (http:\/\/[0-9.:]+)/.exec(run.stderr())![1]!;
      assert.equal((await get(`${url}/x`)).body, 'a');

      await writeFile(file, `listen: 127.0.0.1:0\nadmin: null\nupstreams: [${b.url}]\noutlier: { retryHung: false }\n`);
      run.child.kill('SIGHUP');
      await waitFor(async () => (await get(`${url}/y`)).body === 'b', 20_000, 'the reload to take effect');

      // A request in flight when SIGTERM arrives is still answered; then the process exits 0.
      const hits = b.hits;
      const inflight = get(`${url}/slow`);
      await waitFor(() => b.hits > hits, 10_000, 'the slow request to reach b');
      run.child.kill('SIGTERM');
      const r = await inflight;
      assert.equal(r.status, 200);
      assert.equal(r.body, 'b');
      assert.equal(await run.exited, 0);
    } finally {
      run.child.kill('SIGKILL');
      await rm(dir, { recursive: true, force: true });
      await a.close();
      await b.close();
    }
  });

  test('a bad flag value is reported with its key and a non-zero exit', async () => {
    const run = runCli(['gateway', '--upstream', 'ftp://x', '--listen', '127.0.0.1:0', '--admin', 'off']);
    assert.equal(await run.exited, 1);
    assert.match(run.stderr(), /CIRRUS_GW_CONFIG_INVALID: upstreams\[0\]/);
  });
});
