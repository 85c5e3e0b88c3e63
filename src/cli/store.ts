import { InvalidArgumentError, Option, type Command } from 'commander';
import { DEFAULT_MAX_MESSAGE_BYTES, MAX_MESSAGE_BYTES_LIMIT } from '../store/constants.js';
import { inspectStore, verifyStore, type ScanProgress, type StoreScan, type VerifyReport } from '../store/index.js';

type ProgressWhen = 'auto' | 'always' | 'never';

/** `--progress`: a line on stderr per segment scanned; `auto` only when stderr is a terminal. */
function progressOption(): Option {
  return new Option('--progress <when>', 'a line on stderr per segment scanned (a scan reads the whole log): auto (when stderr is a terminal), always or never')
    .choices(['auto', 'always', 'never'])
    .default('auto');
}

function progressPrinter(verb: string, when: ProgressWhen): ((p: ScanProgress) => void) | undefined {
  if (when === 'never' || (when === 'auto' && !process.stderr.isTTY)) return undefined;
  const started = performance.now();
  return (p) => {
    const seconds = (performance.now() - started) / 1000;
    const rate = seconds > 0 ? p.bytes / 1024 / 1024 / seconds : 0;
    process.stderr.write(
      `${verb}: segment ${p.segments}/${p.segmentsTotal}, ${mib(p.bytes)} of ${mib(p.bytesTotal)} (${((100 * p.bytes) / Math.max(1, p.bytesTotal)).toFixed(0)} %), ${rate.toFixed(0)} MiB/s\n`,
    );
  };
}

/**
 * `--max-message-bytes`: the store's own maxMessageBytes. It sizes the window at the log's end
 * where a crash may leave unacknowledged damage (recovery.ts): a store run with larger messages
 * than the default needs it, or a torn tail there reads as damage in the middle.
 */
function maxMessageBytesOption(): Option {
  return new Option('--max-message-bytes <bytes>', `the maxMessageBytes the store runs with (sizes the torn-tail window at the log's end)`)
    .argParser((value: string) => {
      const n = Number(value);
      if (!Number.isInteger(n) || n < 1 || n > MAX_MESSAGE_BYTES_LIMIT) {
        throw new InvalidArgumentError(`--max-message-bytes must be an integer in 1..${MAX_MESSAGE_BYTES_LIMIT}, got "${value}"`);
      }
      return n;
    })
    .default(DEFAULT_MAX_MESSAGE_BYTES);
}

function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

function printInspect(s: StoreScan): void {
  const out: string[] = [];
  out.push(`store ${s.dir}`);
  out.push(`  records ${s.records}, ${mib(s.bytes)} in ${s.segments.length} segment(s); clean shutdown: ${s.cleanShutdown ? 'yes' : 'no'}`);
  out.push(`  checkpoint: ${s.checkpoint.present ? (s.checkpoint.valid ? `valid, covers log up to ${s.checkpoint.logPosition}` : 'present but invalid') : 'none'}`);
  if (s.lockHolderPid !== null) {
    out.push(
      s.lockHolderAlive
        ? `  locked by live process ${s.lockHolderPid}`
        : `  stale lock of process ${s.lockHolderPid} (no longer running; the next open takes it over)`,
    );
  }
  out.push('  segments:');
  for (const seg of s.segments) out.push(`    ${seg.name}  ${mib(seg.bytes)}  ${seg.records} records`);
  if (s.spareSegmentBytes !== null) out.push(`  spare segment file (retention's, to become the next segment): ${mib(s.spareSegmentBytes)}`);
  out.push(`  topics: ${s.topics.length}, queues: ${s.queues.length}`);
  const perTopic = new Map<string, { queues: number; messages: number; bytes: number }>();
  for (const q of s.queues) {
    const t = perTopic.get(q.topic) ?? { queues: 0, messages: 0, bytes: 0 };
    t.queues++;
    t.messages += q.messages;
    t.bytes += q.bytes;
    perTopic.set(q.topic, t);
  }
  for (const [topic, t] of perTopic) out.push(`    ${topic}: ${t.queues} queue(s), ${t.messages} message(s), ${mib(t.bytes)}`);
  process.stdout.write(`${out.join('\n')}\n`);
}

