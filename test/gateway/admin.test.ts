import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { gateway, get, named, startUpstream } from './helpers.js';

describe('admin listener', () => {
  test('/metrics, /healthz, /api/state and the dashboard', async () => {
    const a = await startUpstream(named('a'));
    const gw = await gateway({ upstreams: [a.url], admin: '127.0.0.1:0' });
    try {
      assert.ok(gw.adminUrl !== null);
      for (let i = 0; i < 5; i++) assert.equal((await get(`${gw.url}/m${i}`)).status, 200);

      const metrics = await get(`${gw.adminUrl}/metrics`);
      assert.equal(metrics.status, 200);
      assert.match(String(metrics.headers['content-type']), /^text\/plain/);
      const label = `upstream="${a.url}"`;
      const expectLines = [
        'cirrus_gw_responses_total{code="200"} 5',
        `cirrus_gw_upstream_requests_total{${label},outcome="ok"} 5`,
        `cirrus_gw_upstream_latency_seconds_count{${label}} 5`,
        `cirrus_gw_upstream_inflight{${label}} 0`,
        `cirrus_gw_upstream_state{${label}} 0`,
        'cirrus_gw_queue_length 0',
      ];
      for (const line of expectLines) assert.ok(metrics.body.split('\n').includes(line), `missing metric line: ${line}`);
      for (const name of ['cirrus_gw_upstream_limit', 'cirrus_gw_upstream_latency_ewma_seconds', 'cirrus_gw_upstream_latency_p99_seconds', 'cirrus_gw_upstream_error_ratio', 'cirrus_gw_retry_budget_tokens']) {
        assert.match(metrics.body, new RegExp(`^# TYPE ${name} gauge$`, 'm'));
      }

      const health = await get(`${gw.adminUrl}/healthz`);
      assert.equal(health.status, 200);
      assert.deepEqual(JSON.parse(health.body), { status: 'ok' });

      const state = JSON.parse((await get(`${gw.adminUrl}/api/state`)).body) as {
        gateway: { url: string };
        upstreams: Array<{ origin: string; state: string; totals: { ok: number }; history: unknown[] }>;
      };
      assert.equal(state.gateway.url, gw.url);
      assert.equal(state.upstreams[0]!.origin, a.url);
      assert.equal(state.upstreams[0]!.state, 'healthy');
      assert.equal(state.upstreams[0]!.totals.ok, 5);
      assert.ok(Array.isArray(state.upstreams[0]!.history));

      const page = await get(`${gw.adminUrl}/`);
      assert.equal(page.status, 200);
      assert.match(String(page.headers['content-type']), /^text\/html/);
      assert.match(page.body, /api\/state/);
      assert.doesNotMatch(page.body, /<script[^>]+src=/, 'self-contained: no external scripts');

      assert.equal((await get(`${gw.adminUrl}/nope`)).status, 404);
      assert.equal((await get(`${gw.adminUrl}/metrics`, { method: 'POST', body: 'x' })).status, 405);
    } finally {
      await gw.close();
      await a.close();
    }
  });

  test('the dashboard script renders the live /api/state (run against a stub DOM)', async () => {
    const a = await startUpstream(named('a'));
    const gw = await gateway({ upstreams: [a.url], admin: '127.0.0.1:0' });
    try {
      for (let i = 0; i < 3; i++) await get(`${gw.url}/d${i}`);
      const page = (await get(`${gw.adminUrl}/`)).body;
      const script = page.split('<script>')[1]!.split('</script>')[0]!;
      const elements = new Map<string, { innerHTML: string }>();
      const document = { getElementById: (id: string) => elements.get(id) ?? elements.set(id, { innerHTML: '' }).get(id)! };
      const stateUrl = `${gw.adminUrl}/api/state`;
      let ticks = 0;
      const run = new Function('document', 'fetch', 'setInterval', `${script}; return tick;`) as (
        d: typeof document,
        f: (u: string) => Promise<Response>,
        s: () => void,
      ) => () => Promise<void>;
      const tick = run(document, () => fetch(stateUrl), () => void (ticks += 1));
      await tick();
      const cards = elements.get('cards')!.innerHTML;
      assert.match(cards, new RegExp(a.url.replace(/[.:/]/g, '\\$&')));
      assert.match(cards, /class="badge healthy"/);
      assert.match(cards, /<svg /);
      assert.match(elements.get('summary')!.innerHTML, new RegExp(gw.url.replace(/[.:/]/g, '\\$&')));
      assert.equal(ticks, 1, 'the page polls on an interval');
    } finally {
      await gw.close();
      await a.close();
    }
  });

  test('/healthz is 503 when no upstream is usable', async () => {
    const gw = await gateway({ upstreams: ['http://127.0.0.1:1'], admin: '127.0.0.1:0', queue: { timeoutMs: 50 } });
    try {
      await get(`${gw.url}/x`);
      const health = await get(`${gw.adminUrl}/healthz`);
      assert.equal(health.status, 503);
    } finally {
      await gw.close();
    }
  });
});
