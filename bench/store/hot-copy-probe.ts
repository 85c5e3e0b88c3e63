/**
 * What a hot read's copy costs per record: the records of a getRange copied out of a 1 MiB write
 * chunk one `Buffer.from` each (an ArrayBuffer per record, as the reader did until the twelfth
 * pass) against `ReadSlab.copy` (cut from shared 256 KiB slabs, what it does now). Records of
 * the benchmark's sizes (100 B .. 17 KiB), `--records` per call, alternated `--rounds` times,
 * each for `--calls` calls; main-thread and process CPU per record. docs/store-measurements.md
 * ("Twelfth pass") has this machine's results.
 *
 *   node dist/bench/store/hot-copy-probe.js [--records 100] [--calls 3000] [--rounds 2] [--json] (--help)
 */
import { Command } from 'commander';
import { ReadSlab } from '../../src/store/read-slab.js';
import { MAX_MESSAGE_BYTES, MIN_MESSAGE_BYTES } from './constants.js';
import { positiveInt } from './options.js';
import { randomPool } from './payload.js';
import { mix32 } from './prng.js';

const CHUNK_BYTES = 1024 * 1024;

interface Row {
  way: 'Buffer.from per record' | 'ReadSlab.copy';
  round: number;
  usPerRecord: number;
  cpuUsPerRecord: number;
}

function main(): void {
  const cmd = new Command('hot-copy-probe')
    .description('per-record cost of copying hot records out of a write chunk: Buffer.from each vs cut from shared slabs')
    .option('--records <n>', 'records per call (a getRange)', positiveInt('--records', 100), 100)
    .option('--calls <n>', 'calls per measurement', positiveInt('--calls', 1_000_000), 3000)
    .option('--rounds <n>', 'times each way is measured, alternated', positiveInt('--rounds', 100), 2)
    .option('--json', 'print the rows as one JSON object on the last line');
  cmd.parse(process.argv.slice(2), { from: 'user' });
  const o = cmd.opts<{ records: number; calls: number; rounds: number; json?: boolean }>();
  const chunk = randomPool(1, CHUNK_BYTES);
  const spans: Array<[number, number]> = [];
  for (let i = 0; i < o.records; i++) {
    const n = MIN_MESSAGE_BYTES + (mix32(7, i, 0, 0) % (MAX_MESSAGE_BYTES - MIN_MESSAGE_BYTES + 1));
    const from = mix32(11, i, 0, 0) % (CHUNK_BYTES - n);
    spans.push([from, from + n]);
  }
  const slab = new ReadSlab();
  const ways: Array<[Row['way'], () => Buffer[]]> = [
    ['Buffer.from per record', () => spans.map(([from, to]) => Buffer.from(chunk.subarray(from, to)))],
    ['ReadSlab.copy', () => spans.map(([from, to]) => slab.copy(chunk, from, to))],
  ];
  const rows: Row[] = [];
  for (let round = 1; round <= o.rounds; round++) {
    for (const [way, call] of ways) {
      const cpu = process.cpuUsage();
      const started = performance.now();
      // Allocations and copies have effects V8 cannot drop, so the results need no further use.
      for (let c = 0; c < o.calls; c++) call();
      const us = (performance.now() - started) * 1000;
      const used = process.cpuUsage(cpu);
      const records = o.calls * o.records;
      const row: Row = { way, round, usPerRecord: Math.round((us / records) * 100) / 100, cpuUsPerRecord: Math.round(((used.user + used.system) / records) * 100) / 100 };
      rows.push(row);
      console.error(`round ${round}, ${way}: ${row.usPerRecord} us per record on the main thread, ${row.cpuUsPerRecord} us of process CPU (the collector's threads included)`);
    }
  }
  if (o.json) console.log(JSON.stringify({ records: o.records, calls: o.calls, rows }));
}

main();