function printVerify(r: VerifyReport): void {
  const out: string[] = [];
  out.push(`${r.ok ? 'OK' : 'DAMAGED'}: ${r.dir}: ${r.records} records in ${r.segments.length} segment(s), ${r.queues.length} queue(s)`);
  for (const d of r.damage) out.push(`  damage: ${d.verdict} at log position ${d.from}..${d.to} (segment ${d.segmentStart})`);
  if (r.tail) out.push(`  torn tail: ${r.tail.verdict} at ${r.tail.from}..${r.tail.to}; the next open cuts it (no acknowledged record lies there)`);
  if (r.dictionaryTailBytes > 0) {
    out.push(
      r.dictionaryDamaged
        ? `  topic dictionary: damaged: ${r.dictionaryTailBytes} byte(s) from its last valid entry on, valid entries among them (open refuses a store whose log uses the lost ids)`
        : `  topic dictionary: ${r.dictionaryTailBytes} torn byte(s) at its end`,
    );
  }
  if (r.logShortOfCheckpoint) {
    out.push(`  missing log: the checkpoint covers the log up to ${r.logShortOfCheckpoint.checkpointPosition}, the files reach ${r.logShortOfCheckpoint.filesEnd} (a segment file lost or cut short)`);
  }
  for (const p of r.offsetProblems) out.push(`  offset: ${p.topic}/${p.queueId} expected ${p.expected}, found ${p.found} at ${p.position}`);
  if (r.offsetProblemCount > r.offsetProblems.length) out.push(`  ... ${r.offsetProblemCount - r.offsetProblems.length} more offset problem(s)`);
  if (r.unknownTopicRecords > 0) out.push(`  ${r.unknownTopicRecords} record(s) name a topic id missing from the dictionary`);
  process.stdout.write(`${out.join('\n')}\n`);
}

/** `cirrus store inspect DIR` and `cirrus store verify DIR`. */
export function registerStoreCommands(program: Command): void {
  const store = program.command('store').description('inspect and verify a message store directory (read-only)');
  store
    .command('inspect')
    .argument('<dir>', 'store directory')
    .option('--json', 'print one JSON object')
    .addOption(progressOption())
    .addOption(maxMessageBytesOption())
    .description('topics, queues, sizes and segments of a store')
    .action(async (dir: string, opts: { json?: boolean; progress: ProgressWhen; maxMessageBytes: number }) => {
      const scan = await inspectStore(dir, { maxMessageBytes: opts.maxMessageBytes, onProgress: progressPrinter('inspect', opts.progress) });
      if (opts.json) process.stdout.write(`${JSON.stringify(scan)}\n`);
      else printInspect(scan);
    });
  store
    .command('verify')
    .argument('<dir>', 'store directory')
    .option('--json', 'print one JSON object')
    .option('--strict', 'count a torn tail (cut by the next open) as damage too')
    .addOption(progressOption())
    .addOption(maxMessageBytesOption())
    .description(
      "check every record's CRC and every queue's offset sequence; exit code 0 when sound, 2 on damage, 1 when <dir> is missing, not a store (CIRRUS_STORE_NOT_FOUND) or unreadable",
    )
    .action(async (dir: string, opts: { json?: boolean; strict?: boolean; progress: ProgressWhen; maxMessageBytes: number }) => {
      const report = await verifyStore(dir, { strict: opts.strict === true, maxMessageBytes: opts.maxMessageBytes, onProgress: progressPrinter('verify', opts.progress) });
      if (opts.json) process.stdout.write(`${JSON.stringify(report)}\n`);
      else printVerify(report);
      if (!report.ok) process.exitCode = 2;
    });
}
