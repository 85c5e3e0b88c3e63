import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import fc from 'fast-check';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { MessageStore, nodeIo, type StoreIo } from '../../src/store/index.js';
import { APPEND_QUIET_MS, HISTORY_READ_PREFETCH, HISTORY_READ_PREFETCH_IDLE, WRITE_CHUNK_BYTES, WRITE_CHUNK_POOL_SIZE } from '../../src/store/constants.js';
import { defaultColdReadConcurrency, historyReadCap, libuvThreadpoolSize } from '../../src/store/options.js';
import { MemoryTier, ReadAhead, type Chunk } from '../../src/store/tiered-cache.js';
import { FaultyIo, descriptorsUnder, payload, removeDir, tempDir } from './helpers.js';

const QUEUES = 8;
const PER_QUEUE = 300;
const BODY = 3000;
/** Record and segment limits of every store in this file: small segments, so reads cross files. */
const SHAPE = { maxMessageBytes: 8192, segmentBytes: 1 << 20 } as const;

async function fill(s: MessageStore): Promise<void> {
  for (let i = 0; i < PER_QUEUE; i += 50) {
    await Promise.all(
      Array.from({ length: QUEUES * 50 }, (_, k) => {
        const q = k % QUEUES;
        const o = i + Math.floor(k / QUEUES);
        return s.append('t', q, payload('t', q, o, BODY));
      }),
    );
  }
}

async function checkAll(s: MessageStore): Promise<void> {
  for (let q = 0; q < QUEUES; q++) {
    for (let o = 0; o < PER_QUEUE; o += 100) {
      const got = await s.getRange('t', q, o, 100);
      assert.equal(got.length, 100);
      got.forEach((b, k) => assert.deepEqual(b, payload('t', q, o + k, BODY), `t/${q}@${o + k}`));
    }
  }
}

test('tiered cache: with a small memory budget, history comes from the fast tier, and all bytes are right', async () => {
  const dir = tempDir();
  const fastTierDir = tempDir('cirrus-fast-');
  const opts = { dir, fastTierDir, memoryCacheBytes: 2 << 20, fastTierBytes: 64 << 20, ...SHAPE };
  const s = await MessageStore.open(opts);
  try {
    await fill(s); // about 7 MiB, well past the 2 MiB memory budget
    // Let the fast-tier writes land (generous: the machine may be loaded).
    for (let i = 0; i < 500 && (s.stats().cache.fastTier?.bytes ?? 0) === 0; i++) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 200));
    await checkAll(s);
    const st = s.stats();
    assert.ok(st.cache.memory.misses > 0, 'history fell out of memory');
    assert.ok(st.cache.memory.bytes <= (2 << 20) + (1 << 20) * 2, `memory stays near its budget (${st.cache.memory.bytes})`);
    assert.ok(st.cache.fastTier !== null && st.cache.fastTier.hits > 0, `fast tier served reads (${JSON.stringify(st.cache.fastTier)})`);
    // Deleting the fast tier under a running store loses nothing: reads fall through to the log.
    rmSync(fastTierDir, { recursive: true, force: true });
    await checkAll(s);
  } finally {
    await s.close();
  }
  // Deleting it between runs loses nothing either.
  rmSync(fastTierDir, { recursive: true, force: true });
  const again = await MessageStore.open(opts);
  try {
    await checkAll(again);
  } finally {
    await again.close();
    removeDir(dir);
    removeDir(fastTierDir);
  }
});

/** The fast-tier cache files in `dir` and their total size. */
function cacheFiles(dir: string): { count: number; bytes: number } {
  const files = readdirSync(dir).filter((n) => n.endsWith('.ftc'));
  return { count: files.length, bytes: files.reduce((n, f) => n + statSync(join(dir, f)).size, 0) };
}

/** Waits until the fast tier has taken what it was offered (its writes land in the background). */
async function fastTierSettled(s: MessageStore): Promise<void> {
  let last = -1;
  for (let i = 0; i < 200; i++) {
    const bytes = s.stats().cache.fastTier?.bytes ?? 0;
    if (bytes === last && bytes > 0) return;
    last = bytes;
    await new Promise((r) => setTimeout(r, 25));
  }
}

test('tiered cache: stats count read-ahead hits apart, so records read from the log ahead of a reader are not taken for the tail in memory', async () => {
  const dir = tempDir();
  const opts = { dir, memoryCacheBytes: 16 << 20, ...SHAPE };
  const w = await MessageStore.open(opts);
  await Promise.all(Array.from({ length: 300 }, (_, i) => w.append('t', 0, payload('t', 0, i, 4000))));
  await w.close();
  const s = await MessageStore.open(opts); // memory holds nothing: every record comes from the log
  try {
    for (let o = 0; o < 300; o += 100) {
      const got = await s.getRange('t', 0, o, 100);
      got.forEach((b, k) => assert.deepEqual(b, payload('t', 0, o + k, 4000)));
    }
    const m = s.stats().cache.memory;
    assert.ok(m.readAheadHits !== undefined && m.readAheadHits > 0, `read-ahead served some (${JSON.stringify(m)})`);
    assert.equal(m.hits, m.readAheadHits, 'every hit was a read-ahead one: no chunk held these records');
  } finally {
    await s.close();
    removeDir(dir);
  }
});

