/**
 * One process per store directory. The lock is the file LOCK naming its holder:
 *
 *   <pid> <start> <boot> <nonce>\n
 *
 * `start` is the holder's start time (field 22 of /proc/<pid>/stat, clock ticks since boot),
 * `boot` the kernel's boot id, `nonce` random hex that makes each lock file unique. A pid alone
 * is not an identity: a container restarted after SIGKILL often gets the very pid its killed
 * predecessor had (1, or another small number), and a pid-only lock would then name a live
 * process, this one, and block every open. So a holder is alive only if its pid is alive, was
 * started at `start`, and the machine has not rebooted since. Where /proc is missing (not Linux)
 * `start` and `boot` are `-` and the pid alone decides, as with lock files of older versions
 * (a bare pid), which are still read.
 *
 * Creation: the file is written complete and synced under a unique temporary name, then
 * hard-linked to LOCK. link(2) fails with EEXIST when LOCK exists, so creation is atomic and a
 * LOCK file is never seen half-written. Takeover of a stale lock: only under the takeover mutex
 * LOCK-TAKEOVER (created the same way), and only if LOCK still holds the very bytes judged stale
 * (the nonce makes each lock's bytes unique). Nothing but a takeover under the mutex removes a
 * lock that is not one's own, so between that check and the unlink LOCK cannot change: two
 * processes taking over one stale lock never both end up holding the directory. The others see
 * the winner's lock, alive.
 *
 * Known limits: pid namespaces (processes in different containers sharing a volume see different
 * pids; a holder in another namespace looks dead). A process that dies while holding the mutex
 * (a millisecond) leaves it stale; it is cleared the way a stale LOCK was before this mutex, so
 * only then can two concurrent takeovers race.
 */
import { readFileSync, promises as fsp, constants as fsc } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { errnoCode } from '../common/index.js';
import { LOCK_FILE } from './format.js';
import { StoreIoError, StoreLockedError } from './errors.js';

/** How long an open waits while others take a stale lock over, then CIRRUS_STORE_LOCKED (holderPid -1). */
const LOCK_TAKEOVER_WAIT_MS = 2_000;
/** Pause between looks at a lock another process is taking over. */
const LOCK_TAKEOVER_RETRY_MS = 2;
/** The takeover mutex; not `LOCK.`-prefixed, which names temporaries. */
const TAKEOVER_FILE = `${LOCK_FILE}-TAKEOVER`;
const UNKNOWN = '-';

/** Who holds (or held) a lock; `start` and `boot` are UNKNOWN where the system does not say. */
export interface LockHolder {
  pid: number;
  start: string;
  boot: string;
  nonce: string;
}

/** Start time of `pid` in clock ticks since boot (/proc/<pid>/stat field 22), UNKNOWN without /proc. */
function startTimeOf(pid: number): string {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 2 (the command) is in parentheses and may hold spaces; fields 3.. follow the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const start = fields[22 - 3];
    return start !== undefined && /^\d+$/.test(start) ? start : UNKNOWN;
  } catch {
    return UNKNOWN;
  }
}

function bootId(): string {
  try {
    const id = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    return /^[0-9a-f-]+$/.test(id) ? id : UNKNOWN;
  } catch {
    return UNKNOWN;
  }
}

function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: the process exists but belongs to someone else.
    return errnoCode(err) === 'EPERM';
  }
}

export function formatLock(h: LockHolder): string {
  return `${h.pid} ${h.start} ${h.boot} ${h.nonce}\n`;
}

/** Reads a lock file's text; a bare pid (older versions) leaves the rest UNKNOWN. */
export function parseLock(text: string): LockHolder {
  const [pid, start, boot, nonce] = text.trim().split(/\s+/);
  return {
    pid: Number.parseInt(pid ?? '', 10),
    start: start ?? UNKNOWN,
    boot: boot ?? UNKNOWN,
    nonce: nonce ?? UNKNOWN,
  };
}

/** Whether the process a lock names is still running (this process included). */
export function holderAlive(h: LockHolder): boolean {
  if (!pidAlive(h.pid)) return false;
  if (h.boot !== UNKNOWN) {
    const boot = bootId();
    if (boot !== UNKNOWN && boot !== h.boot) return false;
  }
  if (h.start !== UNKNOWN) {
    const start = startTimeOf(h.pid);
    if (start !== UNKNOWN && start !== h.start) return false;
  }
  return true;
}

