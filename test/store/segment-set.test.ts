import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_OPEN_READ_FILES, MAX_READ_BATCH_SEGMENTS } from '../../src/store/constants.js';
import { nodeIo, type StoreFile, type StoreIo } from '../../src/store/io.js';
import { SegmentSet, type Segment } from '../../src/store/segment-set.js';

/** A promise and the function that settles it. */
function gate(): { wait: Promise<void>; open: () => void } {
  let open: () => void = () => undefined;
  const wait = new Promise<void>((resolve) => (open = resolve));
  return { wait, open };
}

/**
 * Segment files in memory (every byte 7). `holdOpen(path)` makes the next open of that path wait
 * for the returned gate; `holdClose` makes the close of the file opened then wait for another.
 */
function memoryIo(): { io: StoreIo; holdOpen: (path: string) => { opened: ReturnType<typeof gate>; closed: ReturnType<typeof gate> } } {
  const held = new Map<string, { opened: ReturnType<typeof gate>; closed: ReturnType<typeof gate> }>();
  const io: StoreIo = {
    ...nodeIo,
    async open(path) {
      const hold = held.get(path);
      held.delete(path);
      if (hold) await hold.opened.wait;
      let closing = false;
      const file: StoreFile = {
        writev: () => Promise.reject(new Error('read only')),
        read: () => Promise.reject(new Error('not used')),
        readBatch: async (buffers) => {
          if (closing) throw Object.assign(new Error('file used after close'), { code: 'EBADF' });
          for (const b of buffers) b.fill(7);
          return buffers.map((b) => b.byteLength);
        },
        datasync: () => Promise.resolve(),
        truncate: () => Promise.resolve(),
        size: () => Promise.resolve(1 << 20),
        async close() {
          closing = true;
          if (hold) await hold.closed.wait;
        },
      };
      return file;
    },
  };
  return {
    io,
    holdOpen(path) {
      const hold = { opened: gate(), closed: gate() };
      held.set(path, hold);
      return hold;
    },
  };
}

test('segment set: a handle another read opened meanwhile is taken into use before anything awaits, so trimming the LRU cannot close it under its reader', async () => {
  const { io, holdOpen } = memoryIo();
  const set = new SegmentSet(io, '/nowhere', 3, 7, false);
  const segs: Segment[] = Array.from({ length: MAX_OPEN_READ_FILES + 3 }, (_, k) => ({ start: k << 20, size: 1 << 20, lastWriteMs: 0 }));
  for (const seg of segs) set.adopt(seg);
  const read = (seg: Segment): Promise<Buffer[]> => set.readBatch([seg], [0], [16], false);
  const [x, y, ...others] = segs.slice(0, -1); // the last is the active segment, never trimmed
  const idle = others.slice(0, MAX_OPEN_READ_FILES);
  for (const seg of idle) await read(seg);
  // Two reads of x at once: both open it; the late one's opening waits until the other's is cached.
  const second = holdOpen(set.pathOf(x.start));
  const late = read(x);
  await read(x);
  for (const seg of idle) await read(seg); // x is now the least recently used, and idle
  // The second opening finds x's handle cached; closing its own copy takes a while, and a read
  // of y meanwhile pushes the LRU past its bound.
  second.opened.open();
  await new Promise((resolve) => setImmediate(resolve));
  await read(y);
  second.closed.open();
  const got = await late;
  assert.deepEqual(got, [Buffer.alloc(16, 7)], 'the late read of x got its bytes');
  assert.ok(set.openFiles <= MAX_OPEN_READ_FILES + 1, `${set.openFiles} handles kept`);
  await set.closeAll();
});

test('segment set: a read batch across more than MAX_READ_BATCH_SEGMENTS segments is refused (a broken invariant), opening nothing', async () => {
  const { io } = memoryIo();
  let opens = 0;
  const counting: StoreIo = { ...io, open: (path, mode) => (opens++, io.open(path, mode)) };
  const set = new SegmentSet(counting, '/nowhere', 3, 7, false);
  const segs: Segment[] = Array.from({ length: MAX_READ_BATCH_SEGMENTS + 2 }, (_, k) => ({ start: k << 20, size: 1 << 20, lastWriteMs: 0 }));
  for (const seg of segs) set.adopt(seg);
  const over = segs.slice(0, MAX_READ_BATCH_SEGMENTS + 1);
  await assert.rejects(
    set.readBatch(
      over,
      over.map(() => 0),
      over.map(() => 8),
      false,
    ),
    /at most MAX_READ_BATCH_SEGMENTS/,
  );
  assert.equal(opens, 0);
  const most = segs.slice(0, MAX_READ_BATCH_SEGMENTS);
  const got = await set.readBatch(
    most,
    most.map(() => 0),
    most.map(() => 8),
    true,
  );
  assert.deepEqual(got, most.map(() => Buffer.alloc(8, 7)));
  assert.equal(opens, MAX_READ_BATCH_SEGMENTS);
  await set.closeAll();
});