test('tiered cache: a fast-tier budget below one cache file (64 MiB) is honoured, on disk and in stats', async () => {
  const dir = tempDir();
  const fastTierDir = tempDir('cirrus-fast-');
  const budget = 3 << 20;
  const s = await MessageStore.open({ dir, fastTierDir, memoryCacheBytes: 1 << 20, fastTierBytes: budget, ...SHAPE });
  try {
    await fill(s);
    await fill(s); // about 14 MiB through the tiers
    await fastTierSettled(s);
    const st = s.stats().cache.fastTier;
    assert.ok(st !== null && st.bytes > 0, 'the tier holds something');
    assert.ok(st.bytes <= budget, `stats: ${st.bytes} <= ${budget}`);
    const onDisk = cacheFiles(fastTierDir);
    assert.ok(onDisk.count > 1 && onDisk.bytes <= budget, `on disk: ${onDisk.count} files, ${onDisk.bytes} bytes <= ${budget}`);
  } finally {
    await s.close();
    removeDir(dir);
    removeDir(fastTierDir);
  }
});

test('tiered cache: a fast-tier file that cannot be emptied is still tracked, so close() removes it (no descriptor or file left behind)', async () => {
  const dir = tempDir();
  const fastTierDir = tempDir('cirrus-fast-');
  const io = new FaultyIo();
  io.inject({ op: 'truncate', code: 'EIO', pathIncludes: '.ftc', times: 1000 });
  const s = await MessageStore.open({ dir, io, fastTierDir, memoryCacheBytes: 1 << 20, fastTierBytes: 16 << 20, ...SHAPE });
  try {
    await fill(s);
    await new Promise((r) => setTimeout(r, 200));
    await checkAll(s);
    assert.ok(io.calls.truncate > 0, 'the tier tried to empty a file');
  } finally {
    await s.close();
  }
  try {
    assert.deepEqual(cacheFiles(fastTierDir), { count: 0, bytes: 0 }, 'close() removed every cache file');
    assert.deepEqual(descriptorsUnder(fastTierDir), [], 'no descriptor of a cache file stays open');
  } finally {
    removeDir(dir);
    removeDir(fastTierDir);
  }
});

test('tiered cache: a fast-tier directory that cannot be listed does not keep the store from opening (it is a cache)', async () => {
  const dir = tempDir();
  const fastTierDir = tempDir('cirrus-fast-');
  const io = new FaultyIo();
  io.readdir = async (path: string) => {
    if (path === fastTierDir) throw Object.assign(new Error('EIO: injected readdir'), { code: 'EIO' });
    return nodeIo.readdir(path);
  };
  const s = await MessageStore.open({ dir, io, fastTierDir, memoryCacheBytes: 1 << 20, ...SHAPE });
  try {
    await fill(s);
    await checkAll(s);
  } finally {
    await s.close();
    removeDir(dir);
    removeDir(fastTierDir);
  }
});

test('tiered cache: garbage in fast-tier files is caught by the CRC and read from the log instead', async () => {
  const dir = tempDir();
  const fastTierDir = tempDir('cirrus-fast-');
  const s = await MessageStore.open({ dir, fastTierDir, memoryCacheBytes: 1 << 20, fastTierBytes: 64 << 20, ...SHAPE });
  try {
    await fill(s);
    for (let i = 0; i < 500 && (s.stats().cache.fastTier?.bytes ?? 0) === 0; i++) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 200));
    const files = readdirSync(fastTierDir);
    assert.ok(files.length > 0);
    for (const f of files) writeFileSync(join(fastTierDir, f), Buffer.alloc(8 << 20, 0xab));
    await checkAll(s);
  } finally {
    await s.close();
    removeDir(dir);
    removeDir(fastTierDir);
  }
});

test('tiered cache: a cold reader is read ahead, so its next reads hit memory', async () => {
  const { dir, s } = await filledStore(4 << 20);
  try {
    const before = s.stats().cache.memory;
    // Read queue 3 from offset 0 in small steps.
    for (let o = 0; o < 100; o += 10) {
      const got = await s.getRange('t', 3, o, 10);
      got.forEach((b, k) => assert.deepEqual(b, payload('t', 3, o + k, BODY)));
    }
    const after = s.stats().cache.memory;
    const misses = after.misses - before.misses;
    const hits = after.hits - before.hits;
    assert.ok(misses <= 10, `only the first read goes to disk (misses ${misses})`);
    assert.ok(hits >= 90, `the rest come from read-ahead (hits ${hits})`);
  } finally {
    await s.close();
    removeDir(dir);
  }
});

test('read-ahead holds its records, not the spans they were read with', async () => {
  // fill() interleaves 8 queues, so a cold read of queue 3 coalesces about 8 x the bytes it keeps:
  // kept as views, read-ahead's bodies would pin all of it while its budget counts an eighth.
  const { dir, s } = await filledStore(4 << 20);
  try {
    const first = await s.getRange('t', 3, 0, 10);
    const cold = new Set(first.map((b) => b.buffer));
    const spanBytes = [...cold].reduce((n, ab) => n + ab.byteLength, 0);
    assert.ok(spanBytes >= 8 * 10 * BODY * 0.8, `the cold read coalesced the other queues' records too (${spanBytes} bytes)`);
    const before = s.stats().cache.memory;
    const ahead = await s.getRange('t', 3, 10, 90);
    assert.equal(s.stats().cache.memory.hits - before.hits, 90, 'all 90 from read-ahead');
    ahead.forEach((b, k) => assert.deepEqual(b, payload('t', 3, 10 + k, BODY)));
    const held = new Set(ahead.map((b) => b.buffer));
    for (const ab of held) assert.ok(!cold.has(ab), 'read-ahead bodies are not views of the spans the reader was given');
    const heldBytes = [...held].reduce((n, ab) => n + ab.byteLength, 0);
    assert.ok(heldBytes <= 100 * BODY * 1.25, `read-ahead keeps about its 100 bodies alive (${heldBytes} bytes for ${100 * BODY})`);
  } finally {
    await s.close();
    removeDir(dir);
  }
});

