/**
 * Closed-loop producers on bare MessageStores, without the benchmark's readers, phases or
 * verification: what the append path alone reaches. `--stores N` splits the queues over N
 * independent stores (directories), pinned by queue, to measure what striping the log over N
 * files would give before building it. `--io` takes segment file calls away to see what each
 * costs: `null` (writes and syncs return at once: the append path's CPU alone), `no-sync`
 * (writes only), `no-write` (syncs only), `real` (default). docs/store-measurements.md ("Third pass") has this
 * machine's results. `--retain-mib` runs the stores with retention (`maxTotalBytes`), the steady
 * state of a broker that deletes as fast as it writes; `--recycle off` then deletes the files
 * retention removes instead of making them the next segments (StoreOptions.recycleSegments).
 *
 *   node dist/bench/store/producers-probe.js [--producers 40] [--stores 1] [--queues-per-topic 50] [--seconds 8] [--dir DIR] [--io real|no-sync|no-write|null]
 *     [--segment-mib 1024] [--retain-mib N] [--recycle on|off] (--help)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance as perf } from 'node:perf_hooks';
import { Command, Option } from 'commander';
import { MessageStore, nodeIo, type StoreIo } from '../../src/store/index.js';
import { MAX_MESSAGE_BYTES, MIN_MESSAGE_BYTES } from './constants.js';
import { positiveInt, positiveNumber } from './options.js';
import { randomPool } from './payload.js';

const MiB = 1024 * 1024;
const POOL_BYTES = 32 * MiB;
const TOPICS = 100;
const DEFAULT_QUEUES_PER_TOPIC = 50;
const MEMORY_CACHE_BYTES = 256 * MiB;

const IO_MODES = ['real', 'no-sync', 'no-write', 'null'] as const;
type IoMode = (typeof IO_MODES)[number];

/** The real file system, except that segment writes and/or syncs return at once, doing nothing. */
function segmentIo(mode: IoMode): StoreIo {
  if (mode === 'real') return nodeIo;
  return {
    ...nodeIo,
    async open(path, openMode) {
      const file = await nodeIo.open(path, openMode);
      if (!path.endsWith('.seg')) return file;
      return {
        writev: mode === 'no-sync' ? (buffers, position) => file.writev(buffers, position) : () => Promise.resolve(),
        datasync: mode === 'no-write' ? () => file.datasync() : () => Promise.resolve(),
        read: (buf, offset, length, position) => file.read(buf, offset, length, position),
        readBatch: (buffers, positions, how) => file.readBatch(buffers, positions, how),
        truncate: (length) => file.truncate(length),
        size: () => file.size(),
        close: () => file.close(),
      };
    },
  };
}

