import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, readdirSync, rmSync, statSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MessageStore, StoreNotFoundError, inspectStore, verifyStore } from '../../src/store/index.js';
import { payload, removeDir, segmentFiles, tempDir } from './helpers.js';

const cliUrl = new URL('../../src/cli/store.js', import.meta.url).href;

/** Runs `cirrus store <args>` through registerStoreCommands in a real child process. */
function cli(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const code = `
    import { Command } from 'commander';
    import { registerStoreCommands } from ${JSON.stringify(cliUrl)};
    const program = new Command().name('cirrus');
    registerStoreCommands(program);
    await program.parseAsync(process.argv.slice(1), { from: 'user' });
  `;
  // cwd inside the build tree, so 'commander' resolves from the repository's node_modules.
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', code, '--', ...args], {
    cwd: dirname(fileURLToPath(import.meta.url)),
    encoding: 'utf8',
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

async function build(dir: string): Promise<void> {
  const s = await MessageStore.open({ dir, segmentBytes: 64 * 1024, maxMessageBytes: 1024 });
  for (let i = 0; i < 300; i++) await s.append(i % 2 ? 'orders' : 'audit', i % 5, payload('x', i % 5, i, 500));
  await s.close();
}

test('verify and inspect: a good store is OK and described', async () => {
  const dir = tempDir();
  await build(dir);
  const report = await verifyStore(dir);
  assert.equal(report.ok, true);
  assert.equal(report.records, 300);
  assert.equal(report.segments.length, segmentFiles(dir).length);
  assert.equal(report.segments.reduce((n, s) => n + s.records, 0), 300);
  assert.deepEqual(report.topics, ['audit', 'orders']);
  assert.equal(report.queues.length, 10);
  const scan = await inspectStore(dir);
  assert.equal(scan.cleanShutdown, true);
  assert.equal(scan.checkpoint.valid, true);
  const orders = scan.queues.filter((q) => q.topic === 'orders');
  assert.equal(orders.reduce((n, q) => n + q.messages, 0), 150);
  assert.ok(orders.every((q) => q.firstOffset === 0 && q.endOffset === q.messages));

  const v = cli(['store', 'verify', dir]);
  assert.equal(v.status, 0, v.stdout);
  assert.match(v.stdout, /^OK: /);
  const j = cli(['store', 'verify', '--json', dir]);
  assert.equal(j.status, 0);
  assert.equal(JSON.parse(j.stdout).ok, true);
  const i = cli(['store', 'inspect', dir]);
  assert.equal(i.status, 0);
  assert.match(i.stdout, /orders: \d+ queue\(s\), 150 message\(s\)/);
  assert.equal(JSON.parse(cli(['store', 'inspect', '--json', dir]).stdout).records, 300);
  removeDir(dir);
});

test('verify and inspect: progress after every segment, on stderr only, never past the total', async () => {
  const dir = tempDir();
  try {
    await build(dir);
    const segments = segmentFiles(dir);
    const total = segments.reduce((n, f) => n + statSync(f).size, 0);
    const seen: Array<{ segments: number; segmentsTotal: number; bytes: number; bytesTotal: number }> = [];
    const report = await verifyStore(dir, { onProgress: (p) => seen.push({ ...p }) });
    assert.equal(report.ok, true);
    assert.equal(seen.length, segments.length, 'one report per segment');
    seen.forEach((p, k) => {
      assert.equal(p.segments, k + 1);
      assert.equal(p.segmentsTotal, segments.length);
      assert.equal(p.bytesTotal, total);
      assert.ok(p.bytes <= total && (k === 0 || p.bytes > seen[k - 1].bytes), `bytes grow up to the total: ${p.bytes}`);
    });
    assert.equal(seen[seen.length - 1].bytes, total);

    const j = cli(['store', 'verify', '--json', '--progress', 'always', dir]);
    assert.equal(j.status, 0);
    assert.equal(JSON.parse(j.stdout).ok, true, 'stdout stays one JSON object');
    const lines = j.stderr.trim().split('\n');
    assert.equal(lines.length, segments.length, j.stderr);
    assert.match(lines[lines.length - 1], new RegExp(`^verify: segment ${segments.length}/${segments.length}, .* \\(100 %\\)`));
    assert.equal(cli(['store', 'inspect', '--progress', 'never', dir]).stderr, '', 'never: silent');
    assert.equal(cli(['store', 'inspect', dir]).stderr, '', 'auto, stderr not a terminal: silent');
    const bad = cli(['store', 'verify', '--progress', 'sometimes', dir]);
    assert.notEqual(bad.status, 0);
    assert.match(bad.stderr, /--progress.*sometimes|sometimes.*--progress|Allowed choices/);
  } finally {
    removeDir(dir);
  }
});

test('verify: a flipped byte in an old record is damage, with a non-zero exit', async () => {
  const dir = tempDir();
  await build(dir);
  const first = segmentFiles(dir)[0];
  const fd = openSync(first, 'r+');
  const at = 536 * 3 + 100; // inside record 3's body
  writeSync(fd, Buffer.from([readFileSync(first)[at] ^ 0xff]), 0, 1, at);
  closeSync(fd);
  const report = await verifyStore(dir, { maxMessageBytes: 1024 });
  assert.equal(report.ok, false);
  assert.equal(report.damage.length, 1);
  assert.equal(report.damage[0].verdict, 'bad-crc');
  assert.equal(report.damage[0].from, 536 * 3);
  const v = cli(['store', 'verify', dir]);
  assert.equal(v.status, 2);
  assert.match(v.stdout, /^DAMAGED: /);
  assert.match(v.stdout, /damage: bad-crc/);
  removeDir(dir);
});

test('verify: bit rot in a record the delta chain covers (written at a clean close) is damage, not a torn tail, as the next open sees it', async () => {
  const dir = tempDir();
  const s = await MessageStore.open({ dir, segmentBytes: 1 << 20, maxMessageBytes: 1024 });
  for (let i = 0; i < 10; i++) await s.append('t', 0, payload('t', 0, i, 500));
  await s.checkpoint({ full: true });
  // Well inside the unflushed window after the full checkpoint: only the close's delta covers these.
  for (let i = 10; i < 20; i++) await s.append('t', 0, payload('t', 0, i, 500));
  await s.close();
  const first = segmentFiles(dir)[0];
  const at = 536 * 15 + 100; // inside record 15's body
  const fd = openSync(first, 'r+');
  writeSync(fd, Buffer.from([readFileSync(first)[at] ^ 0xff]), 0, 1, at);
  closeSync(fd);
  const report = await verifyStore(dir, { maxMessageBytes: 1024 });
  assert.equal(report.ok, false);
  assert.equal(report.tail, null);
  assert.deepEqual(report.damage.map((d) => [d.from, d.kind]), [[536 * 15, 'middle']]);
  // The reopen agrees: nothing is cut, and the record fails its check when read.
  const again = await MessageStore.open({ dir, segmentBytes: 1 << 20, maxMessageBytes: 1024 });
  try {
    assert.equal(again.recovery.truncatedBytes, 0);
    assert.equal(again.endOffset('t', 0), 20);
    await assert.rejects(again.getRange('t', 0, 15, 1), /CRC/);
  } finally {
    await again.close();
    removeDir(dir);
  }
});

test('verify and inspect: --max-message-bytes takes the store\'s own limit, and a bad value is refused by name', async () => {
  const dir = tempDir();
  try {
    await build(dir);
    const ok = cli(['store', 'verify', '--max-message-bytes', String(8 * 1024 * 1024), dir]);
    assert.equal(ok.status, 0, ok.stderr);
    assert.match(ok.stdout, /^OK: /);
    for (const bad of ['0', 'lots', String(128 * 1024 * 1024)]) {
      const r = cli(['store', 'inspect', '--max-message-bytes', bad, dir]);
      assert.notEqual(r.status, 0);
      assert.match(r.stderr, /--max-message-bytes must be an integer in 1\.\.67108864/);
    }
  } finally {
    removeDir(dir);
  }
});

test('verify: a torn tail is a warning (the next open cuts it), damage with --strict', async () => {
  const dir = tempDir();
  await build(dir);
  rmSync(join(dir, 'index.ckpt'));
  const segs = segmentFiles(dir);
  const last = segs[segs.length - 1];
  truncateSync(last, statSync(last).size - 7);
  const report = await verifyStore(dir, { maxMessageBytes: 1024 });
  assert.equal(report.ok, true);
  assert.ok(report.tail !== null && report.tail.kind === 'tail' && report.tail.verdict === 'torn-body');
  assert.equal((await verifyStore(dir, { maxMessageBytes: 1024, strict: true })).ok, false);
  const v = cli(['store', 'verify', dir]);
  assert.equal(v.status, 0);
  assert.match(v.stdout, /torn tail: torn-body/);
  assert.equal(cli(['store', 'verify', '--strict', dir]).status, 2);
  removeDir(dir);
});

test('inspect: says who holds the lock and whether that process still runs', async () => {
  const dir = tempDir();
  await build(dir);
  assert.equal((await inspectStore(dir)).lockHolderPid, null, 'a closed store is not locked');
  const s = await MessageStore.open({ dir });
  try {
    const scan = await inspectStore(dir);
    assert.equal(scan.lockHolderPid, process.pid);
    assert.equal(scan.lockHolderAlive, true);
    // The CLI runs in another process: it sees this one alive.
    assert.match(cli(['store', 'inspect', dir]).stdout, new RegExp(`locked by live process ${process.pid}\\b`));
  } finally {
    await s.close();
  }
  // What a process killed with SIGKILL leaves behind (a pid above the kernel's pid_max).
  writeFileSync(join(dir, 'LOCK'), '99999999 - - 0123abcd\n');
  const stale = await inspectStore(dir);
  assert.equal(stale.lockHolderPid, 99999999);
  assert.equal(stale.lockHolderAlive, false);
  assert.match(cli(['store', 'inspect', dir]).stdout, /stale lock of process 99999999 \(no longer running; the next open takes it over\)/);
  removeDir(dir);
});

test('verify and inspect: a path that holds no store is refused with CIRRUS_STORE_NOT_FOUND, not reported as a sound empty store', async () => {
  const root = tempDir();
  const missing = join(root, 'no-such-dir');
  const file = join(root, 'a-file');
  writeFileSync(file, 'not a store\n');
  const unrelated = join(root, 'unrelated');
  mkdirSync(unrelated);
  writeFileSync(join(unrelated, 'notes.txt'), 'hello\n');
  const empty = join(root, 'empty');
  mkdirSync(empty);
  for (const [dir, why] of [
    [missing, /does not exist$/],
    [file, /is not a directory$/],
    [unrelated, /holds no message store/],
    [empty, /holds no message store/],
  ] as const) {
    for (const scan of [verifyStore, inspectStore]) {
      await assert.rejects(scan(dir), (err: unknown) => {
        assert.ok(err instanceof StoreNotFoundError, String(err));
        assert.equal(err.code, 'CIRRUS_STORE_NOT_FOUND');
        assert.equal(err.dir, dir);
        assert.match(err.message, why);
        return true;
      });
    }
  }
  assert.deepEqual(readdirSync(unrelated), ['notes.txt'], 'a refused scan creates nothing');

  // The real command: one line naming the code and the path, exit code 1, no stack trace.
  const main = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
  const r = spawnSync(process.execPath, [main, 'store', 'verify', missing], { encoding: 'utf8' });
  assert.equal(r.status, 1, r.stderr);
  assert.equal(r.stdout, '');
  assert.equal(r.stderr, `cirrus: CIRRUS_STORE_NOT_FOUND: ${missing} does not exist\n`);

  // A store that never got an append is still a store, and one missing its dictionary is scanned.
  const fresh = join(root, 'fresh');
  await (await MessageStore.open({ dir: fresh })).close();
  const report = await verifyStore(fresh);
  assert.equal(report.ok, true);
  assert.equal(report.records, 0);
  const noDict = join(root, 'no-dict');
  await build(noDict);
  rmSync(join(noDict, 'topics.dict'));
  const damaged = await verifyStore(noDict);
  assert.equal(damaged.records, 300);
  assert.equal(damaged.unknownTopicRecords, 300);
  assert.equal(damaged.ok, false);
  removeDir(root);
});
