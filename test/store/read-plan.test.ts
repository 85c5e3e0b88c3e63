import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { READ_PLAN_POOL_MAX } from '../../src/store/constants.js';
import { READ_PLAN_RECORDS, ReadPlan, ReadPlanPool } from '../../src/store/read-plan.js';

interface Entry {
  slot: number;
  offset: number;
  position: number;
  length: number;
}

function entries(plan: ReadPlan): Entry[] {
  const out: Entry[] = [];
  for (let k = 0; k < plan.count; k++) {
    out.push({ slot: plan.slots[k], offset: plan.offsets[k], position: plan.positions[k], length: plan.lengths[k] });
  }
  return out;
}

const entry = fc.record({
  slot: fc.integer({ min: 0, max: READ_PLAN_RECORDS - 1 }),
  offset: fc.maxSafeNat(),
  // Log positions past 2^32 (a store of many GiB) must survive exactly.
  position: fc.integer({ min: 0, max: 2 ** 48 }),
  length: fc.integer({ min: 1, max: 4 * 1024 * 1024 + 64 }),
});

test('a read plan keeps what was pushed, and filtering in place keeps the order of what stays', () => {
  fc.assert(
    fc.property(fc.array(entry, { maxLength: READ_PLAN_RECORDS }), fc.array(fc.boolean(), { maxLength: READ_PLAN_RECORDS }), (generated, keep) => {
      // fast-check's records have no prototype; the plan's entries read back are plain objects.
      const pushed = generated.map((e) => ({ ...e }));
      const plan = new ReadPlan();
      for (const e of pushed) plan.push(e.slot, e.offset, e.position, e.length);
      assert.deepEqual(entries(plan), pushed);
      let left = 0;
      for (let k = 0; k < plan.count; k++) if (keep[k] === true) plan.move(k, left++);
      plan.count = left;
      assert.deepEqual(
        entries(plan),
        pushed.filter((_, k) => keep[k] === true),
      );
    }),
  );
});

test('a read plan refuses a record beyond a fetch and a read-ahead, and keeps what it has', () => {
  const plan = new ReadPlan();
  for (let k = 0; k < READ_PLAN_RECORDS; k++) plan.push(k, k, k * 100, 100);
  assert.throws(() => plan.push(0, 0, 0, 1), /at most a fetch and a read-ahead/);
  assert.equal(plan.count, READ_PLAN_RECORDS);
  assert.equal(plan.positions[READ_PLAN_RECORDS - 1], (READ_PLAN_RECORDS - 1) * 100);
});

test('the plan pool hands out distinct empty plans and keeps at most READ_PLAN_POOL_MAX', () => {
  const pool = new ReadPlanPool();
  const taken = Array.from({ length: READ_PLAN_POOL_MAX + 5 }, () => pool.take());
  assert.equal(new Set(taken).size, taken.length, 'plans in use at once are distinct');
  for (const p of taken) p.push(1, 2, 3, 4);
  for (const p of taken) pool.give(p);
  assert.equal(pool.pooled, READ_PLAN_POOL_MAX);
  const again = pool.take();
  assert.ok(taken.includes(again), 'a plan given back is used again');
  assert.equal(again.count, 0, 'and starts empty');
});
