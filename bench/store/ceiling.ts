import { constants as fsc } from 'node:fs';
import { open, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { DIRECT_WRITE_ALIGN_BYTES } from '../../src/store/constants.js';
import { nativeDurableWrite } from '../../src/store/durable-write.js';
import { randomPool } from './payload.js';

/**
 * How a cell writes: `buffered` is a positional write into the page cache, then fdatasync;
 * `direct` is the store's own durable write (native/durable-write.c: O_DIRECT from an aligned
 * buffer, then fdatasync, in one job), what its flushes use where the addon is built.
 */
export type CeilingIo = 'buffered' | 'direct';

export interface CeilingCell {
  files: number;
  blockBytes: number;
  io: CeilingIo;
  mibps: number;
}

export interface CeilingResult {
  cells: CeilingCell[];
  best: CeilingCell;
}

const MiB = 1024 * 1024;

/**
 * The disk's durable sequential write ceiling, measured with the calls a log uses: positional
 * write of one block, then fdatasync, repeated, in `files` files at once, through the page cache
 * and (where the native writer is built and the file system takes O_DIRECT) direct. The store can
 * not beat the best cell on the same device, so its throughput is reported as a ratio to it.
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
  const ios: CeilingIo[] = (await directWritesWork(dir)) ? ['buffered', 'direct'] : ['buffered'];
  for (const io of ios) {
    for (const files of options.fileCounts) {
      for (const blockBytes of options.blockSizes) {
        const cell = await probeCell(dir, files, blockBytes, options.cellBytes, block, io);
        cells.push(cell);
        options.onCell?.(cell);
      }
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
  const io: CeilingIo = (await directWritesWork(dir)) ? 'direct' : 'buffered';
  return probeCell(dir, 1, roundBytes, cellBytes, randomPool(7, roundBytes), io);
}

/** Whether the store would write direct in `dir`: the native writer is built and the file system takes O_DIRECT. */
export async function directWritesWork(dir: string): Promise<boolean> {
  if (nativeDurableWrite === null || fsc.O_DIRECT === undefined) return false;
  const path = join(dir, 'ceiling-direct-check');
  try {
    const fh = await open(path, fsc.O_RDWR | fsc.O_CREAT | fsc.O_DIRECT, 0o644);
    await fh.close();
    return true;
  } catch {
    return false;
  } finally {
    await rm(path, { force: true });
  }
}

async function probeCell(
  dir: string,
  files: number,
  blockBytes: number,
  cellBytes: number,
  block: Buffer,
  io: CeilingIo,
): Promise<CeilingCell> {
  const blocksPerFile = Math.max(1, Math.floor(cellBytes / files / blockBytes));
  const paths = Array.from({ length: files }, (_, i) => join(dir, `ceiling-${files}x${blockBytes}-${i}`));
  const flags = fsc.O_CREAT | fsc.O_TRUNC | (io === 'direct' ? fsc.O_RDWR | fsc.O_DIRECT : fsc.O_WRONLY);
  const handles: FileHandle[] = await Promise.all(paths.map((p) => open(p, flags, 0o644)));
  try {
    const started = process.hrtime.bigint();
    await Promise.all(
      handles.map(async (fh) => {
        if (io === 'direct') {
          const dw = nativeDurableWrite;
          if (dw === null) throw new Error('direct ceiling cell without the native writer');
          const writer = dw.createWriter(fh.fd, DIRECT_WRITE_ALIGN_BYTES);
          const bufs = [block.subarray(0, blockBytes)];
          for (let i = 0; i < blocksPerFile; i++) await dw.writeDurable(writer, bufs, i * blockBytes);
          return;
        }
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
    return { files, blockBytes, io, mibps: total / MiB / seconds };
  } finally {
    await Promise.all(handles.map((fh) => fh.close()));
    await Promise.all(paths.map((p) => rm(p, { force: true })));
  }
}
