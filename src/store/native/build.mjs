// Builds the store's native addon (src/store/native/: the batch reader and CRC32C) at `npm install`.
// It is optional: where it cannot build (no C compiler, no Node headers) the store reads history
// one fs.read per record and checksums with @node-rs/crc32 instead, slower but the same bytes and
// values; this script says so and does not fail the install. `stats().historyReads.nativeBatches`
// and `crc32cImplementation` (src/store/crc.ts) tell which paths a store uses.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
if (process.env.CIRRUS_NATIVE_READS === 'off') {
  console.log('cirrus: CIRRUS_NATIVE_READS=off, not building the store\'s native addon');
  process.exit(0);
}
// npm hands its bundled node-gyp to lifecycle scripts; outside npm, look for one on the PATH.
const gyp = process.env.npm_config_node_gyp;
const [cmd, args] = gyp && existsSync(gyp) ? [process.execPath, [gyp, 'rebuild']] : ['node-gyp', ['rebuild']];
const run = spawnSync(cmd, args, { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] });
if (run.status === 0) {
  console.log('cirrus: built the store\'s native addon: batch reader and CRC32C (build/Release/cirrus_store.node)');
} else {
  const why = run.error ? run.error.message : `node-gyp exited with ${run.status ?? run.signal}`;
  console.warn(
    `cirrus: WARNING: the store's native addon did not build (${why}).\n` +
      'cirrus: the store still works: history reads fall back to one fs.read per record and checksums\n' +
      'cirrus: to @node-rs/crc32 (slower, docs/store.md "Runtime"). To build it, install python3, make and a C compiler, then `npm run build:native`.',
  );
}
