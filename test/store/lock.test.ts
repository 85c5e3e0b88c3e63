import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MessageStore, StoreLockedError } from '../../src/store/index.js';
import { removeDir, tempDir } from './helpers.js';

const storeUrl = new URL('../../src/store/index.js', import.meta.url).href;

/** A real second process that opens the store, appends, prints "ready" and waits. */
function holder(dir: string): Promise<{ child: ChildProcess; exited: Promise<number | null> }> {
  const code = `
    import { MessageStore } from ${JSON.stringify(storeUrl)};
    const s = await MessageStore.open({ dir: ${JSON.stringify(dir)} });
    await s.append('held', 0, Buffer.from('by the child'));
    process.stdout.write('ready\\n');
    setInterval(() => {}, 1000);
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('ready')) resolve({ child, exited });
    });
    child.on('exit', (c) => reject(new Error(`holder exited early with ${c}`)));
  });
}

test('lock: a second process gets CIRRUS_STORE_LOCKED; after it is killed with SIGKILL the stale lock does not block', { timeout: 60_000 }, async () => {
  const dir = tempDir();
  const { child, exited } = await holder(dir);
  try {
    await assert.rejects(
      MessageStore.open({ dir }),
      (e: unknown) => e instanceof StoreLockedError && e.code === 'CIRRUS_STORE_LOCKED' && e.holderPid === child.pid,
    );
  } finally {
    child.kill('SIGKILL');
    await exited;
  }
  assert.ok(existsSync(join(dir, 'LOCK')), 'the killed holder left its lock file behind');
  const s = await MessageStore.open({ dir });
  try {
    assert.deepEqual(await s.getRange('held', 0, 0, 10), [Buffer.from('by the child')]);
  } finally {
    await s.close();
    removeDir(dir);
  }
});

test('lock: a second MessageStore in the same process is refused; after close the dir opens again', async () => {
  const dir = tempDir();
  const a = await MessageStore.open({ dir });
  await assert.rejects(MessageStore.open({ dir }), (e: unknown) => e instanceof StoreLockedError && e.holderPid === process.pid);
  await a.append('t', 0, Buffer.from('x'));
  await a.close();
  assert.ok(!existsSync(join(dir, 'LOCK')), 'close releases the lock');
  const b = await MessageStore.open({ dir });
  assert.equal(b.endOffset('t', 0), 1);
  await b.close();
  removeDir(dir);
});

test('lock: a leftover temporary pid file of a dead process is cleaned up on open', async () => {
  const dir = tempDir();
  const s0 = await MessageStore.open({ dir });
  await s0.close();
  // A pid that cannot be alive (above the kernel's pid_max of 2^22).
  writeFileSync(join(dir, 'LOCK.99999999.abcdef'), '99999999\n');
  writeFileSync(join(dir, 'LOCK'), '99999999\n'); // a stale lock too
  const s = await MessageStore.open({ dir });
  try {
    assert.ok(!existsSync(join(dir, 'LOCK.99999999.abcdef')));
    assert.equal(readFileSync(join(dir, 'LOCK'), 'utf8').trim(), String(process.pid));
  } finally {
    await s.close();
    removeDir(dir);
  }
});