test('read-ahead keeps views of dense spans: a queue written alone is not copied again', async () => {
  const dir = tempDir();
  const s = await MessageStore.open({ dir, memoryCacheBytes: 4 << 20, ...SHAPE });
  try {
    // 200 records of one queue back to back, then enough other traffic to push them out of memory.
    for (let o = 0; o < 200; o += 50) await Promise.all(Array.from({ length: 50 }, (_, k) => s.append('dense', 0, payload('dense', 0, o + k, BODY))));
    for (let round = 0; round < 8; round++) await Promise.all(Array.from({ length: 64 }, (_, k) => s.append('bulk', k, payload('bulk', k, round, 8000))));
    const before = s.stats().cache.memory;
    const first = await s.getRange('dense', 0, 0, 10);
    assert.equal(s.stats().cache.memory.misses - before.misses, 10, 'the first read went to disk');
    const spans = new Set(first.map((b) => b.buffer));
    const ahead = await s.getRange('dense', 0, 10, 90);
    ahead.forEach((b, k) => assert.deepEqual(b, payload('dense', 0, 10 + k, BODY)));
    assert.ok(ahead.some((b) => spans.has(b.buffer)), 'read-ahead bodies are views of the span the reader was given (no copy)');
  } finally {
    await s.close();
    removeDir(dir);
  }
});

test('memory tier: getRange counts its lookups before it returns its promise (the benchmark\'s hot probes rely on it)', async () => {
  const { dir, s } = await filledStore(64 << 20);
  try {
    const before = s.stats().cache.memory;
    const pending = s.getRange('t', 5, 200, 100);
    const after = s.stats().cache.memory;
    assert.equal(after.hits + after.misses - before.hits - before.misses, 100, 'all 100 lookups counted synchronously');
    assert.equal(after.hits - before.hits, 100, 'the tail is in memory');
    const got = await pending;
    got.forEach((b, k) => assert.deepEqual(b, payload('t', 5, 200 + k, BODY)));
    const later = s.stats().cache.memory;
    assert.equal(later.hits + later.misses, after.hits + after.misses, 'nothing counted after the promise was returned');
  } finally {
    await s.close();
    removeDir(dir);
  }
});

/** A new store holding fill()'s records, open, with `memoryCacheBytes` (the default when omitted). */
async function filledStore(memoryCacheBytes?: number): Promise<{ dir: string; s: MessageStore }> {
  const dir = tempDir();
  const s = await MessageStore.open({ dir, memoryCacheBytes, ...SHAPE });
  await fill(s);
  return { dir, s };
}

/** A closed store directory holding fill()'s records, for tests that reopen it cold. */
async function filledDir(): Promise<string> {
  const { dir, s } = await filledStore();
  await s.close();
  return dir;
}

/**
 * The real file system, counting reads of segment files in flight (each held 5 ms so they overlap);
 * a read batch (a cold getRange's spans) is one read, as it is one thread-pool job.
 */
function countingIo(): { io: StoreIo; maxInFlight: () => number; resetMax: () => void; reads: () => number; openSegments: () => number; prefetches: Set<number> } {
  /** The prefetch depths read batches were given (cleared by the tests as they go). */
  const prefetches = new Set<number>();
  let inFlight = 0;
  let max = 0;
  let reads = 0;
  let openSegments = 0;
  async function held<T>(call: () => Promise<T>): Promise<T> {
    inFlight++;
    reads++;
    max = Math.max(max, inFlight);
    try {
      await new Promise((resolve) => setTimeout(resolve, 5));
      return await call();
    } finally {
      inFlight--;
    }
  }
  const io: StoreIo = {
    ...nodeIo,
    async open(path, mode) {
      const file = await nodeIo.open(path, mode);
      if (!path.endsWith('.seg')) return file;
      openSegments++;
      return {
        writev: (buffers, position) => file.writev(buffers, position),
        datasync: () => file.datasync(),
        truncate: (length) => file.truncate(length),
        size: () => file.size(),
        close() {
          openSegments--;
          return file.close();
        },
        read: (buf, offset, length, position) => held(() => file.read(buf, offset, length, position)),
        readBatch: (buffers, positions, how) => {
          prefetches.add(how?.prefetch ?? 0);
          return held(() => file.readBatch(buffers, positions, how));
        },
      };
    },
  };
  return { io, maxInFlight: () => max, resetMax: () => (max = inFlight), reads: () => reads, openSegments: () => openSegments, prefetches };
}

