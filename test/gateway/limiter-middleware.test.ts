import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { adaptiveLimiter, GatewayArgumentError, LOAD_HINT_HEADER } from '../../src/gateway/index.js';
import { gateway, get, startUpstream, waitFor } from './helpers.js';

describe('adaptiveLimiter (provider side)', () => {
  test('past its limit it answers 503 + Retry-After at once, with a load hint; below it, the handler runs', async () => {
    const limiter = adaptiveLimiter({ limit: { initial: 2, min: 2, max: 2 }, retryAfterS: 3 });
    let handled = 0;
    const release: Array<() => void> = [];
    const server = await startUpstream(
      limiter.wrap((req, res) => {
        handled += 1;
        req.resume();
        release.push(() => res.end('done'));
      }),
    );
    try {
      const first = [get(`${server.url}/a`), get(`${server.url}/b`)];
      await waitFor(() => limiter.inflight === 2, 10_000, 'two requests admitted');
      const refused = await get(`${server.url}/c`);
      assert.equal(refused.status, 503);
      assert.equal(refused.headers['retry-after'], '3');
      assert.equal(refused.headers[LOAD_HINT_HEADER], 'inflight=2;limit=2');
      assert.equal(limiter.rejected, 1);
      for (const r of release) r();
      const done = await Promise.all(first);
      for (const r of done) {
        assert.equal(r.status, 200);
        assert.match(String(r.headers[LOAD_HINT_HEADER]), /^inflight=[12];limit=2$/);
      }
      assert.equal(handled, 2);
      await waitFor(() => limiter.inflight === 0, 10_000, 'in-flight back to zero');
    } finally {
      await server.close();
    }
  });

  test('works as Express-style middleware (req, res, next)', async () => {
    const limiter = adaptiveLimiter({ limit: { initial: 1, min: 1, max: 1 } });
    let nexts = 0;
    const server = await startUpstream((req, res) => {
      limiter(req, res, () => {
        nexts += 1;
        req.resume();
        setTimeout(() => res.end('mw'), 300);
      });
    });
    try {
      const [a, b] = await Promise.all([get(`${server.url}/1`), get(`${server.url}/2`)]);
      assert.deepEqual([a.status, b.status].sort(), [200, 503]);
      assert.equal(nexts, 1);
    } finally {
      await server.close();
    }
  });

  test('the gateway caps its limit for a provider at the limit the provider reports', async () => {
    const limiter = adaptiveLimiter({ limit: { initial: 3, min: 3, max: 3 } });
    const provider = await startUpstream(limiter.wrap((req, res) => {
      req.resume();
      res.end('p');
    }));
    const gw = await gateway({ upstreams: [provider.url], limit: { initial: 50, min: 1, max: 100 } });
    try {
      assert.equal((await get(`${gw.url}/x`)).status, 200);
      const s = gw.state().upstreams[0]!;
      assert.equal(s.hint?.limit, 3);
      assert.equal(s.limit, 3);
      assert.equal(s.adaptiveLimit, 50);
    } finally {
      await gw.close();
      await provider.close();
    }
  });

  test('bad options name the argument', () => {
    assert.throws(() => adaptiveLimiter({ retryAfterS: -1 }), (e: unknown) => e instanceof GatewayArgumentError && e.argument === 'retryAfterS');
    assert.throws(() => adaptiveLimiter({ limit: { min: 5, initial: 2 } }), (e: unknown) => e instanceof GatewayArgumentError && e.argument === 'limit');
  });
});
