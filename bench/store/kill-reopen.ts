import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { DEFAULT_SEGMENT_BYTES, MessageStore } from '../../src/store/index.js';
import type { StoreOptions } from '../../src/store/types.js';

/** Appends acknowledged by the child before the kill: enough that the log has an unclean tail. */
const KILL_AFTER_ACKS = 2_000;
/** ... or this long after it opened the store, whichever comes first. */
const KILL_AFTER_MS = 3_000;
/** A child that has not opened the store by then is killed and the measurement skipped. */
const CHILD_READY_TIMEOUT_MS = 120_000;

export interface KillReopen {
  /** open() after the kill, seconds; null when the child never opened the store. */
  seconds: number | null;
  acknowledgedBeforeKill: number;
  /** Log bytes recovery scanned past its checkpoint. */
  scannedBytes: number | null;
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
      '--seed', String(seed), '--iteration', '0', '--producers', '24',
      '--segment-bytes', String(storeOptions.segmentBytes ?? DEFAULT_SEGMENT_BYTES)],
    { stdio: ['ignore', 'pipe', 'pipe'], env },
  );
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s.slice(0, 4096)));
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
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
  child.kill('SIGKILL');
  await exited;
  if (!ready) return { seconds: null, acknowledgedBeforeKill: 0, scannedBytes: null, note: `appender never opened the store: ${stderr.trim()}` };
  const started = process.hrtime.bigint();
  const store = await MessageStore.open(storeOptions);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const scannedBytes = store.recovery.scannedBytes;
  await store.close();
  return { seconds, acknowledgedBeforeKill: acks, scannedBytes, note: 'kill -9 while appending, then open()' };
}