/** 24 cold reads at once: 8 queues x 3 ranges, each checked byte for byte. */
async function readAllRanges(s: MessageStore): Promise<void> {
  const jobs: Promise<void>[] = [];
  for (let q = 0; q < QUEUES; q++) {
    for (let o = 0; o < PER_QUEUE; o += 100) {
      jobs.push(
        s.getRange('t', q, o, 100).then((got) => {
          assert.equal(got.length, 100);
          got.forEach((b, k) => assert.deepEqual(b, payload('t', q, o + k, BODY), `t/${q}@${o + k}`));
        }),
      );
    }
  }
  await Promise.all(jobs);
}

/** Appends to a queue of its own until stopped; resolves `started` once the first is durable. */
function appendLoop(s: MessageStore): { started: Promise<void>; stop: () => Promise<void> } {
  let stopping = false;
  let markStarted: () => void = () => undefined;
  const started = new Promise<void>((resolve) => (markStarted = resolve));
  const done = (async () => {
    for (let o = 0; !stopping; o++) {
      await s.append('t', QUEUES, payload('t', QUEUES, o, BODY));
      markStarted();
    }
  })();
  return {
    started,
    stop: async () => {
      stopping = true;
      await done;
    },
  };
}

test('cold reads: while appends are under way, coldReadConcurrency bounds history reads in flight, not reads of recent data; every byte still comes back right', async () => {
  const dir = await filledDir();
  try {
    // The 7.2 MB log is all "recent" (within 4 x memoryCacheBytes of its end) with a 4 MiB memory
    // budget, and all history with none (none also turns read-ahead off, so every range is read).
    const defaultLimit = defaultColdReadConcurrency(process.env.UV_THREADPOOL_SIZE);
    for (const [limit, memoryCacheBytes, check] of [
      [2, 0, (max: number) => max === Math.min(2, historyReadCap(libuvThreadpoolSize(process.env.UV_THREADPOOL_SIZE)))],
      [undefined, 0, (max: number) => max === defaultLimit],
      // Asked for more than the pool: capped at its size - 1, one thread stays free for flushes.
      [1024, 0, (max: number) => max === historyReadCap(libuvThreadpoolSize(process.env.UV_THREADPOOL_SIZE))],
      [2, 4 << 20, (max: number) => max > 2],
    ] as const) {
      const c = countingIo();
      const s = await MessageStore.open({ dir, io: c.io, memoryCacheBytes, ...SHAPE, coldReadConcurrency: limit });
      const appends = appendLoop(s);
      try {
        await appends.started;
        const readsBefore = c.reads();
        await readAllRanges(s);
        assert.ok(c.reads() - readsBefore >= 24, `every range went to the log (${c.reads() - readsBefore} reads)`);
        assert.ok(check(c.maxInFlight()), `coldReadConcurrency ${limit}, memory ${memoryCacheBytes}: ${c.maxInFlight()} reads were in flight at most`);
      } finally {
        await appends.stop();
        await s.close();
      }
    }
  } finally {
    removeDir(dir);
  }
});

test('cold reads: with appends quiet for APPEND_QUIET_MS, history reads may use all of libuv\'s pool but one thread and prefetch deeper; the first append brings both back', async () => {
  const dir = await filledDir();
  const c = countingIo();
  const s = await MessageStore.open({ dir, io: c.io, memoryCacheBytes: 0, ...SHAPE, coldReadConcurrency: 1 });
  // readAllRanges starts 24 reads at once: a pool larger than that cannot be filled.
  const idle = Math.min(historyReadCap(libuvThreadpoolSize(process.env.UV_THREADPOOL_SIZE)), QUEUES * 3);
  try {
    // Nothing appended since open: quiet.
    const quietReads = readAllRanges(s);
    await new Promise((resolve) => setTimeout(resolve, 2)); // reads under way (each is held 5 ms)
    const during = s.stats().historyReads;
    assert.equal(during.limit, historyReadCap(libuvThreadpoolSize(process.env.UV_THREADPOOL_SIZE)), 'stats: the limit is the pool but one thread');
    assert.ok(during.inFlight >= 1 && during.inFlight <= during.limit, `stats: ${during.inFlight} in flight`);
    await quietReads;
    assert.equal(c.maxInFlight(), idle, 'quiet: as many history reads as libuv has threads, but one');
    assert.deepEqual([...c.prefetches], [HISTORY_READ_PREFETCH_IDLE], 'quiet: batches announce HISTORY_READ_PREFETCH_IDLE reads ahead');
    const { batches, jobs, ...after } = s.stats().historyReads;
    assert.deepEqual({ ...after, limit: 0 }, { limit: 0, inFlight: 0, waiting: 0, nativeBatches: nodeIo.nativeReads === true, pageCache: nodeIo.nativeReads === true ? 'drop' : 'keep' }, 'stats: nothing left in flight or waiting');
    // 24 ranges (each a batch larger than HISTORY_MERGE_MAX_BYTES: a job of its own), `idle` at once.
    assert.ok(batches >= QUEUES * 3 && jobs >= idle && jobs <= batches, `stats: ${batches} batches in ${jobs} jobs`);
    // Appends under way: back to coldReadConcurrency.
    const appends = appendLoop(s);
    await appends.started;
    c.resetMax();
    c.prefetches.clear();
    await readAllRanges(s);
    assert.equal(c.maxInFlight(), 1, 'appends under way: coldReadConcurrency');
    assert.deepEqual([...c.prefetches], [HISTORY_READ_PREFETCH], 'appends under way: HISTORY_READ_PREFETCH reads ahead');
    assert.equal(s.stats().historyReads.limit, 1, 'stats: coldReadConcurrency while appending');
    // Appends stop; once quiet for longer than APPEND_QUIET_MS, the pool again.
    await appends.stop();
    await new Promise((resolve) => setTimeout(resolve, APPEND_QUIET_MS + 20));
    c.resetMax();
    c.prefetches.clear();
    await readAllRanges(s);
    assert.equal(c.maxInFlight(), idle, 'quiet again: the pool but one thread');
    assert.deepEqual([...c.prefetches], [HISTORY_READ_PREFETCH_IDLE], 'quiet again: the deeper prefetch');
  } finally {
    await s.close();
    removeDir(dir);
  }
});

