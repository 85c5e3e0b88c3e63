/**
 * One process per store directory. The lock is a file created with O_EXCL holding the holder's
 * pid. A lock whose pid is no longer alive (the holder was killed with SIGKILL) is stale: it is
 * removed and taken over, so a crash never blocks the next open. A lock held by this very process
 * (a second MessageStore on the same dir) counts as live too.
 *
 * Known limit: pid reuse. If the dead holder's pid now belongs to an unrelated live process, the
 * lock looks live and open fails with CIRRUS_STORE_LOCKED naming that pid; the operator removes
 * LOCK after checking. The reverse (two live holders) cannot happen: O_EXCL decides the race.
 */
import { promises as fsp, constants as fsc } from 'node:fs';
import { join } from 'node:path';
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

export async function acquireLock(dir: string): Promise<StoreLock> {
  const path = join(dir, LOCK_FILE);
  for (let attempt = 0; attempt < STALE_TAKEOVER_ATTEMPTS; attempt++) {
    try {
      const fh = await fsp.open(path, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, 0o644);
      try {
        await fh.writeFile(`${process.pid}\n`);
        await fh.sync();
      } finally {
        await fh.close();
      }
      let released = false;
      return {
        async release() {
          if (released) return;
          released = true;
          await fsp.unlink(path).catch(() => undefined);
        },
      };
    } catch (err) {
      if ((err as { code?: unknown }).code !== 'EEXIST') throw err;
    }
    const text = await fsp.readFile(path, 'utf8').catch(() => '');
    const holder = Number.parseInt(text.trim(), 10);
    if (pidAlive(holder)) throw new StoreLockedError(dir, holder);
    // An empty file means a holder died between create and write, or is writing right now:
    // give a live writer a moment before calling it stale.
    if (text.trim() === '') await new Promise((r) => setTimeout(r, 50));
    await fsp.unlink(path).catch(() => undefined);
  }
  throw new StoreLockedError(dir, -1);
}
