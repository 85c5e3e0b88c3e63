/**
 * The store's native addon (native/*.c), built by `npm install` (native/build.mjs) into
 * build/Release/cirrus_store.node: the batch reader (pread-batch.ts) and CRC32C (crc.ts). It is
 * optional: where it did not build or does not load, `nativeAddon` is null, `nativeAddonUnavailable`
 * says why, and each of its users falls back to a portable path giving the same results.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ADDON_FILE = 'cirrus_store.node';

/** Where node-gyp puts the addon, from this file's place in dist/src/store/ (or src/store/). */
function addonPath(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let up = 0; up < 4; up++) {
    const candidate = join(dir, 'build', 'Release', ADDON_FILE);
    if (existsSync(candidate)) return candidate;
    dir = dirname(dir);
  }
  return '';
}

function load(): { addon: Readonly<Record<string, unknown>> | null; path: string; why: string } {
  const path = addonPath();
  if (path === '') return { addon: null, path, why: `build/Release/${ADDON_FILE} not found (it is built by \`npm install\`, or \`npm run build:native\`)` };
  try {
    return { addon: createRequire(import.meta.url)(path) as Record<string, unknown>, path, why: '' };
  } catch (err) {
    return { addon: null, path, why: `${path} did not load: ${(err as Error).message}` };
  }
}

const loaded = load();

/** The addon's exports, or null where it is not available. */
export const nativeAddon: Readonly<Record<string, unknown>> | null = loaded.addon;
/** Where the addon was found ('' when it was not). */
export const nativeAddonPath: string = loaded.path;
/** Why `nativeAddon` is null ('' when it is loaded). */
export const nativeAddonUnavailable: string = loaded.why;