test('cold reads: reads under way or waiting for a slot when the store closes end with CIRRUS_STORE_CLOSED or their data, and open no file', async () => {
  const dir = await filledDir();
  const c = countingIo();
  const s = await MessageStore.open({ dir, io: c.io, memoryCacheBytes: 0, ...SHAPE, coldReadConcurrency: 1 });
  try {
    const outcomes = Array.from({ length: QUEUES }, (_, q) =>
      s.getRange('t', q, 0, 100).then(
        (got) => {
          got.forEach((b, k) => assert.deepEqual(b, payload('t', q, k, BODY)));
          return 'data';
        },
        (e: Error & { code?: string }) => e.code ?? e.message,
      ),
    );
    await new Promise((resolve) => setTimeout(resolve, 2)); // the first reads are under way (one batch each), the rest wait
    const { inFlight, waiting } = s.stats().historyReads;
    // Nothing appended since open: quiet, so the pool but one thread may read at once.
    const idle = historyReadCap(libuvThreadpoolSize(process.env.UV_THREADPOOL_SIZE));
    assert.ok(inFlight >= 1 && inFlight + waiting <= QUEUES && (idle >= QUEUES || waiting >= 1), `reads under way ${inFlight}, waiting ${waiting}`);
    await s.close();
    const ended = await Promise.all(outcomes);
    assert.ok(ended.every((o) => o === 'data' || o === 'CIRRUS_STORE_CLOSED'), ended.join(', '));
    assert.ok(ended.filter((o) => o === 'CIRRUS_STORE_CLOSED').length >= waiting, `the ${waiting} waiting reads end closed: ${ended.join(', ')}`);
    assert.equal(c.openSegments(), 0, 'no segment file left open');
  } finally {
    removeDir(dir);
  }
});

test('cold reads: the default leaves one of libuv\'s threads to the group commit, and is 3 at most', () => {
  assert.equal(defaultColdReadConcurrency(undefined), 3, 'libuv default pool of 4');
  assert.equal(defaultColdReadConcurrency('16'), 3);
  assert.equal(defaultColdReadConcurrency('3'), 2);
  assert.equal(defaultColdReadConcurrency('2'), 1);
  assert.equal(defaultColdReadConcurrency('1'), 1, 'never 0');
  // As libuv reads the variable: atoi, 0 -> 1 thread, negative wraps (unsigned) to the 1024 clamp.
  assert.equal(libuvThreadpoolSize('8 threads'), 8);
  assert.equal(libuvThreadpoolSize('many'), 1);
  assert.equal(libuvThreadpoolSize('0'), 1);
  assert.equal(libuvThreadpoolSize('5000'), 1024);
  assert.equal(libuvThreadpoolSize('-3'), 1024);
});

test('cold reads: a bad coldReadConcurrency is refused, naming the option, before anything is created', async () => {
  for (const bad of [0, -1, 1.5, 1025, Number.NaN, '4' as unknown as number]) {
    const dir = join(tempDir(), 'store');
    await assert.rejects(MessageStore.open({ dir, coldReadConcurrency: bad }), (e: Error & { code?: string; argument?: string }) => {
      assert.equal(e.code, 'CIRRUS_STORE_INVALID_ARGUMENT');
      assert.match(e.message, /coldReadConcurrency/);
      return true;
    });
    assert.throws(() => readdirSync(dir), { code: 'ENOENT' }, 'no directory was created');
    removeDir(join(dir, '..'));
  }
});

function chunk(start: number, used: number, cap = 100): Chunk {
  return { start, buf: Buffer.alloc(cap), used, sealed: true, segStart: 0 };
}

test('memory tier: finds by position, evicts oldest flushed chunks only, rolls back', () => {
  const m = new MemoryTier(250);
  m.add(chunk(0, 100));
  m.add(chunk(100, 100));
  m.add(chunk(200, 100));
  const last = chunk(300, 40);
  last.sealed = false;
  m.add(last);
  assert.equal(m.find(150)?.start, 100);
  assert.equal(m.find(339)?.start, 300);
  assert.equal(m.find(340), undefined);
  // 400 bytes > 250: chunk 0 (flushed up to 100 <= 150) goes; chunk 1 ends at 200 > 150, not flushed, stays.
  assert.deepEqual(m.evict(150).map((c) => c.start), [0]);
  assert.equal(m.find(50), undefined);
  assert.deepEqual(m.evict(1000).map((c) => c.start), [100]);
  m.rollback(250);
  assert.equal(m.find(260), undefined);
  assert.equal(m.find(240)?.start, 200);
  assert.equal(m.last()?.used, 50);
  assert.equal(m.last()?.sealed, false);
});

