import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Bytes this process made the block layer fetch from the device (`read_bytes` in /proc/self/io); null off Linux. */
export function deviceReadBytes(): number | null {
  try {
    const match = /^read_bytes:\s*(\d+)$/m.exec(readFileSync('/proc/self/io', 'utf8'));
    return match ? Number(match[1]) : null;
  } catch {
    return null;
  }
}

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...filesUnder(path));
    else if (entry.isFile() && statSync(path).size > 0) out.push(path);
  }
  return out;
}

/**
 * Evicts the store's files from the OS page cache so cold reads come from the device.
 * First choice: the whole cache (`echo 1 > /proc/sys/vm/drop_caches`, needs root). Otherwise
 * posix_fadvise(DONTNEED) per file through python3 (Node has no binding for it). Returns what
 * happened, in words, for the report.
 */
export function dropPageCache(dir: string): { method: 'drop_caches' | 'fadvise' | 'none'; detail: string } {
  spawnSync('sync');
  try {
    writeFileSync('/proc/sys/vm/drop_caches', '1\n');
    return { method: 'drop_caches', detail: 'page cache dropped (echo 1 > /proc/sys/vm/drop_caches)' };
  } catch (err) {
    const why = (err as NodeJS.ErrnoException).code ?? String(err);
    const script =
      'import os,sys\n' +
      'for p in sys.argv[1:]:\n' +
      '    fd=os.open(p,os.O_RDONLY)\n' +
      '    os.fdatasync(fd)\n' +
      '    os.posix_fadvise(fd,0,0,os.POSIX_FADV_DONTNEED)\n' +
      '    os.close(fd)\n';
    const files = filesUnder(dir);
    const run = spawnSync('python3', ['-c', script, ...files], { encoding: 'utf8' });
    if (run.status === 0) {
      return { method: 'fadvise', detail: `drop_caches not permitted (${why}); posix_fadvise(DONTNEED) on ${files.length} store files` };
    }
    return { method: 'none', detail: `could not evict the page cache (drop_caches: ${why}; python3 fadvise: ${run.error?.message ?? run.stderr.trim()}); cold reads may be served from memory` };
  }
}