async function main(): Promise<void> {
  const o = new Command('producers-probe')
    .description('closed-loop producers on bare stores: the append path alone (docs/store-measurements.md, "Third pass")')
    .option('--producers <n>', 'concurrent producers, each with one append in flight', positiveInt('--producers'), 40)
    .option('--stores <n>', 'independent stores the queues are pinned over (what striping would give)', positiveInt('--stores'), 1)
    .option('--queues-per-topic <n>', `queues in each of the ${TOPICS} topics (the benchmark default layout averages 217)`, positiveInt('--queues-per-topic'), DEFAULT_QUEUES_PER_TOPIC)
    .option('--seconds <s>', 'how long the producers run', positiveNumber('--seconds'), 8)
    .option('--dir <path>', 'where the stores go (default: a new temp dir)')
    .addOption(new Option('--io <mode>', 'segment file calls: real, or taken away to see their cost').choices(IO_MODES).default('real'))
    .option('--segment-mib <n>', 'segment file size, MiB', positiveInt('--segment-mib'), 1024)
    .option('--retain-mib <n>', 'retention: keep at most this many MiB of log per store (default: no retention)', positiveInt('--retain-mib'))
    .addOption(new Option('--recycle <on|off>', 'with --retain-mib: files retention removes become the next segments (on) or are deleted (off)').choices(['on', 'off']).default('on'))
    .parse()
    .opts<{ producers: number; stores: number; queuesPerTopic: number; seconds: number; dir?: string; io: IoMode; segmentMib: number; retainMib?: number; recycle: 'on' | 'off' }>();
  const { producers, seconds, stores: storeCount, queuesPerTopic, io: ioMode } = o;
  const io = segmentIo(ioMode);
  const base = mkdtempSync(join(o.dir ?? tmpdir(), 'cirrus-producers-'));
  const stores = await Promise.all(
    Array.from({ length: storeCount }, (_, i) =>
      MessageStore.open({
        dir: join(base, `store-${i}`),
        memoryCacheBytes: Math.floor(MEMORY_CACHE_BYTES / storeCount),
        segmentBytes: o.segmentMib * MiB,
        ...(o.retainMib === undefined ? {} : { retention: { maxTotalBytes: o.retainMib * MiB }, recycleSegments: o.recycle === 'on' }),
        io,
      }),
    ),
  );
  const pool = randomPool(3, POOL_BYTES);
  const latenciesMs: number[] = [];
  let bytes = 0;
  let messages = 0;
  let stop = false;
  const started = perf.now();
  const elu0 = perf.eventLoopUtilization();
  const cpu0 = process.cpuUsage();
  const producer = async (id: number): Promise<void> => {
    let r = (id * 7919) >>> 0;
    while (!stop) {
      r = (Math.imul(r, 1103515245) + 12345) >>> 0;
      const size = MIN_MESSAGE_BYTES + (r % (MAX_MESSAGE_BYTES - MIN_MESSAGE_BYTES));
      const at = (r >>> 3) % (POOL_BYTES - size);
      const topic = r % TOPICS;
      const queueId = (r >>> 8) % queuesPerTopic;
      const store = stores[(topic * 31 + queueId) % storeCount] as MessageStore;
      const t = perf.now();
      await store.append(`topic-${topic}`, queueId, pool.subarray(at, at + size));
      latenciesMs.push(perf.now() - t);
      bytes += size;
      messages++;
    }
  };
  const timer = setTimeout(() => (stop = true), seconds * 1000);
  try {
    await Promise.all(Array.from({ length: producers }, (_, i) => producer(i + 1)));
  } finally {
    clearTimeout(timer);
    const elu = perf.eventLoopUtilization(elu0).utilization;
    const cpu = process.cpuUsage(cpu0);
    // The producing time only: closing and deleting the data come after it.
    const wallUs = (perf.now() - started) * 1000;
    const usPerMessage = wallUs / Math.max(1, messages);
    const syncs = stores.reduce((n, s) => n + s.stats().syncs, 0);
    const recycledSegments = stores.reduce((n, s) => n + s.stats().recycledSegments, 0);
    const syncMeanMs = stores.reduce((n, s) => n + s.stats().syncLatencyMeanMs, 0) / stores.length;
    await Promise.all(stores.map((s) => s.close()));
    rmSync(base, { recursive: true, force: true });
    latenciesMs.sort((a, b) => a - b);
    const result = {
      bench: 'producers-probe',
      producers,
      stores: storeCount,
      io: ioMode,
      retainMib: o.retainMib ?? null,
      recycle: o.retainMib === undefined ? null : o.recycle,
      recycledSegments,
      syncMeanMs: Math.round(syncMeanMs * 1000) / 1000,
      mibps: Math.round(((bytes / MiB) * 1e6 / wallUs) * 10) / 10,
      usPerAppend: Math.round(usPerMessage * 100) / 100,
      busyUsPerAppend: Math.round(elu * usPerMessage * 100) / 100,
      p50AppendMs: latenciesMs[latenciesMs.length >> 1] ?? 0,
      p99AppendMs: latenciesMs[Math.floor(latenciesMs.length * 0.99)] ?? 0,
      messagesPerSync: syncs === 0 ? 0 : messages / syncs,
      mainThreadBusy: Math.round(elu * 1000) / 1000,
      cpuCores: Math.round(((cpu.user + cpu.system) / wallUs) * 100) / 100,
    };
    console.log(
      `${producers} producers, ${storeCount} store(s)${ioMode === 'real' ? '' : `, I/O ${ioMode}`}` +
        `${o.retainMib === undefined ? '' : `, retention ${o.retainMib} MiB, recycling ${o.recycle} (${recycledSegments} segments recycled)`}: ` +
        `${result.mibps} MiB/s, ${result.usPerAppend} us per append, durable write mean ${result.syncMeanMs} ms ` +
        `(${result.busyUsPerAppend} us of main thread), append p50 ${result.p50AppendMs.toFixed(2)} ms, ` +
        `p99 ${result.p99AppendMs.toFixed(2)} ms, ${result.messagesPerSync.toFixed(1)} messages per sync, ` +
        `main thread ${Math.round(result.mainThreadBusy * 100)} % busy, ${result.cpuCores} cores`,
    );
    console.log(JSON.stringify(result));
  }
}

await main();