function self(): LockHolder {
  return { pid: process.pid, start: startTimeOf(process.pid), boot: bootId(), nonce: randomBytes(8).toString('hex') };
}

export interface StoreLock {
  release(): Promise<void>;
}

/** A name in `dir` only this process uses: LOCK.<pid>.<random>. */
function privateName(dir: string): string {
  return join(dir, `${LOCK_FILE}.${process.pid}.${randomBytes(6).toString('hex')}`);
}

/** Links a complete lock file (synced when `durable`) to `path`; false when `path` already exists. */
async function tryCreate(dir: string, path: string, text: string, durable = true): Promise<boolean> {
  const tmp = privateName(dir);
  const fh = await fsp.open(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, 0o644);
  try {
    await fh.writeFile(text);
    if (durable) await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await fsp.link(tmp, path);
    return true;
  } catch (err) {
    if (errnoCode(err) === 'EEXIST') return false;
    throw err;
  } finally {
    await fsp.unlink(tmp).catch(() => undefined);
  }
}

/**
 * Removes LOCK if it still holds exactly `staleText`, under the takeover mutex. True when the
 * caller should try to create LOCK again; false when another process is taking over (wait).
 */
async function takeOver(dir: string, path: string, staleText: string, me: string): Promise<boolean> {
  const mutex = join(dir, TAKEOVER_FILE);
  if (!(await tryCreate(dir, mutex, me, false))) {
    const text = await fsp.readFile(mutex, 'utf8').catch(() => null);
    // Its holder died mid-takeover: clear it (the one race left, see the file comment).
    if (text !== null && !holderAlive(parseLock(text))) await fsp.unlink(mutex).catch(() => undefined);
    return false;
  }
  try {
    const now = await fsp.readFile(path, 'utf8').catch(() => null);
    if (now === staleText) await fsp.unlink(path);
    return true;
  } finally {
    await fsp.unlink(mutex).catch(() => undefined);
  }
}

/** Temporary files of processes that died between writing and linking them. */
async function removeLeftoverTemporaries(dir: string): Promise<void> {
  // Only names of privateName's form: a user's LOCK.bak (say) is not the store's to delete.
  const temporary = new RegExp(`^${LOCK_FILE}\\.(\\d+)\\.[0-9a-f]+$`);
  for (const name of await fsp.readdir(dir)) {
    const m = temporary.exec(name);
    if (m === null) continue;
    if (!pidAlive(Number(m[1]))) await fsp.unlink(join(dir, name)).catch(() => undefined);
  }
}

export async function acquireLock(dir: string): Promise<StoreLock> {
  const path = join(dir, LOCK_FILE);
  const text = formatLock(self());
  const deadline = Date.now() + LOCK_TAKEOVER_WAIT_MS;
  for (;;) {
    if (await tryCreate(dir, path, text)) {
      const dirFh = await fsp.open(dir, fsc.O_RDONLY);
      await dirFh.sync().finally(() => dirFh.close());
      await removeLeftoverTemporaries(dir);
      let released = false;
      return {
        async release() {
          if (released) return;
          released = true;
          // Only our own file: never a lock another process holds after a race we lost.
          const now = await fsp.readFile(path, 'utf8').catch(() => null);
          if (now === text) await fsp.unlink(path).catch(() => undefined);
        },
      };
    }
    const found = await fsp.readFile(path, 'utf8').catch((err: unknown) => {
      // Not a file the store made (a directory, say): no process holds it, and waiting for it
      // to change ends in a misleading "locked"; say what is there.
      if (errnoCode(err) === 'EISDIR') throw new StoreIoError(`${path} is a directory, not a lock file; remove it to open the store`, err);
      return null;
    });
    if (found !== null) {
      const holder = parseLock(found);
      if (holderAlive(holder)) throw new StoreLockedError(dir, holder.pid);
      // Dead holder, reused pid, earlier boot, or unreadable content (link never produces it).
      if (await takeOver(dir, path, found, text)) continue;
    }
    // Released meanwhile, or another process is taking the stale lock over: look again soon.
    if (Date.now() > deadline) throw new StoreLockedError(dir, -1);
    await sleep(LOCK_TAKEOVER_RETRY_MS);
  }
}
