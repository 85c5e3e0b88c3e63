import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as store from '../../src/store/index.js';
import { repoRoot } from './helpers.js';

test('errors: every store error code is documented in docs/store.md, and every documented code exists', () => {
  const doc = readFileSync(join(repoRoot(), 'docs', 'store.md'), 'utf8');
  for (const code of store.STORE_ERROR_CODES) assert.ok(doc.includes(`\`${code}\``), `${code} missing from docs/store.md`);
  const documented = new Set(doc.match(/CIRRUS_STORE_[A-Z_]+/g) ?? []);
  for (const code of documented) assert.ok((store.STORE_ERROR_CODES as readonly string[]).includes(code), `docs/store.md names unknown ${code}`);
});

test('errors: each class carries its code and is a StoreError', () => {
  const cases: [store.StoreError, string][] = [
    [new store.StoreClosedError(), 'CIRRUS_STORE_CLOSED'],
    [new store.StoreInvalidArgumentError('topic', 'x'), 'CIRRUS_STORE_INVALID_ARGUMENT'],
    [new store.StoreOffsetTruncatedError('t', 1, 2, 3), 'CIRRUS_STORE_OFFSET_TRUNCATED'],
    [new store.StoreLockedError('/d', 1), 'CIRRUS_STORE_LOCKED'],
    [new store.StoreIoError('m', null), 'CIRRUS_STORE_IO'],
    [new store.StoreNoSpaceError('m', null), 'CIRRUS_STORE_NO_SPACE'],
    [new store.StoreCorruptError('m', 0), 'CIRRUS_STORE_CORRUPT'],
    [new store.StoreLimitError('m'), 'CIRRUS_STORE_LIMIT'],
    [new store.StoreNotFoundError('/d', 'does not exist'), 'CIRRUS_STORE_NOT_FOUND'],
  ];
  assert.deepEqual(cases.map(([, c]) => c).sort(), [...store.STORE_ERROR_CODES].sort());
  for (const [e, code] of cases) {
    assert.ok(e instanceof store.StoreError);
    assert.equal(e.code, code);
    assert.equal(e.name, e.constructor.name);
  }
  assert.equal(new store.StoreOffsetTruncatedError('t', 1, 2, 3).firstAvailableOffset, 3);
});
