import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { gateway, get, named, refusedUrl, startBlackHole, startUpstream, waitFor } from './helpers.js';

describe('timeouts, retries, ejection', () => {
  test('a request with no answer within timeoutMs gets 504 CIRRUS_GW_TIMEOUT', async () => {
    const slow = await startUpstream(named('slow', 3_000));
    const gw = await gateway({ upstreams: [slow.url], timeoutMs: 300, outlier: { retryHung: false } });
    try {
      const r = await get(`${gw.url}/t`);
      assert.equal(r.status, 504);
      assert.equal(r.headers['x-cirrus-error'], 'CIRRUS_GW_TIMEOUT');
    } finally {
      await gw.close();
      await slow.close();
    }
  });

  test('per-route timeout overrides the default', async () => {
    const slow = await startUpstream(named('slow', 600));
    const gw = await gateway({ upstreams: [slow.url], timeoutMs: 300, routes: [{ prefix: '/slow', timeoutMs: 5_000 }], outlier: { retryHung: false } });
    try {
      assert.equal((await get(`${gw.url}/slow/x`)).status, 200);
      assert.equal((await get(`${gw.url}/fast/x`)).status, 504);
    } finally {
      await gw.close();
      await slow.close();
    }
  });

  test('connection refused: retried at once on another upstream (even POST), refusing upstream ejected', async () => {
    const refused = await refusedUrl();
    const good = await startUpstream(named('good', 30));
    const gw = await gateway({ upstreams: [refused, good.url] });
    try {
      // Concurrent requests make the refusing upstream the cheaper pick for some of them.
      const replies = await Promise.all(Array.from({ length: 12 }, (_, i) => get(`${gw.url}/r${i}`, { method: 'POST', body: 'x' })));
      for (const r of replies) assert.equal(r.status, 200);
      const state = gw.state().upstreams.find((u) => u.origin === refused)!;
      assert.equal(state.state, 'ejected');
      assert.equal(state.lastEjectReason, 'connect');
      const metrics = await gw.metrics.registry.getSingleMetricAsString('cirrus_gw_retries_total');
      assert.match(metrics, /reason="connect"\} [1-9]/);
    } finally {
      await gw.close();
      await good.close();
    }
  });

  test('the only upstream refusing: 502 CIRRUS_GW_UPSTREAM_CONNECT, then 503 CIRRUS_GW_NO_UPSTREAM while it is ejected', async () => {
    const refused = await refusedUrl();
    const gw = await gateway({ upstreams: [refused], queue: { timeoutMs: 200 }, outlier: { baseEjectionMs: 60_000, maxEjectionMs: 60_000 } });
    try {
      const first = await get(`${gw.url}/n`, { method: 'POST', body: 'x' });
      assert.equal(first.status, 502);
      assert.equal(first.headers['x-cirrus-error'], 'CIRRUS_GW_UPSTREAM_CONNECT');
      const second = await get(`${gw.url}/n`);
      assert.equal(second.status, 503);
      assert.equal(second.headers['x-cirrus-error'], 'CIRRUS_GW_NO_UPSTREAM');
      assert.equal(second.headers['retry-after'], '1');
    } finally {
      await gw.close();
    }
  });

  test('consecutive failures eject an upstream; a probe brings it back when it answers again', async () => {
    let broken = true;
    const flaky = await startUpstream((req, res) => {
      req.resume();
      res.writeHead(broken ? 500 : 200, { 'x-upstream': 'flaky' }).end('flaky');
    });
    const gw = await gateway({ upstreams: [flaky.url], queue: { timeoutMs: 100 }, outlier: { consecutiveFailures: 3, baseEjectionMs: 300, maxEjectionMs: 300 } });
    const state = (): { state: string; lastEjectReason: string | null } => gw.state().upstreams[0]!;
    try {
      for (let i = 0; i < 3; i++) assert.equal((await get(`${gw.url}/e${i}`)).status, 500, 'a 500 is passed to the client');
      assert.equal(state().state, 'ejected');
      assert.equal(state().lastEjectReason, 'failures');
      broken = false;
      // Once the backoff has passed, the next request is the probe; its success restores the upstream.
      await waitFor(async () => (await get(`${gw.url}/p`)).status === 200 && state().state === 'healthy', 15_000, 'recovery by probe');
      assert.equal((await get(`${gw.url}/after`)).body, 'flaky');
    } finally {
      await gw.close();
      await flaky.close();
    }
  });

  test('active health checks eject a failing upstream and bring it back, without client traffic', async () => {
    let healthy = false;
    const a = await startUpstream((req, res) => {
      req.resume();
      if (req.url === '/health') res.writeHead(healthy ? 200 : 500).end();
      else res.writeHead(200).end('a');
    });
    const gw = await gateway({ upstreams: [a.url], healthCheck: { path: '/health', intervalMs: 50, timeoutMs: 1_000 }, outlier: { baseEjectionMs: 100, maxEjectionMs: 100 } });
    try {
      await waitFor(() => gw.state().upstreams[0]!.lastEjectReason === 'health-check', 15_000, 'a health-check ejection');
      healthy = true;
      await waitFor(() => gw.state().upstreams[0]!.state === 'healthy', 15_000, 'recovery by health check');
      assert.equal(gw.state().upstreams[0]!.totals.ok, 0, 'no client request was used');
    } finally {
      await gw.close();
      await a.close();
    }
  });

  test('a health check that passes again ends an ejection backoff early (an offline window ended)', async () => {
    let up = false;
    const a = await startUpstream((req, res) => {
      req.resume();
      if (req.url === '/health') res.writeHead(up ? 200 : 500).end();
      else res.writeHead(up ? 200 : 500).end('a');
    });
    // A minute of backoff: without the health check ending it, the upstream would stay out.
    const gw = await gateway({
      upstreams: [a.url],
      queue: { timeoutMs: 100 },
      healthCheck: { path: '/health', intervalMs: 50, timeoutMs: 1_000 },
      outlier: { consecutiveFailures: 2, baseEjectionMs: 60_000, maxEjectionMs: 60_000 },
    });
    try {
      await waitFor(() => gw.state().upstreams[0]!.state === 'ejected', 15_000, 'an ejection');
      assert.ok(gw.state().upstreams[0]!.msUntilProbe > 10_000, 'the backoff is long');
      up = true;
      await waitFor(() => gw.state().upstreams[0]!.state === 'healthy', 15_000, 'recovery well before the backoff');
      assert.equal((await get(`${gw.url}/after`)).status, 200);
    } finally {
      await gw.close();
      await a.close();
    }
  });

  test('black hole (accepts, never answers): detected, ejected, and its GETs served elsewhere long before the timeout', async () => {
    const hole = await startBlackHole();
    const good = await startUpstream(named('good', 5));
    const gw = await gateway({ upstreams: [hole.url, good.url], timeoutMs: 20_000, outlier: { hangMinMs: 200, probeTimeoutMs: 300 }, retry: { budgetRatio: 1 } });
    try {
      // Warm the good upstream's latency signal, then send a burst: some land in the hole.
      for (let i = 0; i < 20; i++) await get(`${gw.url}/w${i}`);
      const replies = await Promise.all(Array.from({ length: 30 }, (_, i) => get(`${gw.url}/b${i}`)));
      // A request left in the hole would end as 504 after 20 s; every one is a 200 from `good`.
      for (const r of replies) {
        assert.equal(r.status, 200, `${r.status} ${r.body}`);
        assert.equal(r.body, 'good');
      }
      assert.ok(hole.sockets > 0, 'the black hole was tried');
      const s = gw.state().upstreams.find((u) => u.origin === hole.url)!;
      assert.ok(s.ejections >= 1, 'the black hole was ejected');
    } finally {
      await gw.close();
      await hole.close();
      await good.close();
    }
  });

  test('a GET that hangs on three attempts in a row is answered by the fourth (default retry.maxAttempts)', async () => {
    // Both providers hang the first three tries of /h between them, then answer: HAProxy's
    // `retries 3` count. The last attempt is never cancelled as hung, so with 3 attempts this
    // request would wait out the whole timeout.
    let tries = 0;
    const handler = (name: string) => (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse): void => {
      if (req.url === '/h' && ++tries <= 3) return; // accept, never answer
      res.end(name);
    };
    const ups = [await startUpstream(handler('a')), await startUpstream(handler('b'))];
    const gw = await gateway({ upstreams: ups.map((u) => u.url), timeoutMs: 10_000, outlier: { hangMinMs: 200, probeTimeoutMs: 300 }, retry: { budgetRatio: 1 } });
    try {
      const r = await get(`${gw.url}/h`);
      assert.equal(r.status, 200, `${r.status} ${r.body}`);
      assert.equal(tries, 4, 'three hung attempts, then the one that answered');
    } finally {
      await gw.close();
      for (const u of ups) await u.close();
    }
  });

  test('black hole with non-replayable requests: answered 504 CIRRUS_GW_UPSTREAM_STALLED, not at the timeout', async () => {
    const hole = await startBlackHole();
    const gw = await gateway({ upstreams: [hole.url], timeoutMs: 30_000, outlier: { hangMinMs: 200, probeTimeoutMs: 200 } });
    try {
      // Fill the latency window so the hang threshold is the 200 ms floor, not the cold-start one.
      const replies = await Promise.all(Array.from({ length: 3 }, () => get(`${gw.url}/s`, { method: 'POST', body: 'x' })));
      for (const r of replies) {
        assert.equal(r.status, 504);
        assert.equal(r.headers['x-cirrus-error'], 'CIRRUS_GW_UPSTREAM_STALLED');
      }
      assert.equal(gw.state().upstreams[0]!.lastEjectReason, 'stalled');
    } finally {
      await gw.close();
      await hole.close();
    }
  });

  test('retry budget: upstream 503s are retried only while the budget has tokens', async () => {
    const refusing = [await startUpstream(named('a', 0, 503)), await startUpstream(named('b', 0, 503))];
    const gw = await gateway({
      upstreams: refusing.map((u) => u.url),
      // Each request deposits 0.5 tokens and a retry costs 1: every second request may retry.
      retry: { budgetRatio: 0.5, minPerSecond: 0, maxAttempts: 2 },
      limit: { initial: 50, min: 50, max: 50 },
    });
    try {
      for (let i = 0; i < 10; i++) {
        const r = await get(`${gw.url}/x${i}`);
        assert.equal(r.status, 503);
      }
      const hits = refusing[0]!.hits + refusing[1]!.hits;
      assert.equal(hits, 15, '10 requests + 5 budgeted retries');
    } finally {
      await gw.close();
      for (const u of refusing) await u.close();
    }
  });

  test('retry budget of zero: no retries at all', async () => {
    const refusing = [await startUpstream(named('a', 0, 503)), await startUpstream(named('b', 0, 503))];
    const gw = await gateway({ upstreams: refusing.map((u) => u.url), retry: { budgetRatio: 0, minPerSecond: 0 } });
    try {
      for (let i = 0; i < 6; i++) assert.equal((await get(`${gw.url}/x${i}`)).status, 503);
      assert.equal(refusing[0]!.hits + refusing[1]!.hits, 6);
    } finally {
      await gw.close();
      for (const u of refusing) await u.close();
    }
  });

  test('upstream 503 with Retry-After pauses that upstream; traffic moves to the other', async () => {
    let refuse = true;
    const a = await startUpstream((req, res) => {
      req.resume();
      if (refuse) res.writeHead(503, { 'retry-after': '5', 'x-upstream': 'a' }).end('busy');
      else res.writeHead(200, { 'x-upstream': 'a' }).end('a');
    });
    const b = await startUpstream(named('b'));
    const gw = await gateway({ upstreams: [a.url, b.url] });
    try {
      await waitFor(async () => {
        await get(`${gw.url}/r`);
        return a.hits > 0;
      }, 15_000, 'a to be tried');
      refuse = false;
      const hitsA = a.hits;
      for (let i = 0; i < 10; i++) {
        const r = await get(`${gw.url}/after${i}`);
        assert.equal(r.status, 200);
        assert.equal(r.body, 'b');
      }
      assert.equal(a.hits, hitsA);
      assert.ok(gw.state().upstreams.find((u) => u.origin === a.url)!.pausedMs > 0);
    } finally {
      await gw.close();
      await a.close();
      await b.close();
    }
  });
});

