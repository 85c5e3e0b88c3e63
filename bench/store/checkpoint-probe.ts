/**
 * Index checkpoints alone, in memory: what encoding them costs the event loop (the longest slice
 * between two yields) and what loading them costs a reopen, for the `--full` benchmark's shape
 * (216,996 queues, 4.33 M messages, each to a random queue). A full checkpoint is taken halfway;
 * after it a delta every 256 MiB of log, as the store does; a reopen loads the full one and then
 * the deltas, which the store lets grow up to the full one's size before it writes a new full one
 * (the worst case timed here). No files. docs/store-measurements.md ("Ninth pass") has this machine's results.
 *
 *   node dist/bench/store/checkpoint-probe.js [--queues 216996] [--messages 4331517] [--record-bytes 9216] [--repeats 3] [--json] (--help)
 */
import { Command } from 'commander';
import { applyDeltas, assembleCheckpoint, checkpointChunks, deltaEncoder, loadCheckpoint, type CheckpointEnd } from '../../src/store/checkpoint.js';
import { CHECKPOINT_INTERVAL_BYTES } from '../../src/store/constants.js';
import { QueueIndex, type QueueRef } from '../../src/store/queue-index.js';
import { positiveInt } from './options.js';

const TOPICS = 100;

interface Encoded {
  buf: Buffer;
  slices: number;
  totalMs: number;
  longestSliceMs: number;
}

/**
 * Runs an encoder to its end as the store would, timing each slice (without the yields' waits).
 * A full checkpoint's chunks are copied out between slices, untimed (the store writes them to
 * its file there), and assembled into the file.
 */
function encodeTimed(steps: Generator<Buffer | null, Buffer | CheckpointEnd, void>): Encoded {
  let slices = 0;
  let totalMs = 0;
  let longestSliceMs = 0;
  const chunks: Buffer[] = [];
  for (;;) {
    const t = performance.now();
    const r = steps.next();
    const ms = performance.now() - t;
    slices++;
    totalMs += ms;
    longestSliceMs = Math.max(longestSliceMs, ms);
    if (r.done !== true) {
      if (r.value !== null) chunks.push(Buffer.from(r.value));
      continue;
    }
    const buf = Buffer.isBuffer(r.value) ? r.value : assembleCheckpoint(chunks, r.value);
    return { buf, slices, totalMs, longestSliceMs };
  }
}

interface Repeat {
  fullEncodeMs: number;
  fullSlices: number;
  fullLongestSliceMs: number;
  deltas: number;
  deltaEncodeMeanMs: number;
  deltaLongestSliceMs: number;
  fullBytes: number;
  chainBytes: number;
  loadFullMs: number;
  applyChainMs: number;
}

function once(queues: number, messages: number, recordBytes: number): Repeat {
  const index = new QueueIndex();
  const refs: QueueRef[] = [];
  const perTopic = Math.ceil(queues / TOPICS);
  for (let i = 0; i < queues; i++) refs.push(index.getOrCreate(i % TOPICS, Math.floor(i / TOPICS) % perTopic));
  let seed = 1;
  const next = (): number => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0);
  const half = Math.floor(messages / 2);
  const perDelta = Math.max(1, Math.floor(CHECKPOINT_INTERVAL_BYTES / recordBytes));
  let pos = 0;
  let full: Encoded | null = null;
  let fullPos = 0;
  let last = 0;
  const deltas: Encoded[] = [];
  for (let k = 1; k <= messages; k++) {
    index.push(refs[next() % queues], pos, recordBytes);
    pos += recordBytes;
    if (k === half) {
      full = encodeTimed(checkpointChunks(index, pos, TOPICS, 0));
      fullPos = last = pos;
    } else if (k > half && (k - half) % perDelta === 0) {
      deltas.push(encodeTimed(deltaEncoder(index, last, pos)));
      last = pos;
    }
  }
  if (full === null) throw new Error('--messages must be at least 2');
  // The chain a reopen may meet: deltas up to the full checkpoint's size.
  const chain: Buffer[] = [];
  let chainBytes = 0;
  for (const d of deltas) {
    if (chainBytes + d.buf.length > full.buf.length) break;
    chain.push(d.buf);
    chainBytes += d.buf.length;
  }
  const chainBuf = Buffer.concat(chain);
  const t0 = performance.now();
  const reopened = new QueueIndex();
  loadCheckpoint(full.buf, reopened);
  const t1 = performance.now();
  const applied = applyDeltas(chainBuf, reopened, fullPos, pos, TOPICS);
  const t2 = performance.now();
  if (applied.applied !== chain.length) throw new Error(`applied ${applied.applied} of ${chain.length} deltas`);
  return {
    fullEncodeMs: full.totalMs,
    fullSlices: full.slices,
    fullLongestSliceMs: full.longestSliceMs,
    deltas: deltas.length,
    deltaEncodeMeanMs: deltas.reduce((n, d) => n + d.totalMs, 0) / Math.max(1, deltas.length),
    deltaLongestSliceMs: deltas.reduce((n, d) => Math.max(n, d.longestSliceMs), 0),
    fullBytes: full.buf.length,
    chainBytes,
    loadFullMs: t1 - t0,
    applyChainMs: t2 - t1,
  };
}

function main(): void {
  const o = new Command('checkpoint-probe')
    .description('index checkpoints alone: longest encoding slice, and reopen load times of a full checkpoint and a delta chain (docs/store-measurements.md, "Ninth pass")')
    .option('--queues <n>', 'queues (over 100 topics)', positiveInt('--queues'), 216_996)
    .option('--messages <n>', 'messages, each to a random queue', positiveInt('--messages'), 4_331_517)
    .option('--record-bytes <n>', 'bytes of log per message (sets how many messages a 256 MiB delta covers)', positiveInt('--record-bytes'), 9216)
    .option('--repeats <n>', 'repetitions (the first warms the JIT up)', positiveInt('--repeats'), 3)
    .option('--json', 'one JSON line instead of a table')
    .parse()
    .opts<{ queues: number; messages: number; recordBytes: number; repeats: number; json?: boolean }>();
  const repeats: Repeat[] = [];
  for (let r = 0; r < o.repeats; r++) {
    repeats.push(once(o.queues, o.messages, o.recordBytes));
    if (!o.json) process.stderr.write(`[checkpoint-probe] repeat ${r + 1} of ${o.repeats} done\n`);
  }
  if (o.json) {
    process.stdout.write(`${JSON.stringify({ queues: o.queues, messages: o.messages, recordBytes: o.recordBytes, repeats })}\n`);
    return;
  }
  const f = (n: number, d = 0): string => n.toFixed(d);
  process.stdout.write(`${o.queues} queues, ${o.messages} messages of ${o.recordBytes} bytes\n`);
  process.stdout.write('repeat  full encode ms (slices, longest)  delta encode ms mean (longest slice)  load full ms (MB)  apply deltas ms (MB)\n');
  repeats.forEach((r, i) => {
    process.stdout.write(
      `${String(i + 1).padStart(6)}  ${f(r.fullEncodeMs).padStart(14)} (${r.fullSlices}, ${f(r.fullLongestSliceMs, 2)})` +
        `  ${f(r.deltaEncodeMeanMs, 1).padStart(20)} (${f(r.deltaLongestSliceMs, 2)})` +
        `  ${f(r.loadFullMs).padStart(12)} (${f(r.fullBytes / 1e6, 1)})  ${f(r.applyChainMs).padStart(15)} (${f(r.chainBytes / 1e6, 1)})\n`,
    );
  });
}

main();
