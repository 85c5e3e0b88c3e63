/**
 * What preallocating a log file is worth on this machine, before any engine is involved: rounds
 * of one positional write of `--round-kib` (default 350 KiB, what 40 closed-loop producers put in
 * one flush) and one fdatasync, back to back, into
 *   extend      a new file, each round appending past its end (what the store does);
 *   fallocate   a file preallocated with fallocate(1) (unwritten extents);
 *   zero-filled a file written full of zeros and synced first, each round overwriting;
 *   extend-async as extend, through the callback API (libuv's thread pool) with one
 *               setImmediate between rounds, as the store's group commit does: what Node's
 *               asynchronous file calls cost on top of the device.
 * It prints throughput and round latency per mode, the time the preallocation took, and the
 * throughput once that time is counted too (the zero fill writes every byte a second time).
 * docs/store-measurements.md ("Third pass") has the results and what they decided.
 *
 *   node dist/bench/store/prealloc-probe.js [--dir DIR] [--seconds S] [--repeats N] [--round-kib K] (--help)
 */
import { execFileSync } from 'node:child_process';
import { closeSync, fdatasync, fdatasyncSync, fsyncSync, mkdtempSync, openSync, rmSync, unlinkSync, write, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { positiveInt, positiveNumber } from './options.js';
import { randomPool } from './payload.js';

const MiB = 1024 * 1024;
/** Size of each probe file: large enough that no mode reaches its end within --seconds. */
const PROBE_FILE_BYTES = 4 * 1024 * MiB;
const ZERO_WRITE_BYTES = 4 * MiB;

type Mode = 'extend' | 'extend-async' | 'fallocate' | 'zero-filled';

interface ModeResult {
  mode: Mode;
  mibps: number;
  p50Ms: number;
  p99Ms: number;
  prepareMs: number;
  mibpsWithPrepare: number;
}

function prepare(fd: number, path: string, mode: Mode): void {
  if (mode === 'fallocate') {
    execFileSync('fallocate', ['-l', String(PROBE_FILE_BYTES), path]);
    fsyncSync(fd);
  } else if (mode === 'zero-filled') {
    const zeros = Buffer.alloc(ZERO_WRITE_BYTES);
    for (let at = 0; at < PROBE_FILE_BYTES; at += zeros.length) writeSync(fd, zeros, 0, zeros.length, at);
    fsyncSync(fd);
  }
}

/** The rounds of `extend`, each call through the thread pool, one setImmediate between rounds. */
function asyncRounds(fd: number, seconds: number, round: Buffer, latencies: number[]): Promise<number> {
  return new Promise((resolve, reject) => {
    let position = 0;
    const start = performance.now();
    const next = (): void => {
      if (performance.now() - start >= seconds * 1000 || position + round.length > PROBE_FILE_BYTES) {
        resolve(position);
        return;
      }
      const a = performance.now();
      write(fd, round, 0, round.length, position, (err) => {
        if (err) return reject(err);
        fdatasync(fd, (err2) => {
          if (err2) return reject(err2);
          latencies.push(performance.now() - a);
          position += round.length;
          setImmediate(next);
        });
      });
    };
    next();
  });
}

/** The rounds of the synchronous modes: write + fdatasync back to back on this thread. */
function syncRounds(fd: number, seconds: number, round: Buffer, latencies: number[]): number {
  let position = 0;
  const start = performance.now();
  while (performance.now() - start < seconds * 1000 && position + round.length <= PROBE_FILE_BYTES) {
    const a = performance.now();
    writeSync(fd, round, 0, round.length, position);
    fdatasyncSync(fd);
    latencies.push(performance.now() - a);
    position += round.length;
  }
  return position;
}

async function runMode(dir: string, mode: Mode, seconds: number, round: Buffer): Promise<ModeResult> {
  const path = join(dir, `probe-${mode}.dat`);
  const fd = openSync(path, 'w+');
  try {
    const t0 = performance.now();
    prepare(fd, path, mode);
    const prepareMs = performance.now() - t0;
    const latencies: number[] = [];
    const start = performance.now();
    const position = mode === 'extend-async' ? await asyncRounds(fd, seconds, round, latencies) : syncRounds(fd, seconds, round, latencies);
    const secs = (performance.now() - start) / 1000;
    latencies.sort((x, y) => x - y);
    // The preparation's cost for the bytes this run used (it prepared PROBE_FILE_BYTES).
    const prepareSecsUsed = (prepareMs / 1000) * (position / PROBE_FILE_BYTES);
    return {
      mode,
      mibps: position / MiB / secs,
      p50Ms: latencies[latencies.length >> 1] ?? 0,
      p99Ms: latencies[Math.floor(latencies.length * 0.99)] ?? 0,
      prepareMs,
      mibpsWithPrepare: position / MiB / (secs + prepareSecsUsed),
    };
  } finally {
    closeSync(fd);
    unlinkSync(path);
  }
}

async function main(): Promise<void> {
  const o = new Command('prealloc-probe')
    .description('write + fdatasync rounds into a growing, a fallocate(1)d and a zero-filled file (docs/store-measurements.md, "Third pass")')
    .option('--dir <path>', 'where the two 4 GiB probe files go (default: a new temp dir); pick the device you want measured')
    .option('--seconds <s>', 'seconds per mode', positiveNumber('--seconds'), 4)
    .option('--repeats <n>', 'passes over all modes', positiveInt('--repeats'), 2)
    .option('--round-kib <KiB>', 'bytes per round (350: what 40 closed-loop producers put in one flush)', positiveNumber('--round-kib'), 350)
    .parse()
    .opts<{ dir?: string; seconds: number; repeats: number; roundKib: number }>();
  const { seconds, repeats } = o;
  const modes: Mode[] = ['extend', 'extend-async', 'fallocate', 'zero-filled'];
  try {
    execFileSync('fallocate', ['--help'], { stdio: 'ignore' });
  } catch {
    console.log('fallocate(1) not found (Debian package util-linux): that mode is skipped');
    modes.splice(modes.indexOf('fallocate'), 1);
  }
  const dir = mkdtempSync(join(o.dir ?? tmpdir(), 'cirrus-prealloc-'));
  const round = randomPool(11, Math.round(o.roundKib * 1024));
  const results: ModeResult[] = [];
  try {
    for (let r = 0; r < repeats; r++) {
      for (const mode of modes) {
        const res = await runMode(dir, mode, seconds, round);
        results.push(res);
        console.log(
          `${mode.padEnd(13)} ${res.mibps.toFixed(0).padStart(5)} MiB/s  round p50 ${res.p50Ms.toFixed(3)} p99 ${res.p99Ms.toFixed(3)} ms  ` +
            `prepare ${res.prepareMs.toFixed(0)} ms for ${PROBE_FILE_BYTES / MiB} MiB  with prepare ${res.mibpsWithPrepare.toFixed(0)} MiB/s`,
        );
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  console.log(JSON.stringify({ bench: 'prealloc-probe', roundBytes: round.length, seconds, results }));
}

await main();
