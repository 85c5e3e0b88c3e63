import { totalmem } from 'node:os';
import { Command, InvalidArgumentError, Option } from 'commander';
import { MAX_COLD_READ_CONCURRENCY, RECOMMENDED_NODE_FLAGS, RECOMMENDED_UV_THREADPOOL_SIZE, type HistoryPageCache } from '../../src/store/index.js';
import { CEILING_CELL_BYTES, CEILING_CELL_BYTES_QUICK, MAX_QUEUES_PER_TOPIC, MAX_TOPICS, QUICK_MEMORY_CACHE_BYTES } from './constants.js';

export const PEER_NAMES = ['sqlite', 'leveldb', 'redis'] as const;
export type PeerName = (typeof PEER_NAMES)[number];

export interface BenchOptions {
  mode: 'quick' | 'default' | 'full';
  producers: number;
  readers: number;
  phase1Bytes: number;
  phase2Bytes: number;
  topics: number;
  maxQueues: number;
  peers: PeerName[];
  peerBytes: number;
  ceilingCellBytes: number;
  seed: number;
  dir: string | null;
  out: string | null;
  keep: boolean;
  memoryCacheBytes: number | null;
  segmentBytes: number | null;
  /** The store's `coldReadConcurrency`; null: the store's default. */
  coldReadConcurrency: number | null;
  /** The store's `historyPageCache`; null: the store's default. */
  historyPageCache: HistoryPageCache | null;
  /** Node flags the benchmark re-runs itself with when the process was started without them. */
  nodeFlags: string[];
  /** UV_THREADPOOL_SIZE the benchmark re-runs itself with when none is set; null: as started. */
  uvThreadpoolSize: number | null;
}

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

export function positiveInt(name: string, max = Number.MAX_SAFE_INTEGER) {
  return (raw: string): number => {
    const n = Number(raw);
    if (!Number.isInteger(n) || n < 1 || n > max) throw new InvalidArgumentError(`${name} must be an integer in 1..${max}`);
    return n;
  };
}

export function positiveNumber(name: string) {
  return (raw: string): number => {
    const n = Number(raw);
    if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`${name} must be a number > 0`);
    return n;
  };
}

function nodeFlagList(raw: string): string[] {
  if (raw === 'none') return [];
  const flags = raw.split(/\s+/).filter(Boolean);
  for (const f of flags) {
    if (!f.startsWith('--')) throw new InvalidArgumentError(`--node-flags: "${f}" is not a flag (expected --name[=value], or none)`);
  }
  return flags;
}

function peerList(raw: string): PeerName[] {
  if (raw === 'none') return [];
  const names = raw.split(',').map((s) => s.trim()).filter(Boolean);
  for (const n of names) {
    if (!(PEER_NAMES as readonly string[]).includes(n)) {
      throw new InvalidArgumentError(`unknown peer "${n}"; choose from none or ${PEER_NAMES.join(',')}`);
    }
  }
  return names as PeerName[];
}

export function benchCommand(): Command {
  return new Command('bench-store')
    .description(
      'Replays the storage challenge workload against the Cirrus store: probes the disk\'s durable ' +
        'write ceiling and what it gives one file\'s rounds of what the producers keep in flight ' +
        '(the closed-loop reference), writes (phase 1), writes while hot and cold readers read (phase 2), reads ' +
        'to the end (phase 3), verifies every byte read, then runs the same producers against ' +
        'SQLite, LevelDB and Redis Streams. Progress on stderr; a table, then one JSON line, on stdout.',
    )
    .addOption(new Option('--quick', 'CI size: ~0.2 GiB, 10 topics, small peers; checks correctness, not speed (< 1 min)').conflicts('full'))
    .addOption(new Option('--full', 'a data set larger than RAM (phase1 = RAM, phase2 = RAM/2, up to 5,000 queues per topic); takes long, never in CI'))
    .option('--producers <n>', 'concurrent producers, each with one append in flight (the challenge: 10..50)', positiveInt('--producers', 10_000), 40)
    .option('--readers <n>', 'concurrent reader loops in phases 2 and 3, half hot, half cold (default: = producers)', positiveInt('--readers', 10_000))
    .option('--phase1 <GiB>', 'GiB written in phase 1 (write only)', positiveNumber('--phase1'), 4)
    .option('--phase2 <GiB>', 'GiB written in phase 2 (while reading)', positiveNumber('--phase2'), 3)
    .option('--topics <n>', `topics (1..${MAX_TOPICS})`, positiveInt('--topics', MAX_TOPICS), MAX_TOPICS)
    .option('--max-queues <n>', `queues per topic are drawn from 1..n (n <= ${MAX_QUEUES_PER_TOPIC}); the default keeps ~20 messages per queue at 4 GiB as the challenge had at 75 GiB`, positiveInt('--max-queues', MAX_QUEUES_PER_TOPIC), 500)
    .option('--peers <list>', `peers to compare with: none, or a comma list of ${PEER_NAMES.join(',')}`, peerList, [...PEER_NAMES])
    .option('--peer-gib <GiB>', 'GiB each peer writes (same producers, same message mix)', positiveNumber('--peer-gib'), 1)
    .option('--ceiling-mib <MiB>', `MiB written per ceiling probe cell and by the closed-loop reference (default ${CEILING_CELL_BYTES / MiB}, quick ${CEILING_CELL_BYTES_QUICK / MiB})`, positiveInt('--ceiling-mib'))
    .option('--memory-cache-mib <MiB>', 'store memory read-cache budget (default: the store\'s default; --quick 16)', positiveInt('--memory-cache-mib'))
    .option('--segment-mib <MiB>', 'store segment size (default: the store\'s default)', positiveInt('--segment-mib'))
    .option(
      '--cold-read-concurrency <n>',
      'the store\'s coldReadConcurrency: history reads in flight at most (default: the store\'s default, 3 with libuv\'s default pool; 1024 lifts the limit; docs/store.md "Knobs")',
      positiveInt('--cold-read-concurrency', 1024),
    )
    .addOption(
      new Option('--history-page-cache <what>', 'the store\'s historyPageCache: what history reads leave in the OS page cache (default: the store\'s default, drop; docs/store.md "Knobs")').choices(['drop', 'keep']),
    )
    .option('--seed <n>', 'seed of layout, sizes, contents and queue picks: same seed, same workload', positiveInt('--seed', 0xffff_ffff), 1)
    .option('--dir <path>', 'where the store, peers and probe files go (default: a new temp dir); pick the device you want measured')
    .option('--out <path>', 'where results JSON + SVG go (default: bench/results/, for --quick a temp dir)')
    .option('--keep', 'keep the data directory after the run (default: deleted)')
    .option(
      '--node-flags <flags>',
      `Node flags to run with, space-separated, or none: the benchmark re-runs itself with them when started without (default: the store's recommended "${RECOMMENDED_NODE_FLAGS.join(' ')}", docs/store.md "Runtime")`,
      nodeFlagList,
      [...RECOMMENDED_NODE_FLAGS],
    )
    .option(
      '--uv-threadpool-size <n>',
      `libuv threads to run with (UV_THREADPOOL_SIZE), 1-1024, or none: the benchmark re-runs itself with it unless UV_THREADPOOL_SIZE is already set; the default is the store's recommended size, docs/store.md "Runtime"`,
      // 'none' stays a string: commander turns a parser's null into ''.
      (value: string): number | 'none' => (value === 'none' ? value : positiveInt('--uv-threadpool-size', MAX_COLD_READ_CONCURRENCY)(value)),
      RECOMMENDED_UV_THREADPOOL_SIZE,
    );
}

