// Builds the store's native batch reader (src/store/native/pread-batch.c) at `npm install`.
// It is optional: where it cannot build (no C compiler, no Node headers) the store reads history
// one fs.read per record instead, slower but the same bytes; this script says so and does not
// fail the install. `stats().historyReads.nativeBatches` tells which path a store uses.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
if (process.env.CIRRUS_NATIVE_READS === 'off') {
  console.log('cirrus: CIRRUS_NATIVE_READS=off, not building the native batch reader');
  process.exit(0);
}
// npm hands its bundled node-gyp to lifecycle scripts; outside npm, look for one on the PATH.
const gyp = process.env.npm_config_node_gyp;
const [cmd, args] = gyp && existsSync(gyp) ? [process.execPath, [gyp, 'rebuild']] : ['node-gyp', ['rebuild']];
const run = spawnSync(cmd, args, { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] });
if (run.status === 0) {
  console.log('cirrus: built the store\'s native batch reader (build/Release/pread_batch.node)');
} else {
  const why = run.error ? run.error.message : `node-gyp exited with ${run.status ?? run.signal}`;
  console.warn(
    `cirrus: WARNING: the store's native batch reader did not build (${why}).\n` +
      'cirrus: the store still works: history reads fall back to one fs.read per record (slower,\n' +
      'cirrus: docs/store.md "Runtime"). To build it, install python3, make and a C compiler, then `npm run build:native`.',
  );
}
