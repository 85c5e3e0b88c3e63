import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { GatewayConfigError, GatewayError } from '../../src/gateway/index.js';
import { gateway, get, named, startUpstream, waitFor } from './helpers.js';

describe('reload and drain', () => {
  test('reload swaps upstreams without dropping in-flight requests', async () => {
    const a = await startUpstream(named('a', 800));
    const b = await startUpstream(named('b'));
    const gw = await gateway({ upstreams: [a.url], outlier: { retryHung: false } });
    try {
      const inflight = get(`${gw.url}/slow`);
      await waitFor(() => a.hits === 1, 10_000, 'request to reach a');
      await gw.reload({ listen: '127.0.0.1:0', admin: null, upstreams: [b.url], outlier: { retryHung: false } });
      // New requests go to b only; the one in flight on a completes normally.
      for (let i = 0; i < 5; i++) assert.equal((await get(`${gw.url}/n${i}`)).body, 'b');
      const r = await inflight;
      assert.equal(r.status, 200);
      assert.equal(r.body, 'a');
      assert.equal(a.hits, 1);
      await waitFor(() => gw.state().upstreams.every((u) => u.origin === b.url), 10_000, 'a to be retired');
    } finally {
      await gw.close();
      await a.close();
      await b.close();
    }
  });

  test('reload keeps the signals of upstreams that stay', async () => {
    const a = await startUpstream(named('a'));
    const gw = await gateway({ upstreams: [a.url] });
    try {
      for (let i = 0; i < 3; i++) await get(`${gw.url}/x`);
      await gw.reload({ listen: '127.0.0.1:0', admin: null, upstreams: [{ url: a.url, weight: 3 }] });
      const s = gw.state().upstreams[0]!;
      assert.equal(s.totals.ok, 3);
      assert.equal(s.weight, 3);
    } finally {
      await gw.close();
      await a.close();
    }
  });

  test('a bad reload is rejected and changes nothing', async () => {
    const a = await startUpstream(named('a'));
    const gw = await gateway({ upstreams: [a.url], timeoutMs: 4_000 });
    try {
      await assert.rejects(gw.reload({ listen: '127.0.0.1:0', admin: null, upstreams: [] }), (e: unknown) => e instanceof GatewayConfigError && e.path === 'upstreams');
      await assert.rejects(gw.reload({ listen: '127.0.0.1:1', admin: null, upstreams: [a.url] }), (e: unknown) => e instanceof GatewayError && e.code === 'CIRRUS_GW_RELOAD_REJECTED');
      assert.equal((await get(`${gw.url}/still`)).body, 'a');
    } finally {
      await gw.close();
      await a.close();
    }
  });

  test('close drains: in-flight requests finish, new connections are refused afterwards', async () => {
    const a = await startUpstream(named('a', 500));
    const gw = await gateway({ upstreams: [a.url], outlier: { retryHung: false } });
    const inflight = get(`${gw.url}/slow`);
    await waitFor(() => a.hits === 1, 10_000, 'request to reach a');
    await gw.close();
    const r = await inflight;
    assert.equal(r.status, 200);
    assert.equal(r.body, 'a');
    await assert.rejects(get(`${gw.url}/late`));
    await a.close();
  });
});
