import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, fstatSync, ftruncateSync, mkdirSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { MessageStore } from '../../src/store/index.js';

/** Small enough to fill in a moment, large enough for the store's files and a few segments. */
const FS_BYTES = 8 * 1024 * 1024;
/** Small segments so that a new segment is needed while the disk is full. */
const SEGMENT_BYTES = 256 * 1024;
const RECORD_BYTES = 3000;
const QUEUES = 3;
/** Appends in flight per round: a full disk must fail whole group commits, not just one append. */
const CONCURRENCY = 8;
/** Bound of the "append until the disk is full" loop: the whole filesystem, twice over. */
const MAX_ROUNDS = Math.ceil((2 * FS_BYTES) / RECORD_BYTES / CONCURRENCY);

function run(cmd: string, args: string[]): string | null {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.error) return `${cmd}: ${r.error.message}`;
  if (r.status !== 0) return `${cmd} ${args.join(' ')}: exit ${r.status}: ${(r.stderr || r.stdout).trim()}`;
  return null;
}

type FsKind = 'tmpfs' | 'ext4 (loop device)';

/**
 * Mounts a tiny filesystem of `kind` (tmpfs, or an ext4 image on a loop device: the two behave
 * differently when full, ext4 with delayed allocation and reserved blocks). Returns the mount
 * point, or null after t.skip() with the reason when mounting is not permitted here.
 * `beforeUnmount` runs first at cleanup (closing the store, whose files keep the mount busy).
 */
function smallFilesystem(t: TestContext, kind: FsKind, beforeUnmount: () => Promise<void>): string | null {
  const base = mkdtempSync(join(tmpdir(), 'cirrus-enospc-'));
  const mnt = join(base, 'mnt');
  mkdirSync(mnt);
  let mounted = false;
  t.after(async () => {
    await beforeUnmount();
    // A lazy unmount as the fallback, so a failed test never leaves a mount behind.
    if (mounted && run('umount', [mnt]) !== null) run('umount', ['-l', mnt]);
    rmSync(base, { recursive: true, force: true });
  });
  const image = join(base, 'fs.img');
  const error =
    kind === 'tmpfs'
      ? run('mount', ['-t', 'tmpfs', '-o', `size=${FS_BYTES}`, 'tmpfs', mnt])
      : (run('truncate', ['-s', String(FS_BYTES), image]) ??
        run('mkfs.ext4', ['-q', '-F', image]) ??
        run('mount', ['-o', 'loop', image, mnt]));
  if (error === null) {
    mounted = true;
    return mnt;
  }
  t.skip(`cannot mount a small ${kind} filesystem here (${error}); needs root with mount permission`);
  return null;
}

/**
 * Space left free after filling: a few records' worth, so the disk runs out in the middle of a
 * group commit (a short write), not before it.
 */
const SLACK_BYTES = 40 * 1024;

/** Fills the filesystem with one file, all but SLACK_BYTES; returns its path. */
function fill(dir: string): string {
  const path = join(dir, 'filler');
  const fd = openSync(path, 'w');
  const chunk = Buffer.alloc(64 * 1024, 0xaa);
  try {
    for (let size = chunk.length; size >= 1; size = Math.floor(size / 2)) {
      for (;;) {
        try {
          const n = writeSync(fd, chunk, 0, size);
          if (n < size) break;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
          break;
        }
      }
    }
    ftruncateSync(fd, Math.max(0, fstatSync(fd).size - SLACK_BYTES));
  } finally {
    closeSync(fd);
  }
  return path;
}

function record(queue: number, n: number): Buffer {
  const b = Buffer.alloc(RECORD_BYTES, (queue * 31 + n) & 0xff);
  b.writeUInt32LE(queue, 0);
  b.writeUInt32LE(n, 4);
  return b;
}

