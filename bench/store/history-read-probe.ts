/**
 * How fast this machine serves the cold readers' pattern, before any engine is involved: a file of
 * `--file-gib` of records of `--record-bytes` each (the benchmark's mean), of which a fraction
 * (`--coverage`) is read in random order, one pread per record, `--concurrency` reads in flight,
 * page cache dropped first. With `--extent-kib X`, the aligned X KiB extent around a record is
 * read whole once `--sweep-after` reads have landed in it (a sweep: later reads of its records are
 * page cache hits). It prints per cell the time, the records' MiB/s, the bytes the device really
 * read (/proc/self/io) and their ratio to the bytes asked for, and the device's readahead setting,
 * which decides how much the kernel reads around a random pread on its own. With `--batch 1,40`
 * (and `--extent-kib 0`), the reads go through the store's native batch reader, N records per
 * call, each line then also giving the main thread's busy time per record; `--prefetch 0,16` has
 * each batch announce that many reads ahead of the one it is on (posix_fadvise WILLNEED).
 * docs/store-measurements.md ("Sixth pass", "Eleventh pass", "Twelfth pass") has the results and what they decided.
 *
 *   UV_THREADPOOL_SIZE=16 node dist/bench/store/history-read-probe.js [--dir DIR] [--coverage 0.05,0.5]
 *     [--concurrency 3,8] [--extent-kib 0,128,1024] [--sweep-after 2] [--batch 1,40] [--prefetch 0,16] [--json] (--help)
 *
 * Run it with UV_THREADPOOL_SIZE at least the largest --concurrency, or libuv's 4 threads cap it.
 */
