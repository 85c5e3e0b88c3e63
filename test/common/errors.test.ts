import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CirrusError, InvariantError, hasCode, invariant } from '../../src/common/index.js';

test('CirrusError keeps code, name and cause', () => {
  const cause = new Error('io');
  const err = new CirrusError('CIRRUS_X', 'boom', { cause });
  assert.equal(err.code, 'CIRRUS_X');
  assert.equal(err.name, 'CirrusError');
  assert.equal(err.cause, cause);
  assert.ok(hasCode(err, 'CIRRUS_X'));
  assert.ok(!hasCode(err, 'CIRRUS_Y'));
  assert.ok(!hasCode(new Error('x'), 'CIRRUS_X'));
});

test('invariant throws InvariantError only when the condition is false', () => {
  invariant(true, 'never');
  assert.throws(() => invariant(0, 'offsets contiguous'), (e: unknown) => e instanceof InvariantError && /offsets contiguous/.test(e.message));
});
