/**
 * What a record's CRC32C costs: @node-rs/crc32 (one chain of the SSE4.2 instruction; the store's
 * portable path) against the store's native addon (three chains, native/crc32c.c), on records
 * of a given size either in cache (the same few records again: an append checksums the record it
 * has just copied) or not (records spread over a 64 MiB buffer: a cold read checksums bytes
 * another core has just read in). Alternated `--rounds` times; microseconds per record on the
 * main thread. docs/store-measurements.md ("Fourteenth pass") has this machine's results.
 *
 *   node dist/bench/store/crc-probe.js [--sizes 100,1024,8790,65536] [--rounds 2] [--json] (--help)
 */
import { Command, InvalidArgumentError } from 'commander';
import { crc32cImplementation, crc32cRange, portableCrc32c } from '../../src/store/crc.js';
import { MEAN_RECORD_BYTES } from './constants.js';
import { positiveInt } from './options.js';
import { randomPool } from './payload.js';

const SPREAD_BYTES = 64 * 1024 * 1024;
/** Bytes checksummed per measurement: long enough to time, short enough for a quick probe. */
const BYTES_PER_CELL = 400 * 1024 * 1024;

interface Row {
  way: '@node-rs/crc32' | 'native';
  bytes: number;
  data: 'in cache' | 'spread';
  round: number;
  usPerRecord: number;
}

function sizeList(raw: string): number[] {
  const sizes = raw.split(',').map((s) => Number(s.trim()));
  for (const n of sizes) {
    if (!Number.isInteger(n) || n < 1 || n > SPREAD_BYTES / 4) throw new InvalidArgumentError(`--sizes: ${n} is not a whole number of bytes from 1 to ${SPREAD_BYTES / 4}`);
  }
  return sizes;
}

function main(): void {
  const cmd = new Command('crc-probe')
    .description('per-record cost of CRC32C: @node-rs/crc32 against the store\'s native addon, data in cache and spread')
    .option('--sizes <list>', `record sizes in bytes, comma separated (${MEAN_RECORD_BYTES} is the benchmark's mean record)`, sizeList, [100, 1024, MEAN_RECORD_BYTES, 65536])
    .option('--rounds <n>', 'times each cell is measured, alternated', positiveInt('--rounds', 100), 2)
    .option('--json', 'print the rows as one JSON object on the last line');
  cmd.parse(process.argv.slice(2), { from: 'user' });
  const o = cmd.opts<{ sizes: number[]; rounds: number; json?: boolean }>();
  if (crc32cImplementation !== 'sse4.2') {
    console.error(`the native CRC32C is not in use here (${crc32cImplementation}): build the addon (npm run build:native) on x86-64 with SSE4.2, and leave CIRRUS_NATIVE_CRC unset`);
    process.exitCode = 2;
    return;
  }
  const spread = randomPool(3, SPREAD_BYTES);
  const ways: Array<[Row['way'], (at: number, n: number) => number]> = [
    ['@node-rs/crc32', (at, n) => portableCrc32c(spread.subarray(at, at + n))],
    ['native', (at, n) => crc32cRange(spread, at, at + n)],
  ];
  const rows: Row[] = [];
  for (let round = 1; round <= o.rounds; round++) {
    for (const bytes of o.sizes) {
      const records = Math.max(1000, Math.floor(BYTES_PER_CELL / bytes));
      const slots = Math.floor(SPREAD_BYTES / bytes);
      for (const data of ['in cache', 'spread'] as const) {
        for (const [way, crc] of ways) {
          const started = performance.now();
          // Calls into native code are never dropped by V8, so the results need no further use.
          for (let i = 0; i < records; i++) crc((data === 'in cache' ? i & 3 : i % slots) * bytes, bytes);
          const us = (performance.now() - started) * 1000;
          const row: Row = { way, bytes, data, round, usPerRecord: Math.round((us / records) * 1000) / 1000 };
          rows.push(row);
          console.error(`round ${round}, ${bytes} B ${data}, ${way}: ${row.usPerRecord} us per record`);
        }
      }
    }
  }
  if (o.json) console.log(JSON.stringify({ rows }));
}

main();
