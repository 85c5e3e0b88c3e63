/**
 * One process per store directory. The lock is the file LOCK holding the holder's pid. It is
 * written complete and synced under a unique temporary name first, then hard-linked to LOCK:
 * link(2) fails with EEXIST when LOCK exists, so creation is atomic and a LOCK file is never
 * seen half-written. A lock whose pid is no longer alive (the holder was killed with SIGKILL)
 * is stale: it is removed and taken over, so a crash never blocks the next open. A lock held by
 * this very process (a second MessageStore on the same dir) counts as live too.
 *
 * Known limits: pid reuse (if the dead holder's pid now belongs to an unrelated live process,
 * the lock looks live and open fails with CIRRUS_STORE_LOCKED naming that pid; the operator
 * removes LOCK after checking), pid namespaces (containers sharing a volume), and two processes
 * taking over the same stale lock in the same instant (one may remove the other's fresh lock).
 * Two live processes never both create a lock: link decides that race.
 */
import { promises as fsp, constants as fsc } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { LOCK_FILE } from './format.js';
import { StoreLockedError } from './errors.js';

function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: the process exists but belongs to someone else.
    return (err as { code?: unknown }).code === 'EPERM';
  }
}

export interface StoreLock {
  release(): Promise<void>;
}

const STALE_TAKEOVER_ATTEMPTS = 3;

/** Links a complete, synced pid file to LOCK; false when LOCK already exists. */
async function tryCreate(dir: string, path: string): Promise<boolean> {
  const tmp = join(dir, `${LOCK_FILE}.${process.pid}.${randomBytes(6).toString('hex')}`);
  const fh = await fsp.open(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, 0o644);
  try {
    await fh.writeFile(`${process.pid}\n`);
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await fsp.link(tmp, path);
    return true;
  } catch (err) {
    if ((err as { code?: unknown }).code === 'EEXIST') return false;
    throw err;
  } finally {
    await fsp.unlink(tmp).catch(() => undefined);
  }
}

/** Temporary pid files of processes that died between writing and linking them. */
async function removeLeftoverTemporaries(dir: string): Promise<void> {
  const prefix = `${LOCK_FILE}.`;
  for (const name of await fsp.readdir(dir)) {
    if (!name.startsWith(prefix)) continue;
    const pid = Number.parseInt(name.slice(prefix.length), 10);
    if (!pidAlive(pid)) await fsp.unlink(join(dir, name)).catch(() => undefined);
  }
}

export async function acquireLock(dir: string): Promise<StoreLock> {
  const path = join(dir, LOCK_FILE);
  for (let attempt = 0; attempt < STALE_TAKEOVER_ATTEMPTS; attempt++) {
    if (await tryCreate(dir, path)) {
      const dirFh = await fsp.open(dir, fsc.O_RDONLY);
      await dirFh.sync().finally(() => dirFh.close());
      await removeLeftoverTemporaries(dir);
      let released = false;
      return {
        async release() {
          if (released) return;
          released = true;
          await fsp.unlink(path).catch(() => undefined);
        },
      };
    }
    const text = await fsp.readFile(path, 'utf8').catch(() => '');
    const holder = Number.parseInt(text.trim(), 10);
    if (pidAlive(holder)) throw new StoreLockedError(dir, holder);
    // Dead holder (or an unreadable lock, which link never produces): stale, take it over.
    await fsp.unlink(path).catch(() => undefined);
  }
  throw new StoreLockedError(dir, -1);
}