test('memory tier: a chunk evicted or dropped below retention is no longer referenced, so its buffer can be collected', async () => {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const m = new MemoryTier(300);
  // Chunks of records over WRITE_CHUNK_BYTES have buffers of their own size, never pooled: a tier
  // that kept them referenced held up to a thousand of them past its budget.
  const refs: WeakRef<Buffer>[] = [];
  const fill = (from: number, n: number): void => {
    for (let k = from; k < from + n; k++) {
      const c = chunk(k * 100, 100);
      refs.push(new WeakRef(c.buf));
      m.add(c);
    }
  };
  fill(0, 8);
  assert.deepEqual(m.evict(800).map((c) => c.start), [0, 100, 200, 300, 400], 'evicted down to the budget');
  fill(8, 4);
  m.dropBelow(1000); // retention: chunks 5..9 go
  assert.equal(m.find(950), undefined);
  assert.equal(m.find(1050)?.start, 1000);
  for (let k = 0; k < 3; k++) {
    await new Promise((r) => setImmediate(r));
    gc();
  }
  assert.deepEqual(
    refs.map((r) => r.deref() === undefined),
    refs.map((_, k) => k < 10),
    'evicted and dropped buffers are collected; the live ones stay',
  );
  assert.equal(m.bytes, 200);
});

test('memory tier: evicted write buffers are reused up to the pool size, and released on demand', () => {
  const m = new MemoryTier(1);
  const a = m.allocate(100);
  assert.equal(a.length, WRITE_CHUNK_BYTES, 'a standard write chunk');
  for (let i = 0; i < WRITE_CHUNK_POOL_SIZE + 3; i++) m.recycle({ start: 0, buf: Buffer.allocUnsafeSlow(WRITE_CHUNK_BYTES), used: 0, sealed: true, segStart: 0 });
  assert.equal(m.pooled, WRITE_CHUNK_POOL_SIZE, 'the pool keeps at most its size');
  const reused = m.allocate(10);
  assert.equal(m.pooled, WRITE_CHUNK_POOL_SIZE - 1, 'an allocation takes a pooled buffer');
  assert.equal(reused.length, WRITE_CHUNK_BYTES);
  m.releasePool();
  assert.equal(m.pooled, 0);
  assert.equal(m.allocate(10).length, WRITE_CHUNK_BYTES, 'allocations go on after a release');
});

test('store: once appends are quiet, a read releases the pooled write buffers; appends refill it', async () => {
  const dir = tempDir();
  const s = await MessageStore.open({ dir, memoryCacheBytes: 4 << 20, ...SHAPE });
  try {
    await fill(s); // about 7 MiB through a 3 MiB tail: chunks are evicted and pooled
    const mem = (s as unknown as { mem: MemoryTier }).mem;
    assert.ok(mem.pooled > 0, `evicted chunks were pooled (${mem.pooled})`);
    await s.getRange('t', 0, 0, 1);
    assert.ok(mem.pooled > 0, 'not while appends are recent');
    await new Promise((r) => setTimeout(r, APPEND_QUIET_MS + 20));
    await s.getRange('t', 0, 0, 1);
    assert.equal(mem.pooled, 0, 'released once appends are quiet');
    await fill(s);
    assert.ok(mem.pooled > 0, 'appends pool evicted chunks again');
  } finally {
    await s.close();
    removeDir(dir);
  }
});

test('read-ahead: records are released as the reader passes them; the budget holds', () => {
  const ra = new ReadAhead(1000);
  ra.put(1, 10, [Buffer.alloc(100), Buffer.alloc(100), Buffer.alloc(100)]);
  assert.equal(ra.bytes, 300);
  assert.equal(ra.take(1, 11)?.length, 100);
  assert.equal(ra.bytes, 300, 'a put counts as one until its last body is passed');
  ra.extend(1, 13, 0, 50, () => Buffer.alloc(50));
  assert.equal(ra.bytes, 350);
  assert.equal(ra.take(1, 12)?.length, 100);
  assert.equal(ra.bytes, 50, 'offsets 10-12 released together; the rescued copy counts alone');
  assert.equal(ra.take(1, 13)?.length, 50);
  assert.equal(ra.bytes, 0);
  ra.put(1, 10, [Buffer.alloc(100), Buffer.alloc(100)], 700);
  assert.equal(ra.bytes, 700, 'a put counts the memory its views hold, not only their bytes');
  assert.equal(ra.take(1, 9), undefined);
  assert.equal(ra.bytes, 0, 'a reader going back drops the queue');
  ra.put(1, 10, [Buffer.alloc(100)], 1001);
  assert.equal(ra.bytes, 0, 'a put holding more than the whole budget is not kept');
  assert.throws(() => ra.put(1, 10, [Buffer.alloc(100)], 99), /holds at least its bodies/);
  ra.put(1, 10, [Buffer.alloc(100), Buffer.alloc(100), Buffer.alloc(100)]);
  assert.equal(ra.take(1, 10)?.length, 100);
  assert.equal(ra.take(1, 9), undefined);
  ra.put(2, 0, [Buffer.alloc(800)]);
  ra.put(3, 0, [Buffer.alloc(500)]);
  assert.ok(ra.bytes <= 1000);
  assert.equal(ra.take(3, 0)?.length, 500);
});

