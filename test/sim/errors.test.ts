import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SIM_ERROR_CODES, SCENARIOS } from '../../src/sim/index.js';
import { repoRoot } from '../common/repo-root.js';

const DOC = readFileSync(join(repoRoot(), 'docs', 'sim.md'), 'utf8');

test('every sim error code is documented in docs/sim.md, and the doc lists no other', () => {
  for (const code of SIM_ERROR_CODES) assert.ok(DOC.includes('`' + code + '`'), `${code} missing from docs/sim.md`);
  const documented = new Set(DOC.match(/CIRRUS_SIM_[A-Z_]+/g) ?? []);
  assert.deepEqual([...documented].sort(), [...SIM_ERROR_CODES].sort());
});

test('every scenario is documented in docs/sim.md', () => {
  for (const s of SCENARIOS) assert.ok(DOC.includes('`' + s.name + '`'), `${s.name} missing from docs/sim.md`);
});