interface RawOptions {
  quick?: boolean;
  full?: boolean;
  producers: number;
  readers?: number;
  phase1: number;
  phase2: number;
  topics: number;
  maxQueues: number;
  peers: PeerName[];
  peerGib: number;
  ceilingMib?: number;
  memoryCacheMib?: number;
  segmentMib?: number;
  coldReadConcurrency?: number;
  historyPageCache?: HistoryPageCache;
  seed: number;
  dir?: string;
  out?: string;
  keep?: boolean;
  nodeFlags: string[];
  uvThreadpoolSize: number | 'none';
}

export function parseBenchOptions(argv: string[]): BenchOptions {
  const cmd = benchCommand();
  cmd.parse(argv, { from: 'user' });
  const raw = cmd.opts<RawOptions>();
  const given = (name: string): boolean => cmd.getOptionValueSource(name) === 'cli';
  const mode = raw.quick ? 'quick' : raw.full ? 'full' : 'default';
  const o: BenchOptions = {
    mode,
    producers: raw.producers,
    readers: raw.readers ?? raw.producers,
    phase1Bytes: raw.phase1 * GiB,
    phase2Bytes: raw.phase2 * GiB,
    topics: raw.topics,
    maxQueues: raw.maxQueues,
    peers: raw.peers,
    peerBytes: raw.peerGib * GiB,
    ceilingCellBytes: (raw.ceilingMib ?? 0) * MiB || CEILING_CELL_BYTES,
    seed: raw.seed,
    dir: raw.dir ?? null,
    out: raw.out ?? null,
    keep: raw.keep ?? false,
    memoryCacheBytes: raw.memoryCacheMib ? raw.memoryCacheMib * MiB : null,
    segmentBytes: raw.segmentMib ? raw.segmentMib * MiB : null,
    coldReadConcurrency: raw.coldReadConcurrency ?? null,
    historyPageCache: raw.historyPageCache ?? null,
    nodeFlags: raw.nodeFlags,
    uvThreadpoolSize: raw.uvThreadpoolSize === 'none' ? null : raw.uvThreadpoolSize,
  };
  if (mode === 'quick') {
    if (!given('phase1')) o.phase1Bytes = 128 * MiB;
    if (!given('phase2')) o.phase2Bytes = 64 * MiB;
    if (!given('topics')) o.topics = 10;
    if (!given('maxQueues')) o.maxQueues = 40;
    if (!given('peerGib')) o.peerBytes = 16 * MiB;
    if (!given('ceilingMib')) o.ceilingCellBytes = CEILING_CELL_BYTES_QUICK;
    if (!given('segmentMib') && !o.segmentBytes) o.segmentBytes = 64 * MiB;
    // The quick data set (192 MiB) would fit the default memory budget (256 MiB) whole, and the
    // cold readers would never read a byte back from the log files: a small budget makes them.
    if (!given('memoryCacheMib') && !o.memoryCacheBytes) o.memoryCacheBytes = QUICK_MEMORY_CACHE_BYTES;
  } else if (mode === 'full') {
    if (!given('phase1')) o.phase1Bytes = totalmem();
    if (!given('phase2')) o.phase2Bytes = totalmem() / 2;
    if (!given('maxQueues')) o.maxQueues = MAX_QUEUES_PER_TOPIC;
  }
  return o;
}