import { closeSync, fsyncSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { invariant } from '../../src/common/index.js';
import { libuvThreadpoolSize } from '../../src/store/options.js';
import { MAX_READ_PREFETCH, nativePreadBatch, nativePreadUnavailable } from '../../src/store/pread-batch.js';
import { positiveInt } from './options.js';
import { randomPool } from './payload.js';
import { Prng } from './prng.js';
import { deviceReadBytes, dropPageCache } from './system.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const FILL_CHUNK_BYTES = 16 * MiB;

interface Cell {
  coverage: number;
  concurrency: number;
  extentKiB: number;
  sweepAfter: number;
  records: number;
  seconds: number;
  recordMiBps: number;
  deviceMiB: number | null;
  /** Device bytes / record bytes asked for. */
  amplification: number | null;
  sweeps: number;
  /** Records per read call: 1 is one fs.read each; more is the native batch reader. */
  batch: number;
  /** Reads a native batch announces ahead of the one it is on (0: none; batches only). */
  prefetch: number;
  /** Main thread busy (event-loop utilization) per record read, microseconds. */
  mainThreadUsPerRecord: number;
}

function numberList(name: string, min: number, max: number, integer: boolean) {
  return (raw: string): number[] => {
    const values = raw.split(',').map((v) => Number(v.trim()));
    for (const v of values) {
      if (!Number.isFinite(v) || v < min || v > max || (integer && !Number.isInteger(v))) {
        throw new InvalidArgumentError(`${name} takes a comma-separated list of ${integer ? 'integers' : 'numbers'} in ${min}..${max}, got "${raw}"`);
      }
    }
    return values;
  };
}

/** The device's readahead (KiB) for the file system holding `path`, or null when /sys does not say. */
function readAheadKib(path: string): number | null {
  const dev = statSync(path).dev;
  const major = Math.floor(dev / 256) & 0xfff;
  const minor = (dev & 0xff) | (Math.floor(dev / 4096) & ~0xff);
  for (const rel of ['queue/read_ahead_kb', '../queue/read_ahead_kb']) {
    try {
      return Number(readFileSync(`/sys/dev/block/${major}:${minor}/${rel}`, 'utf8').trim());
    } catch {
      // a partition keeps its queue one level up; try the next
    }
  }
  return null;
}

function fill(path: string, bytes: number, seed: number): void {
  const pool = randomPool(seed, FILL_CHUNK_BYTES + MiB);
  const fd = openSync(path, 'w');
  try {
    for (let at = 0, k = 0; at < bytes; at += FILL_CHUNK_BYTES, k++) {
      // Shift the window each chunk so no two chunks are alike (nothing for a device to dedupe).
      const shift = (k * 4099) % MiB;
      writeSync(fd, pool, shift, Math.min(FILL_CHUNK_BYTES, bytes - at), at);
    }
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

async function runCell(path: string, fileBytes: number, recordBytes: number, c: Omit<Cell, 'records' | 'seconds' | 'recordMiBps' | 'deviceMiB' | 'amplification' | 'sweeps' | 'mainThreadUsPerRecord'>, seed: number): Promise<Cell> {
  const total = Math.floor(fileBytes / recordBytes);
  const rng = new Prng(seed);
  const ids: number[] = [];
  for (let i = 0; i < total; i++) if (rng.next() < c.coverage) ids.push(i);
  for (let i = ids.length - 1; i > 0; i--) {
    const j = Math.floor(rng.next() * (i + 1));
    [ids[i], ids[j]] = [ids[j], ids[i]];
  }
  const extentBytes = c.extentKiB * 1024;
  const readsIn = new Map<number, number>();
  let sweeps = 0;
  dropPageCache(join(path, '..'));
  const fh = await open(path, 'r');
  const before = deviceReadBytes();
  const started = performance.now();
  const elu = performance.eventLoopUtilization();
  let next = 0;
  const batched = async (): Promise<void> => {
    invariant(nativePreadBatch !== null, 'checked before the cells run');
    const bufs = Array.from({ length: c.batch }, () => Buffer.allocUnsafe(recordBytes));
    while (next < ids.length) {
      const n = Math.min(c.batch, ids.length - next);
      const positions: number[] = [];
      for (let k = 0; k < n; k++) positions.push(ids[next++] * recordBytes);
      await nativePreadBatch(fh.fd, bufs.slice(0, n), positions, c.prefetch);
    }
  };
  const worker = async (): Promise<void> => {
    const buf = Buffer.allocUnsafe(Math.max(extentBytes, recordBytes));
    while (next < ids.length) {
      const at = ids[next++] * recordBytes;
      if (extentBytes > 0) {
        const extent = Math.floor(at / extentBytes);
        const n = (readsIn.get(extent) ?? 0) + 1;
        readsIn.set(extent, n);
        if (n === c.sweepAfter) {
          sweeps++;
          await fh.read(buf, 0, extentBytes, extent * extentBytes);
        }
      }
      await fh.read(buf, 0, recordBytes, at);
    }
  };
  try {
    await Promise.all(Array.from({ length: c.concurrency }, c.batch > 1 ? batched : worker));
  } finally {
    await fh.close();
  }
  const busyMs = performance.eventLoopUtilization(elu).active;
  const seconds = (performance.now() - started) / 1000;
  const after = deviceReadBytes();
  const asked = ids.length * recordBytes;
  const device = before === null || after === null ? null : after - before;
  return {
    ...c,
    records: ids.length,
    seconds: Math.round(seconds * 100) / 100,
    recordMiBps: Math.round(asked / MiB / seconds),
    deviceMiB: device === null ? null : Math.round(device / MiB),
    amplification: device === null ? null : Math.round((device / asked) * 100) / 100,
    sweeps,
    mainThreadUsPerRecord: Math.round((busyMs * 1000 * 100) / Math.max(1, ids.length)) / 100,
  };
}

async function main(): Promise<void> {
  const cmd = new Command('history-read-probe')
    .description('random preads of a share of a file\'s records, with and without whole-extent sweeps, page cache dropped first')
    .option('--dir <path>', 'where the probe file goes (default: a new temp dir); pick the device you want measured')
    .option('--file-gib <n>', 'size of the probe file, GiB', positiveInt('--file-gib', 1024), 2)
    .option('--record-bytes <n>', 'bytes per record (the benchmark\'s mean is about 8,960)', positiveInt('--record-bytes', 64 * MiB), 8960)
    .option('--coverage <list>', 'shares of the records read, comma-separated', numberList('--coverage', 0.0001, 1, false), [0.05, 0.5])
    .option('--concurrency <list>', 'reads in flight, comma-separated', numberList('--concurrency', 1, 1024, true), [3])
    .option('--extent-kib <list>', 'extent read whole after --sweep-after reads in it, KiB, comma-separated; 0: never', numberList('--extent-kib', 0, 1024 * 1024, true), [0, 128, 1024])
    .option('--sweep-after <n>', 'reads landing in an extent before it is read whole', positiveInt('--sweep-after', 1_000_000), 2)
    .option('--batch <list>', 'records per read call, comma-separated: 1 is one fs.read each, more goes through the native batch reader (needs --extent-kib 0)', numberList('--batch', 1, 10_000, true), [1])
    .option('--prefetch <list>', 'reads a native batch announces to the kernel ahead of the one it is on, comma-separated (batches above 1 only)', numberList('--prefetch', 0, MAX_READ_PREFETCH, true), [0])
    .option('--seed <n>', 'seed of the record picks and their order', positiveInt('--seed', 0xffff_ffff), 1)
    .option('--json', 'print the cells as one JSON object on the last line');
  cmd.parse(process.argv.slice(2), { from: 'user' });
  const o = cmd.opts<{ dir?: string; fileGib: number; recordBytes: number; coverage: number[]; concurrency: number[]; extentKib: number[]; sweepAfter: number; batch: number[]; prefetch: number[]; seed: number; json?: boolean }>();
  if (o.batch.some((b) => b > 1)) {
    if (o.extentKib.some((x) => x > 0)) cmd.error('--batch above 1 reads records only: give --extent-kib 0');
    if (nativePreadBatch === null) cmd.error(`--batch above 1 needs the native batch reader, which is not available: ${nativePreadUnavailable}`);
  }
  const pool = libuvThreadpoolSize(process.env.UV_THREADPOOL_SIZE);
  if (Math.max(...o.concurrency) > pool) {
    console.error(`note: libuv has ${pool} threads (UV_THREADPOOL_SIZE), so at most ${pool} reads are really in flight`);
  }
  const dir = mkdtempSync(join(o.dir ?? tmpdir(), 'cirrus-history-probe-'));
  const path = join(dir, 'records.bin');
  const fileBytes = o.fileGib * GiB;
  try {
    console.error(`writing ${o.fileGib} GiB of incompressible records to ${path} ...`);
    fill(path, fileBytes, o.seed);
    const ra = readAheadKib(path);
    console.error(`device readahead: ${ra === null ? 'unknown' : `${ra} KiB`}`);
    const cells: Cell[] = [];
    for (const coverage of o.coverage) {
      for (const concurrency of o.concurrency) {
        for (const extentKiB of o.extentKib) {
          for (const batch of o.batch) {
            for (const prefetch of batch === 1 ? [0] : o.prefetch) {
              const cell = await runCell(path, fileBytes, o.recordBytes, { coverage, concurrency, extentKiB, sweepAfter: o.sweepAfter, batch, prefetch }, o.seed);
              cells.push(cell);
              console.error(
                `coverage ${coverage}, ${concurrency} in flight, ${extentKiB === 0 ? 'no sweeps' : `${extentKiB} KiB extents swept after ${o.sweepAfter} reads`}, ` +
                  `${batch === 1 ? 'one fs.read per record' : `native batches of ${batch}, prefetch ${prefetch}`}: ` +
                  `${cell.records} records in ${cell.seconds} s = ${cell.recordMiBps} MiB/s; device read ${cell.deviceMiB ?? 'n/a'} MiB (${cell.amplification ?? 'n/a'} x asked); ` +
                  `${cell.sweeps} sweeps; main thread ${cell.mainThreadUsPerRecord} us per record`,
              );
            }
          }
        }
      }
    }
    if (o.json) console.log(JSON.stringify({ fileGiB: o.fileGib, recordBytes: o.recordBytes, uvThreadpoolSize: pool, readAheadKib: ra, cells }));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : String(err));
  process.exit(1);
});
