import { open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { randomPool } from './payload.js';

export interface CeilingCell {
  files: number;
  blockBytes: number;
  mibps: number;
}

export interface CeilingResult {
  cells: CeilingCell[];
  best: CeilingCell;
}

const MiB = 1024 * 1024;

/**
 * The disk's durable sequential write ceiling, measured with the calls a log uses: positional
 * write of one block, then fdatasync, repeated, in `files` files at once. The store can not beat
 * the best cell on the same device, so its throughput is reported as a ratio to it.
 */
export async function probeCeiling(
  dir: string,
  options: {
    cellBytes: number;
    fileCounts: readonly number[];
    blockSizes: readonly number[];
    onCell?: (cell: CeilingCell) => void;
  },
): Promise<CeilingResult> {
  const block = randomPool(7, Math.max(...options.blockSizes));
  const cells: CeilingCell[] = [];
  for (const files of options.fileCounts) {
    for (const blockBytes of options.blockSizes) {
      const cell = await probeCell(dir, files, blockBytes, options.cellBytes, block);
      cells.push(cell);
      options.onCell?.(cell);
    }
  }
  const best = cells.reduce((a, b) => (b.mibps > a.mibps ? b : a));
  return { cells, best };
}

/**
 * What the device gives one file's append rounds of `roundBytes`, each round written and
 * fdatasync'd only after the previous one is durable. That is the most a log can get from
 * closed-loop producers who keep `roundBytes` in flight between them (each waits for its append
 * before the next: Little's law), whatever the engine does; the ceiling's best cell keeps more in
 * flight than that. Reported beside the ceiling so a run shows how much of the gap is the
 * workload's and how much the engine's.
 */
export async function probeRounds(dir: string, roundBytes: number, cellBytes: number): Promise<CeilingCell> {
  return probeCell(dir, 1, roundBytes, cellBytes, randomPool(7, roundBytes));
}

async function probeCell(
  dir: string,
  files: number,
  blockBytes: number,
  cellBytes: number,
  block: Buffer,
): Promise<CeilingCell> {
  const blocksPerFile = Math.max(1, Math.floor(cellBytes / files / blockBytes));
  const paths = Array.from({ length: files }, (_, i) => join(dir, `ceiling-${files}x${blockBytes}-${i}`));
  const handles = await Promise.all(paths.map((p) => open(p, 'w')));
  try {
    const started = process.hrtime.bigint();
    await Promise.all(
      handles.map(async (fh) => {
        for (let i = 0; i < blocksPerFile; i++) {
          let done = 0;
          while (done < blockBytes) {
            const { bytesWritten } = await fh.write(block, done, blockBytes - done, i * blockBytes + done);
            done += bytesWritten;
          }
          await fh.datasync();
        }
      }),
    );
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const total = blocksPerFile * blockBytes * files;
    return { files, blockBytes, mibps: total / MiB / seconds };
  } finally {
    await Promise.all(handles.map((fh) => fh.close()));
    await Promise.all(paths.map((p) => rm(p, { force: true })));
  }
}