test('read-ahead (property): take, put, extend and drop agree with a plain per-queue model; bytes always add up', () => {
  type Op =
    | { kind: 'put'; key: number; offset: number; sizes: number[]; extra: number }
    | { kind: 'take'; key: number; delta: number }
    | { kind: 'extend'; key: number; delta: number; size: number }
    | { kind: 'drop'; key: number };
  const key = fc.integer({ min: 1, max: 3 });
  const op: fc.Arbitrary<Op> = fc.oneof(
    fc.record({ kind: fc.constant('put' as const), key, offset: fc.nat({ max: 50 }), sizes: fc.array(fc.integer({ min: 1, max: 60 }), { maxLength: 8 }), extra: fc.nat({ max: 120 }) }),
    fc.record({ kind: fc.constant('take' as const), key, delta: fc.integer({ min: -1, max: 4 }) }),
    fc.record({ kind: fc.constant('extend' as const), key, delta: fc.integer({ min: -1, max: 1 }), size: fc.integer({ min: 1, max: 60 }) }),
    fc.record({ kind: fc.constant('drop' as const), key }),
  );
  // Each body is filled with its offset, so a wrong body is visible.
  const body = (offset: number, size: number): Buffer => Buffer.alloc(size, offset & 0xff);
  fc.assert(
    fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
      const BUDGET = 400;
      const ra = new ReadAhead(BUDGET);
      // Model: per key, the offset of the first buffered body and the bodies, oldest key first;
      // the first `shared` bodies are a put's, held together as `sharedBytes` until all are passed.
      type Entry = { offset: number; bodies: Buffer[]; shared: number; sharedBytes: number };
      const model = new Map<number, Entry>();
      const bytesOf = (e: Entry): number => (e.shared > 0 ? e.sharedBytes : 0) + e.bodies.slice(e.shared).reduce((n, b) => n + b.length, 0);
      const total = (): number => [...model.values()].reduce((n, e) => n + bytesOf(e), 0);
      const evictFor = (bytes: number, keep: number | null): void => {
        while (total() + bytes > BUDGET && model.size > 0) {
          const oldest = model.keys().next().value as number;
          if (oldest === keep) break;
          model.delete(oldest);
        }
      };
      for (const o of ops) {
        const e = model.get(o.key);
        if (o.kind === 'put') {
          const bodies = o.sizes.map((n, i) => body(o.offset + i, n));
          const bytes = bodies.reduce((n, b) => n + b.length, 0) + o.extra;
          ra.put(o.key, o.offset, bodies.slice(), bytes);
          model.delete(o.key);
          if (bodies.length > 0 && bytes <= BUDGET) {
            evictFor(bytes, null);
            model.set(o.key, { offset: o.offset, bodies, shared: bodies.length, sharedBytes: bytes });
          }
        } else if (o.kind === 'take') {
          const offset = (e?.offset ?? 0) + o.delta;
          const got = ra.take(o.key, offset);
          let want: Buffer | undefined;
          if (e) {
            const i = offset - e.offset;
            if (i < 0 || i >= e.bodies.length) model.delete(o.key);
            else {
              want = e.bodies[i];
              e.bodies = e.bodies.slice(i + 1);
              e.shared = Math.max(0, e.shared - (i + 1));
              e.offset = offset + 1;
              if (e.bodies.length === 0) model.delete(o.key);
            }
          }
          assert.deepEqual(got, want);
        } else if (o.kind === 'extend') {
          const offset = e ? e.offset + e.bodies.length + o.delta : 5 + o.delta;
          ra.extend(o.key, offset, 5, o.size, () => body(offset, o.size));
          const continues = e ? e.offset + e.bodies.length === offset : offset === 5;
          if (continues && o.size <= BUDGET / 4) {
            evictFor(o.size, o.key);
            if (total() + o.size <= BUDGET) {
              const now = model.get(o.key);
              if (now) now.bodies.push(body(offset, o.size));
              else model.set(o.key, { offset, bodies: [body(offset, o.size)], shared: 0, sharedBytes: 0 });
            }
          }
        } else {
          ra.drop(o.key);
          model.delete(o.key);
        }
        assert.equal(ra.bytes, total(), `bytes after ${JSON.stringify(o)}`);
        assert.ok(ra.bytes <= BUDGET);
      }
    }),
    { numRuns: 300, seed: 20261126 },
  );
});

test('read-ahead: a buffer refilled as fast as it is read stays right across compactions', () => {
  const ra = new ReadAhead(1 << 20);
  // The reader stays two records behind the refills for thousands of records.
  ra.extend(9, 0, 0, 10, () => Buffer.alloc(10, 0));
  ra.extend(9, 1, 0, 10, () => Buffer.alloc(10, 1));
  for (let o = 0; o < 5000; o++) {
    ra.extend(9, o + 2, 0, 10, () => Buffer.alloc(10, (o + 2) & 0xff));
    const got = ra.take(9, o);
    assert.ok(got !== undefined && got.length === 10 && got[0] === (o & 0xff), `offset ${o}`);
    assert.equal(ra.bytes, 20);
  }
});

