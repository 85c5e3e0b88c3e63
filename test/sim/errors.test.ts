import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SIM_ERROR_CODES, SCENARIOS } from '../../src/sim/index.js';

function repoRoot(): string {
  let d = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(d, 'package.json'))) {
    const up = dirname(d);
    if (up === d) throw new Error('repository root not found');
    d = up;
  }
  return d;
}

const DOC = readFileSync(join(repoRoot(), 'docs', 'sim.md'), 'utf8');

test('every sim error code is documented in docs/sim.md, and the doc lists no other', () => {
  for (const code of SIM_ERROR_CODES) assert.ok(DOC.includes('`' + code + '`'), `${code} missing from docs/sim.md`);
  const documented = new Set(DOC.match(/CIRRUS_SIM_[A-Z_]+/g) ?? []);
  assert.deepEqual([...documented].sort(), [...SIM_ERROR_CODES].sort());
});

test('every scenario is documented in docs/sim.md', () => {
  for (const s of SCENARIOS) assert.ok(DOC.includes('`' + s.name + '`'), `${s.name} missing from docs/sim.md`);
});
