import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { AdmissionQueue, PeakRate } from '../../src/gateway/admission-queue.js';
import { ADMISSION_RATE_WINDOW_S } from '../../src/gateway/constants.js';

describe('admission queue', () => {
  test('FIFO order, bounded length, removed entries skipped, expiry by deadline', () => {
    const q = new AdmissionQueue<string>(3);
    const a = q.push('a', 100)!;
    q.push('b', 50);
    q.push('c', 300);
    assert.equal(q.push('d', 400), null, 'full');
    assert.equal(q.length, 3);
    q.remove(a);
    assert.equal(q.peek()!.item, 'b');
    assert.deepEqual(q.expire(100), ['b']);
    assert.equal(q.peek()!.item, 'c');
    assert.deepEqual(q.drain(), ['c']);
    assert.equal(q.length, 0);
  });
});

test('pushFront puts a retried request ahead of everything queued, even when the queue is full', () => {
  const q = new AdmissionQueue<string>(2);
  const a = q.push('a', 100)!;
  q.push('b', 100);
  assert.equal(q.push('c', 100), null, 'full for new arrivals');
  q.pushFront('retry-1', 50);
  assert.equal(q.length, 3);
  assert.equal(q.peek()!.item, 'retry-1');
  q.remove(a);
  q.pushFront('retry-2', 40);
  assert.equal(q.peek()!.item, 'retry-2');
  assert.deepEqual(q.drain(), ['retry-2', 'retry-1', 'b']);
});

describe('peak send rate (arrival-time shedding)', () => {
  test('the busiest complete second of the window; the current second does not count', () => {
    let now = 0;
    const r = new PeakRate(() => now);
    for (let i = 0; i < 50; i++) r.add();
    assert.equal(r.peakPerSecond, 0, 'no complete second yet');
    now = 1_000;
    assert.equal(r.peakPerSecond, 50);
    for (let i = 0; i < 80; i++) r.add();
    now = 2_500;
    for (let i = 0; i < 10; i++) r.add();
    assert.equal(r.peakPerSecond, 80);
  });

  test('the second of the first send does not count when that send came after its start (watched only in part)', () => {
    let now = 999_900;
    const r = new PeakRate(() => now);
    r.add();
    now = 1_000_010;
    assert.equal(r.peakPerSecond, 0, 'one send in the last 100 ms of a second is not a rate of 1/s');
    for (let i = 0; i < 9; i++) r.add();
    now = 1_001_000;
    assert.equal(r.peakPerSecond, 9, 'the first whole second counts');
  });

  test('forgets seconds older than the window, even after a long idle gap', () => {
    let now = 0;
    const r = new PeakRate(() => now);
    for (let i = 0; i < 500; i++) r.add();
    now = (ADMISSION_RATE_WINDOW_S - 1) * 1_000;
    assert.equal(r.peakPerSecond, 500, 'still in the window');
    now = (ADMISSION_RATE_WINDOW_S + 1) * 1_000;
    assert.equal(r.peakPerSecond, 0);
    r.add();
    now += 10 * ADMISSION_RATE_WINDOW_S * 1_000;
    r.add();
    now += 1_000;
    assert.equal(r.peakPerSecond, 1);
  });
});