async function fullDisk(t: TestContext, kind: FsKind): Promise<void> {
  const open: { store: MessageStore | null } = { store: null };
  const mnt = smallFilesystem(t, kind, async () => {
    await open.store?.close().catch(() => {});
  });
  if (mnt === null) return;
  const fsType = spawnSync('findmnt', ['-n', '-o', 'FSTYPE', mnt], { encoding: 'utf8' }).stdout.trim();
  assert.equal(fsType, kind === 'tmpfs' ? 'tmpfs' : 'ext4', `${mnt} is mounted as ${fsType}`);
  const dir = join(mnt, 'store');
  let store = await MessageStore.open({ dir, segmentBytes: SEGMENT_BYTES, maxMessageBytes: RECORD_BYTES, sync: { mode: 'always' } });
  open.store = store;
  /** What each queue holds, by offset, as acknowledged. */
  const acked: Buffer[][] = Array.from({ length: QUEUES }, () => []);
  let n = 0;

  /** One round of CONCURRENCY appends over the queues; returns the rejections. */
  const round = async (): Promise<unknown[]> => {
    const sent = Array.from({ length: CONCURRENCY }, (_, i) => {
      const queue = i % QUEUES;
      const data = record(queue, n++);
      return store.append('enospc', queue, data).then((offset) => ({ queue, offset, data }));
    });
    const settled = await Promise.allSettled(sent);
    for (const s of settled) {
      if (s.status === 'fulfilled') {
        assert.equal(acked[s.value.queue][s.value.offset], undefined, `offset ${s.value.offset} given twice`);
        acked[s.value.queue][s.value.offset] = s.value.data;
      }
    }
    return settled.filter((s): s is PromiseRejectedResult => s.status === 'rejected').map((s) => s.reason);
  };

  const checkReadable = async (when: string): Promise<void> => {
    for (let q = 0; q < QUEUES; q++) {
      const expected = acked[q];
      assert.equal(expected.length, Object.keys(expected).length, `${when}: queue ${q} acknowledged offsets have a gap`);
      assert.equal(store.endOffset('enospc', q), expected.length, `${when}: end offset of queue ${q}`);
      for (let offset = 0; offset < expected.length; offset += 100) {
        const got = await store.getRange('enospc', q, offset, 100);
        assert.equal(got.length, Math.min(100, expected.length - offset), `${when}: queue ${q} at ${offset}`);
        got.forEach((rec, i) => assert.ok(rec.equals(expected[offset + i]), `${when}: queue ${q} offset ${offset + i} differs`));
      }
      assert.deepEqual(await store.getRange('enospc', q, expected.length, 100), [], `${when}: nothing past the end`);
    }
  };

  // Some data before the disk fills.
  for (let i = 0; i < 5; i++) assert.deepEqual(await round(), []);
  await checkReadable('before full');

  const filler = fill(mnt);
  let failures: unknown[] = [];
  let rounds = 0;
  for (; rounds < MAX_ROUNDS && failures.length === 0; rounds++) failures = await round();
  assert.ok(failures.length > 0, `appends kept succeeding on a full ${FS_BYTES}-byte filesystem`);
  t.diagnostic(`${kind}: full after ${rounds} rounds; ${failures.length} of ${CONCURRENCY} appends rejected; acknowledged per queue: ${acked.map((q) => q.length).join(', ')}`);
  for (const err of failures) {
    assert.equal((err as { code?: unknown }).code, 'CIRRUS_STORE_NO_SPACE', `rejection: ${String(err)}`);
  }

  // Still full: still rejected, typed, and nothing half-written becomes visible.
  const again = await round();
  assert.ok(again.length > 0, 'appends succeeded while the disk was still full');
  for (const err of again) assert.equal((err as { code?: unknown }).code, 'CIRRUS_STORE_NO_SPACE');
  await checkReadable('while full');

  // Space returns: appends succeed again, on the same offsets sequence.
  rmSync(filler);
  for (let i = 0; i < 5; i++) assert.deepEqual(await round(), [], 'append failed after space returned');
  await checkReadable('after space returned');

  // And all of it survives a reopen.
  await store.close();
  store = await MessageStore.open({ dir, segmentBytes: SEGMENT_BYTES, maxMessageBytes: RECORD_BYTES, sync: { mode: 'always' } });
  open.store = store;
  await checkReadable('after reopen');
}

for (const kind of ['tmpfs', 'ext4 (loop device)'] as const) {
  test(`a real full ${kind} rejects appends with CIRRUS_STORE_NO_SPACE, stays readable, and recovers`, { timeout: 120_000 }, (t) =>
    fullDisk(t, kind),
  );
}
