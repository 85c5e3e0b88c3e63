import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { startLoad } from '../../src/sim/index.js';

async function server(handler: Parameters<typeof createServer>[1]): Promise<{ url: string; srv: Server; close(): Promise<void> }> {
  const srv = createServer(handler);
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    srv,
    close: () =>
      new Promise<void>((r) => {
        srv.closeAllConnections();
        srv.close(() => r());
      }),
  };
}

test('open loop: the counted window gets exactly rps x duration arrivals, all 2xx counted ok', async () => {
  let seen = 0;
  const s = await server((_req, res) => {
    seen++;
    res.end('ok');
  });
  try {
    const r = await startLoad({ target: s.url, rps: 200, warmupMs: 500, durationMs: 2_000 }).done;
    // Arrivals are scheduled by absolute time: 1.5 s x 200/s counted (skips only if the machine stalls).
    assert.equal(r.sent + r.skipped, 300);
    assert.equal(r.ok, r.sent);
    assert.equal(r.failed, 0);
    assert.equal(seen, 400 - r.skipped);
    assert.equal(r.okPerSecond.reduce((a, b) => a + b, 0), r.ok);
    assert.ok(r.p50Ms > 0 && r.p99Ms >= r.p50Ms && r.maxMs >= r.p99Ms);
  } finally {
    await s.close();
  }
});

test('a slow target does not slow the offered load down', async () => {
  const s = await server((_req, res) => {
    setTimeout(() => res.end('ok'), 800);
  });
  try {
    const load = startLoad({ target: s.url, rps: 100, durationMs: 1_500 });
    await new Promise((r) => setTimeout(r, 1_000));
    // After 1 s of a target answering in 0.8 s a closed loop would have sent a handful; an
    // open loop has sent (close to) 100 and has most of them in flight.
    assert.ok(load.sent >= 80, `sent ${load.sent}`);
    assert.ok(load.inFlight >= 40, `in flight ${load.inFlight}`);
    const r = await load.done;
    assert.equal(r.sent + r.skipped, 150);
    assert.equal(r.ok, r.sent);
  } finally {
    await s.close();
  }
});

test('only 2xx is ok: fast 503s and timeouts are failures, by cause', async () => {
  const s = await server((req, res) => {
    if (req.url === '/busy') res.writeHead(503).end();
    // '/hang' is never answered.
  });
  try {
    const busy = await startLoad({ target: s.url, path: '/busy', rps: 50, durationMs: 1_000 }).done;
    assert.equal(busy.ok, 0);
    assert.equal(busy.failed, busy.sent);
    assert.deepEqual(busy.failures, { status_503: busy.sent });
    const hang = await startLoad({ target: s.url, path: '/hang', rps: 20, durationMs: 500, timeoutMs: 300 }).done;
    assert.equal(hang.ok, 0);
    assert.deepEqual(hang.failures, { timeout: hang.sent });
  } finally {
    await s.close();
  }
});

test('after a stall the generator catches up at most a second of arrivals and counts the rest as skipped', async () => {
  const s = await server((_req, res) => res.end('ok'));
  try {
    const load = startLoad({ target: s.url, rps: 200, durationMs: 3_000 });
    await new Promise((r) => setTimeout(r, 50));
    // Block the event loop for 1.5 s, as a long GC pause or a starved process would.
    const until = Date.now() + 1_500;
    while (Date.now() < until) {
      // busy on purpose
    }
    const r = await load.done;
    assert.ok(r.skipped >= 50 && r.skipped <= 200, `skipped ${r.skipped}`);
    assert.equal(r.sent + r.skipped, 600);
    assert.equal(r.ok, r.sent);
  } finally {
    await s.close();
  }
});

test('refused connections are failures, and stop() ends an unbounded run', async () => {
  const s = await server((_req, res) => res.end('ok'));
  const url = s.url;
  await s.close();
  const load = startLoad({ target: url, rps: 50 });
  await new Promise((r) => setTimeout(r, 500));
  const r = await load.stop();
  assert.ok(r.sent > 0);
  assert.equal(r.ok, 0);
  assert.equal(r.failures.ECONNREFUSED, r.sent);
});

test('bad arguments are refused with a code naming the argument', () => {
  assert.throws(() => startLoad({ target: 'not a url', rps: 10 }), { code: 'CIRRUS_SIM_BAD_ARGUMENT', argument: 'target' });
  assert.throws(() => startLoad({ target: 'http://127.0.0.1:1', rps: 0 }), { code: 'CIRRUS_SIM_BAD_ARGUMENT', argument: 'rps' });
  assert.throws(() => startLoad({ target: 'http://127.0.0.1:1', rps: 10, durationMs: 100, warmupMs: 200 }), { code: 'CIRRUS_SIM_BAD_ARGUMENT', argument: 'durationMs' });
  assert.throws(() => startLoad({ target: 'ftp://127.0.0.1:1', rps: 10 }), { code: 'CIRRUS_SIM_BAD_ARGUMENT', argument: 'target' });
});