describe('overload: shedding and the admission queue', () => {
  test('every upstream at its limit and no queue: extra requests get 503 CIRRUS_GW_OVERLOADED at once', async () => {
    const slow = await startUpstream(named('slow', 400));
    const gw = await gateway({ upstreams: [slow.url], limit: { initial: 2, min: 2, max: 2 }, queue: { maxLength: 0 } });
    try {
      const replies = await Promise.all(Array.from({ length: 6 }, (_, i) => get(`${gw.url}/o${i}`)));
      const ok = replies.filter((r) => r.status === 200);
      const shed = replies.filter((r) => r.status === 503);
      assert.equal(ok.length, 2);
      assert.equal(shed.length, 4);
      for (const r of shed) {
        assert.equal(r.headers['x-cirrus-error'], 'CIRRUS_GW_OVERLOADED');
        assert.equal(r.headers['retry-after'], '1');
      }
      assert.equal(slow.hits, 2);
    } finally {
      await gw.close();
      await slow.close();
    }
  });

  test('with a queue, requests wait for a slot and are served', async () => {
    const slow = await startUpstream(named('slow', 150));
    const gw = await gateway({ upstreams: [slow.url], limit: { initial: 2, min: 2, max: 2 }, queue: { maxLength: 10, timeoutMs: 4_000 } });
    try {
      const replies = await Promise.all(Array.from({ length: 6 }, (_, i) => get(`${gw.url}/q${i}`)));
      for (const r of replies) assert.equal(r.status, 200);
    } finally {
      await gw.close();
      await slow.close();
    }
  });

  test('without a flat cap, a queued request waits past 60% of its timeout while it can still be served', async () => {
    const slow = await startUpstream(named('slow', 100));
    // One slot, 22 requests: the last waits about 2.1 s of its 3 s; the reserve it must keep for
    // being served is 3 x 100 ms. (The old default, 60% of the timeout = 1.8 s, shed the last few.)
    const gw = await gateway({ upstreams: [slow.url], timeoutMs: 3_000, limit: { initial: 1, min: 1, max: 1 }, outlier: { retryHung: false } });
    try {
      const replies = await Promise.all(Array.from({ length: 22 }, (_, i) => get(`${gw.url}/w${i}`)));
      for (const r of replies) assert.equal(r.status, 200, `${r.status} ${r.body}`);
    } finally {
      await gw.close();
      await slow.close();
    }
  });

  test('a queued request is not sent to an upstream slower than its remaining time: 503 at once, not a timeout', async () => {
    const slow = await startUpstream(named('slow', 600));
    // B waits behind A (600 ms). When A's slot frees, B has at most 400 ms of its 1 s left, less
    // than the upstream's reserve (min(3 x 600, 50% of 1 s) = 500 ms): sending it would end in a
    // 504 after spending the upstream's time; it gets 503 CIRRUS_GW_QUEUE_TIMEOUT instead.
    const gw = await gateway({ upstreams: [slow.url], timeoutMs: 1_000, limit: { initial: 1, min: 1, max: 1 }, outlier: { retryHung: false } });
    try {
      const a = get(`${gw.url}/a`);
      await waitFor(() => slow.hits === 1, 15_000, 'A at the upstream');
      const b = await get(`${gw.url}/b`);
      assert.equal(b.status, 503);
      assert.equal(b.headers['x-cirrus-error'], 'CIRRUS_GW_QUEUE_TIMEOUT');
      assert.equal(b.headers['retry-after'], '1');
      assert.equal((await a).status, 200);
      assert.equal(slow.hits, 1, 'B never reached the upstream');
    } finally {
      await gw.close();
      await slow.close();
    }
  });

  test('a burst that the queue could not drain in time even at twice the recent peak rate is refused at arrival', async () => {
    const slow = await startUpstream(named('slow', 1_000));
    // One slot, 1 s per request: the peak send rate is 1-2/s. A fresh request may wait at most
    // 3 s - min(3 x 1 s, 50% of 3 s) = 1.5 s, so a queue position past 2 x 1.5 s x rate cannot
    // be reached in time even if the drain rate doubled: CIRRUS_GW_OVERLOADED at once.
    const gw = await gateway({ upstreams: [slow.url], timeoutMs: 3_000, limit: { initial: 1, min: 1, max: 1 }, outlier: { retryHung: false } });
    try {
      for (let i = 0; i < 2; i++) assert.equal((await get(`${gw.url}/warm${i}`)).status, 200);
      const hitsBefore = slow.hits;
      const replies = await Promise.all(Array.from({ length: 12 }, (_, i) => get(`${gw.url}/burst${i}`)));
      const overloaded = replies.filter((r) => r.headers['x-cirrus-error'] === 'CIRRUS_GW_OVERLOADED');
      assert.ok(overloaded.length >= 1, `codes: ${replies.map((r) => r.headers['x-cirrus-error'] ?? r.status).join(',')}`);
      for (const r of overloaded) {
        assert.equal(r.status, 503);
        assert.equal(r.headers['retry-after'], '1');
      }
      assert.ok(slow.hits - hitsBefore <= 12 - overloaded.length, 'refused requests never reached the upstream');
    } finally {
      await gw.close();
      await slow.close();
    }
  });

  test('a queued request whose wait passes queue.timeoutMs gets 503 CIRRUS_GW_QUEUE_TIMEOUT', async () => {
    const slow = await startUpstream(named('slow', 1_500));
    const gw = await gateway({ upstreams: [slow.url], limit: { initial: 1, min: 1, max: 1 }, queue: { maxLength: 10, timeoutMs: 100 }, outlier: { retryHung: false } });
    try {
      const replies = await Promise.all(Array.from({ length: 3 }, (_, i) => get(`${gw.url}/q${i}`)));
      assert.equal(replies.filter((r) => r.status === 200).length, 1);
      const shed = replies.filter((r) => r.status === 503);
      assert.equal(shed.length, 2);
      for (const r of shed) assert.equal(r.headers['x-cirrus-error'], 'CIRRUS_GW_QUEUE_TIMEOUT');
    } finally {
      await gw.close();
      await slow.close();
    }
  });
});
