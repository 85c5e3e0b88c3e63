import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { CHECKPOINT_INTERVAL_BYTES } from '../../src/store/constants.js';
import { DEFAULT_SEGMENT_BYTES, MessageStore } from '../../src/store/index.js';
import type { StoreOptions } from '../../src/store/types.js';
import { CRASH_MAX_BYTES, CRASH_MIN_BYTES } from '../../test/store/crash-harness.js';
import { dropPageCache } from './system.js';

/**
 * The kill comes when the child has appended about this much log since it opened the store: just
 * short of the store's own checkpoint interval, the most log a reopen after a crash ever scans
 * (the child takes no checkpoints of its own: --checkpoint-ms 0).
 */
const KILL_AFTER_LOG_BYTES = CHECKPOINT_INTERVAL_BYTES - 16 * 1024 * 1024;
/** Acknowledgements that make KILL_AFTER_LOG_BYTES (the child's records are uniform in size). */
const KILL_AFTER_ACKS = Math.floor(KILL_AFTER_LOG_BYTES / ((CRASH_MIN_BYTES + CRASH_MAX_BYTES) / 2));
/** ... or this long after it opened the store, whichever comes first. */
const KILL_AFTER_MS = 30_000;
/** A child that has not opened the store by then is killed and the measurement skipped. */
const CHILD_READY_TIMEOUT_MS = 120_000;

export interface KillReopen {
  /** open() after the kill, seconds; null when the child never opened the store. */
  seconds: number | null;
  acknowledgedBeforeKill: number;
  /** Log bytes recovery scanned past its checkpoint. */
  scannedBytes: number | null;
  /** How the page cache was dropped before the reopen (so the scan reads the device), or why not. */
  cacheDrop: string;
  note: string;
}

/**
 * Reopen time after kill -9 of a process that was appending to the full benchmark data set
 * (issue 2 target: at most 2 s for a 4 GiB store). The appender is the crash harness's child
 * (dist/test/store/crash-child.js), so the kill lands in the middle of group commits.
 */
export async function measureKillReopen(storeOptions: StoreOptions, seed: number): Promise<KillReopen> {
  const env = { ...process.env };
  delete env.NODE_TEST_CONTEXT;
  const child = spawn(
    process.execPath,
    [fileURLToPath(new URL('../../test/store/crash-child.js', import.meta.url)), '--dir', storeOptions.dir,
      '--seed', String(seed), '--iteration', '0', '--producers', '24', '--checkpoint-ms', '0',
      '--segment-bytes', String(storeOptions.segmentBytes ?? DEFAULT_SEGMENT_BYTES)],
    { stdio: ['ignore', 'pipe', 'pipe'], env },
  );
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s.slice(0, 4096)));
  let exitedBy: string | null = null;
  const exited = new Promise<void>((resolve) =>
    child.on('exit', (code, signal) => {
      exitedBy = signal ?? `exit code ${code}`;
      resolve();
    }),
  );
  let acks = 0;
  let ready = false;
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, CHILD_READY_TIMEOUT_MS);
    let killTimer: NodeJS.Timeout | null = null;
    const done = () => {
      clearTimeout(timer);
      if (killTimer) clearTimeout(killTimer);
      resolve();
    };
    createInterface({ input: child.stdout }).on('line', (line) => {
      if (line === 'R') {
        ready = true;
        killTimer = setTimeout(done, KILL_AFTER_MS);
      } else if (line.startsWith('A ') && ++acks >= KILL_AFTER_ACKS) {
        done();
      }
    });
    void exited.then(done);
  });
  // A child that ended by itself (it never does when well) was not killed mid-append: nothing
  // measured after it would be what the benchmark says it is.
  const endedBeforeKill = exitedBy !== null;
  child.kill('SIGKILL');
  await exited;
  if (!ready) return { seconds: null, acknowledgedBeforeKill: 0, scannedBytes: null, cacheDrop: 'not dropped', note: `appender never opened the store: ${stderr.trim()}` };
  if (endedBeforeKill || exitedBy !== 'SIGKILL') {
    return { seconds: null, acknowledgedBeforeKill: acks, scannedBytes: null, cacheDrop: 'not dropped', note: `appender ended by itself (${exitedBy}) before the kill: ${stderr.trim()}` };
  }
  const drop = dropPageCache(storeOptions.dir);
  const started = process.hrtime.bigint();
  const store = await MessageStore.open(storeOptions);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const scannedBytes = store.recovery.scannedBytes;
  await store.close();
  return { seconds, acknowledgedBeforeKill: acks, scannedBytes, cacheDrop: drop.detail, note: 'kill -9 while appending, then open()' };
}
