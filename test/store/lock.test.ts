import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { MessageStore, StoreIoError, StoreLockedError, inspectStore } from '../../src/store/index.js';
import { formatLock, parseLock, type LockHolder } from '../../src/store/lock.js';
import { removeDir, tempDir } from './helpers.js';

const storeUrl = new URL('../../src/store/index.js', import.meta.url).href;

/**
 * A real process running `body` (an ES module that may use MessageStore); resolves with the first
 * line it prints, and keeps running until killed.
 */
async function storeChild(body: string): Promise<{ child: ChildProcess; line: string; exited: Promise<number | null> }> {
  const code = `import { MessageStore } from ${JSON.stringify(storeUrl)};\n${body}\nsetInterval(() => {}, 1000);`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
  const line = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('\n')) resolve(out.slice(0, out.indexOf('\n')));
    });
    child.on('exit', (c) => reject(new Error(`child exited early with ${c}`)));
  });
  return { child, line, exited };
}

/** A real second process that opens the store, appends, prints "ready" and waits. */
function holder(dir: string): Promise<{ child: ChildProcess; exited: Promise<number | null> }> {
  return storeChild(`
    const s = await MessageStore.open({ dir: ${JSON.stringify(dir)} });
    await s.append('held', 0, Buffer.from('by the child'));
    process.stdout.write('ready\\n');
  `);
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

test('lock: a leftover temporary pid file of a dead process is cleaned up on open, and only such files', async () => {
  const dir = tempDir();
  const s0 = await MessageStore.open({ dir });
  await s0.close();
  // A pid that cannot be alive (above the kernel's pid_max of 2^22).
  writeFileSync(join(dir, 'LOCK.99999999.abcdef'), '99999999\n');
  writeFileSync(join(dir, 'LOCK'), '99999999\n'); // a stale lock too
  // Files the store did not make, named alike: not its to delete.
  writeFileSync(join(dir, 'LOCK.bak'), 'an operator\'s copy\n');
  writeFileSync(join(dir, 'LOCK.99999999'), 'not a temporary\n');
  const s = await MessageStore.open({ dir });
  try {
    assert.ok(!existsSync(join(dir, 'LOCK.99999999.abcdef')));
    assert.ok(existsSync(join(dir, 'LOCK.bak')) && existsSync(join(dir, 'LOCK.99999999')), 'look-alikes stay');
    assert.equal(parseLock(readFileSync(join(dir, 'LOCK'), 'utf8')).pid, process.pid);
  } finally {
    await s.close();
    removeDir(dir);
  }
});

test('lock: a directory where LOCK should be is named at once (CIRRUS_STORE_IO), not waited on and reported as a lock held', async () => {
  const dir = tempDir();
  const s0 = await MessageStore.open({ dir });
  await s0.append('t', 0, Buffer.from('x'));
  await s0.close();
  mkdirSync(join(dir, 'LOCK'));
  try {
    await assert.rejects(MessageStore.open({ dir }), (e: unknown) => e instanceof StoreIoError && /is a directory, not a lock file/.test(e.message));
    const scan = await inspectStore(dir);
    assert.equal(scan.lockHolderPid, null);
    assert.equal(scan.records, 1);
  } finally {
    removeDir(dir);
  }
});

function lockOf(dir: string): LockHolder {
  return parseLock(readFileSync(join(dir, 'LOCK'), 'utf8'));
}

function isLockedBy(pid: number): (e: unknown) => boolean {
  return (e: unknown) => e instanceof StoreLockedError && e.code === 'CIRRUS_STORE_LOCKED' && e.holderPid === pid;
}

test('lock: the lock names pid, start time and boot; a reused pid or an earlier boot is stale, the real holder is not', { timeout: 60_000 }, async () => {
  const dir = tempDir();
  const other = tempDir();
  // A live process whose real identity we learn from the lock it writes in another directory.
  const { child, exited } = await holder(other);
  try {
    const live = lockOf(other);
    assert.equal(live.pid, child.pid);
    if (process.platform === 'linux') {
      assert.match(live.start, /^\d+$/, 'start time from /proc/<pid>/stat');
      assert.equal(live.boot, readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim());
    }
    const s0 = await MessageStore.open({ dir });
    await s0.append('t', 0, Buffer.from('before'));
    await s0.close();

    // The real holder, and a lock of an older version (a bare pid) naming a live process: refused.
    writeFileSync(join(dir, 'LOCK'), formatLock(live));
    await assert.rejects(MessageStore.open({ dir }), isLockedBy(live.pid));
    writeFileSync(join(dir, 'LOCK'), `${live.pid}\n`);
    await assert.rejects(MessageStore.open({ dir }), isLockedBy(live.pid));
    assert.equal(readFileSync(join(dir, 'LOCK'), 'utf8'), `${live.pid}\n`, 'a refused open leaves the lock alone');

    if (process.platform === 'linux') {
      const cases: Array<[string, LockHolder]> = [
        // The pid now belongs to another process than the one that locked.
        ['another process on the same pid', { ...live, start: String(Number(live.start) + 1) }],
        // This very process's pid with another start time: a container restarted after SIGKILL.
        ['this pid, another start time', { ...live, pid: process.pid, start: String(Number(live.start) + 1) }],
        // Locked before the machine rebooted.
        ['an earlier boot', { ...live, boot: '00000000-0000-0000-0000-000000000000' }],
      ];
      for (const [what, stale] of cases) {
        writeFileSync(join(dir, 'LOCK'), formatLock(stale));
        const s = await MessageStore.open({ dir }).catch((e: unknown) => {
          throw new Error(`${what}: the stale lock was not taken over`, { cause: e });
        });
        const mine = lockOf(dir);
        assert.equal(mine.pid, process.pid, what);
        assert.notEqual(mine.nonce, stale.nonce, what);
        assert.deepEqual(await s.getRange('t', 0, 0, 10), [Buffer.from('before')], what);
        await s.close();
        assert.ok(!existsSync(join(dir, 'LOCK')), `${what}: close releases the lock`);
      }
    }
  } finally {
    child.kill('SIGKILL');
    await exited;
    removeDir(dir);
    removeDir(other);
  }
});

test('lock: many opens taking over one stale lock at once: exactly one gets the directory', { timeout: 60_000 }, async () => {
  const dir = tempDir();
  const s0 = await MessageStore.open({ dir });
  await s0.close();
  const OPENERS = 8;
  const ROUNDS = 25;
  for (let round = 0; round < ROUNDS; round++) {
    writeFileSync(join(dir, 'LOCK'), `99999999 - - stale${round}\n`);
    // Staggered over a few milliseconds (a lock file's write and sync): some openers judge the
    // lock stale while others are already taking it over.
    const results = await Promise.allSettled(
      Array.from({ length: OPENERS }, (_, k) => sleep((k * round) % 7).then(() => MessageStore.open({ dir }))),
    );
    const opened = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    for (const r of results) {
      if (r.status === 'rejected') assert.ok(r.reason instanceof StoreLockedError, `round ${round}: ${String(r.reason)}`);
    }
    const n = opened.length;
    for (const s of opened) await s.close();
    assert.equal(n, 1, `round ${round}: ${n} of ${OPENERS} opens got the directory`);
  }
  assert.deepEqual(
    readdirSync(dir).filter((name) => name.startsWith('LOCK')),
    [],
    'no lock file, temporary or moved-aside file is left behind',
  );
  removeDir(dir);
});

test('lock: processes racing for one stale lock: exactly one gets the directory', { timeout: 60_000 }, async () => {
  const dir = tempDir();
  const s0 = await MessageStore.open({ dir });
  await s0.close();
  writeFileSync(join(dir, 'LOCK'), '99999999\n');
  const PROCESSES = 4;
  const racers = await Promise.all(
    Array.from({ length: PROCESSES }, () =>
      storeChild(`
        try {
          await MessageStore.open({ dir: ${JSON.stringify(dir)} });
          process.stdout.write('opened\\n');
        } catch (e) {
          process.stdout.write((e.code ?? String(e)) + '\\n');
        }
      `),
    ),
  );
  try {
    const outcomes = racers.map((r) => r.line);
    assert.equal(outcomes.filter((o) => o === 'opened').length, 1, outcomes.join(', '));
    assert.equal(outcomes.filter((o) => o === 'CIRRUS_STORE_LOCKED').length, PROCESSES - 1, outcomes.join(', '));
  } finally {
    await Promise.all(
      racers.map(({ child, exited }) => {
        child.kill('SIGKILL');
        return exited;
      }),
    );
    removeDir(dir);
  }
});