test('tiered cache: records a reader has not reached yet survive the eviction of their tail chunk; unread queues keep nothing', async () => {
  const dir = tempDir();
  const s = await MessageStore.open({ dir, memoryCacheBytes: 4 << 20, ...SHAPE });
  try {
    // The hot reader of queue 'hot'/0 is at its end.
    for (let i = 0; i < 5; i++) await s.append('hot', 0, payload('hot', 0, i, 1000));
    assert.equal((await s.getRange('hot', 0, 0, 100)).length, 5);
    // New records for it, then far more than the memory budget of other traffic.
    for (let i = 5; i < 25; i++) await s.append('hot', 0, payload('hot', 0, i, 1000));
    for (let i = 0; i < 20; i++) await s.append('never-read', 0, payload('never-read', 0, i, 1000));
    for (let round = 0; round < 12; round++) {
      await Promise.all(Array.from({ length: 100 }, (_, k) => s.append('bulk', k, payload('bulk', k, round, 8000))));
    }
    const before = s.stats().cache.memory;
    const got = await s.getRange('hot', 0, 5, 100);
    assert.equal(got.length, 20);
    got.forEach((b, k) => assert.deepEqual(b, payload('hot', 0, 5 + k, 1000)));
    const after = s.stats().cache.memory;
    assert.equal(after.misses - before.misses, 0, 'the hot reader hits memory');
    assert.equal(after.hits - before.hits, 20);
    // A queue nobody read was not kept: its records come from disk.
    const coldBefore = s.stats().cache.memory.misses;
    assert.equal((await s.getRange('never-read', 0, 0, 100)).length, 20);
    assert.ok(s.stats().cache.memory.misses > coldBefore);
  } finally {
    await s.close();
    removeDir(dir);
  }
});

test('memory tier: a batch read from memory is the reader\'s own copy; evicting and reusing the chunks later does not change it', async () => {
  const dir = tempDir();
  // 4 MiB budget: 3 MiB of tail chunks, so 8 MiB of later appends evicts and recycles them all.
  const s = await MessageStore.open({ dir, memoryCacheBytes: 4 << 20 });
  try {
    for (let i = 0; i < 60; i++) await s.append('t', 0, payload('t', 0, i, 700 + i));
    const hitsBefore = s.stats().cache.memory.hits;
    const batch = await s.getRange('t', 0, 0, 60);
    assert.equal(s.stats().cache.memory.hits - hitsBefore, 60, 'all from the memory tier');
    batch.forEach((b, i) => assert.deepEqual(b, payload('t', 0, i, 700 + i), `offset ${i}`));
    const filler = Buffer.alloc(64 * 1024, 0xab);
    // In rounds, so evicted chunks go back to the pool and are handed out again for new appends.
    for (let round = 0; round < 16; round++) await Promise.all(Array.from({ length: 8 }, (_, i) => s.append('other', i % 4, filler)));
    batch.forEach((b, i) => assert.deepEqual(b, payload('t', 0, i, 700 + i), `offset ${i} after its chunk was reused`));
    // Records of one batch do not overlap: writing into one leaves its neighbours alone.
    batch[10].fill(0);
    assert.deepEqual(batch[9], payload('t', 0, 9, 709));
    assert.deepEqual(batch[11], payload('t', 0, 11, 711));
    // And the store still serves its own bytes.
    assert.deepEqual((await s.getRange('t', 0, 10, 1))[0], payload('t', 0, 10, 710));
  } finally {
    await s.close();
    removeDir(dir);
  }
});

test('cold reads: records read from the log are the reader\'s own; writing into one changes nothing else', async () => {
  const dir = tempDir();
  const s = await MessageStore.open({ dir, memoryCacheBytes: 4 << 20, ...SHAPE });
  try {
    // Each record of 'sparse' is followed by 9 x 8 KB of other queues: more than the read
    // coalescing gap, so every record is a span of its own.
    for (let o = 0; o < 40; o++) {
      await Promise.all([s.append('sparse', 0, payload('sparse', 0, o, BODY)), ...Array.from({ length: 9 }, (_, k) => s.append('bulk', k, payload('bulk', k, o, 8000)))]);
    }
    for (let round = 0; round < 16; round++) await Promise.all(Array.from({ length: 64 }, (_, k) => s.append('other', k, payload('other', k, round, 8000))));
    const before = s.stats().cache.memory;
    const batch = await s.getRange('sparse', 0, 0, 20);
    assert.equal(s.stats().cache.memory.misses - before.misses, 20, 'all 20 came from the log');
    batch.forEach((b, i) => assert.deepEqual(b, payload('sparse', 0, i, BODY), `offset ${i}`));
    batch[5].fill(0);
    batch.forEach((b, i) => i === 5 || assert.deepEqual(b, payload('sparse', 0, i, BODY), `offset ${i} after offset 5 was overwritten`));
    // The rest (read ahead meanwhile) and offset 5 again, from the log: the store's bytes are intact.
    const rest = await s.getRange('sparse', 0, 20, 20);
    rest.forEach((b, i) => assert.deepEqual(b, payload('sparse', 0, 20 + i, BODY), `offset ${20 + i}`));
    assert.deepEqual((await s.getRange('sparse', 0, 5, 1))[0], payload('sparse', 0, 5, BODY));
  } finally {
    await s.close();
    removeDir(dir);
  }
});
