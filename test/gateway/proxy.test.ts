import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { Pool } from 'undici';
import type { RunningGateway } from '../../src/gateway/index.js';
import { gateway, get, startUpstream, type TestUpstream } from './helpers.js';

/** Sends raw bytes and returns everything the gateway answers until it closes (or 10 s). */
function raw(url: string, bytes: string | Buffer): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = connect(Number(port), hostname);
    let out = '';
    socket.on('data', (d) => (out += d.toString('latin1')));
    socket.on('error', () => resolve(out));
    socket.on('close', () => resolve(out));
    socket.setTimeout(10_000, () => socket.destroy());
    socket.write(bytes);
  });
}

describe('proxying', () => {
  let echo: TestUpstream;
  let gw: RunningGateway;

  before(async () => {
    // Echoes method, path, headers and the body it read back as JSON.
    echo = await startUpstream((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        const payload = JSON.stringify({ method: req.method, url: req.url, headers: req.headers, bodyLength: body.length, bodyHead: body.subarray(0, 16).toString() });
        res.writeHead(200, {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(payload),
          connection: 'keep-alive, x-secret-hop',
          'x-secret-hop': 'must not pass',
          'keep-alive': 'timeout=5',
          'x-app': 'kept',
        });
        res.end(payload);
      });
    });
    gw = await gateway({ upstreams: [echo.url], maxBodyBytes: 1024 * 1024, maxHeaderBytes: 4096 });
  });

  after(async () => {
    await gw.close();
    await echo.close();
  });

  const methods: Array<{ method: string; body?: string }> = [
    { method: 'GET' },
    { method: 'HEAD' },
    { method: 'OPTIONS' },
    { method: 'DELETE' },
    { method: 'POST', body: 'post-body' },
    { method: 'PUT', body: 'put-body' },
    { method: 'PATCH', body: 'patch-body' },
  ];
  for (const { method, body } of methods) {
    test(`${method} reaches the upstream with method, path, query and body intact`, async () => {
      const r = await get(`${gw.url}/a/b?c=1&d=%20`, { method, ...(body !== undefined ? { body } : {}) });
      assert.equal(r.status, 200);
      if (method === 'HEAD') {
        assert.equal(r.body, '');
        return;
      }
      const seen = JSON.parse(r.body) as { method: string; url: string; bodyLength: number; bodyHead: string };
      assert.equal(seen.method, method);
      assert.equal(seen.url, '/a/b?c=1&d=%20');
      assert.equal(seen.bodyLength, body?.length ?? 0);
      assert.equal(seen.bodyHead, body ?? '');
    });
  }

  test('forwarding headers are added, hop-by-hop headers are stripped both ways, Host passes through', async () => {
    // Raw bytes: HTTP clients refuse to send a Connection header that lists other fields.
    const answer = await raw(
      gw.url,
      'GET /h HTTP/1.1\r\nHost: app.example:8443\r\nX-Forwarded-For: 203.0.113.9\r\nConnection: close, x-client-hop\r\n' +
        'X-Client-Hop: must not pass\r\nProxy-Authorization: Basic Zm9vOmJhcg==\r\nTE: trailers\r\nX-Custom: kept\r\n\r\n',
    );
    const [head, ...rest] = answer.split('\r\n\r\n');
    const r = {
      status: Number(head!.split(' ')[1]),
      body: rest.join('\r\n\r\n'),
      headers: Object.fromEntries(head!.split('\r\n').slice(1).map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()])) as Record<string, string | undefined>,
    };
    assert.equal(r.status, 200);
    const h = (JSON.parse(r.body) as { headers: Record<string, string> }).headers;
    assert.equal(h.host, 'app.example:8443');
    assert.equal(h['x-forwarded-for'], '203.0.113.9, 127.0.0.1');
    assert.equal(h['x-forwarded-proto'], 'http');
    assert.equal(h['x-forwarded-host'], 'app.example:8443');
    assert.equal(h.forwarded, 'for=127.0.0.1;host="app.example:8443";proto=http');
    assert.equal(h.via, '1.1 cirrus');
    assert.equal(h['x-custom'], 'kept');
    assert.equal(h['x-client-hop'], undefined);
    assert.equal(h['proxy-authorization'], undefined);
    assert.equal(h.te, undefined);
    // Response side.
    assert.equal(r.headers['x-app'], 'kept');
    assert.equal(r.headers['x-secret-hop'], undefined);
    assert.equal(r.headers.via, '1.1 cirrus');
  });

  test('a large chunked request body streams through (not buffered, not retried)', async () => {
    const size = 512 * 1024;
    async function* chunks(): AsyncGenerator<Buffer> {
      for (let sent = 0; sent < size; sent += 16 * 1024) yield Buffer.alloc(16 * 1024, 0x61);
    }
    const pool = new Pool(gw.url);
    try {
      const res = await pool.request({ path: '/upload', method: 'POST', body: Readable.from(chunks()) });
      const seen = JSON.parse(await res.body.text()) as { bodyLength: number; headers: Record<string, string> };
      assert.equal(res.statusCode, 200);
      assert.equal(seen.bodyLength, size);
      assert.equal(seen.headers['transfer-encoding'], 'chunked');
    } finally {
      await pool.close();
    }
  });

  test('keep-alive on both sides: sequential requests reuse one upstream connection', async () => {
    const before = echo.connections;
    const pool = new Pool(gw.url, { connections: 1 });
    try {
      for (let i = 0; i < 10; i++) {
        const res = await pool.request({ path: `/k${i}`, method: 'GET' });
        await res.body.text();
        assert.equal(res.statusCode, 200);
      }
    } finally {
      await pool.close();
    }
    assert.ok(echo.connections - before <= 1, `upstream saw ${echo.connections - before} new connections for 10 requests`);
  });

  test('a declared body over maxBodyBytes gets 413 without reaching the upstream', async () => {
    const hits = echo.connections;
    const answer = await raw(gw.url, `POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: ${2 * 1024 * 1024}\r\n\r\nabc`);
    assert.match(answer, /^HTTP\/1\.1 413 /);
    assert.match(answer, /CIRRUS_GW_BODY_TOO_LARGE/);
    assert.equal(echo.connections, hits);
  });

  test('a chunked body that grows past maxBodyBytes gets 413', async () => {
    async function* chunks(): AsyncGenerator<Buffer> {
      for (let i = 0; i < 40; i++) yield Buffer.alloc(64 * 1024, 0x62);
    }
    const pool = new Pool(gw.url);
    try {
      const res = await pool.request({ path: '/upload', method: 'POST', body: Readable.from(chunks()) }).catch((err: unknown) => err as Error);
      if (res instanceof Error) {
        // The gateway may close the connection while the client is still sending: also a refusal.
        assert.ok(res instanceof Error);
      } else {
        await res.body.text();
        assert.equal(res.statusCode, 413);
      }
    } finally {
      await pool.destroy();
    }
    const r = await get(`${gw.url}/after`);
    assert.equal(r.status, 200);
  });

  const badRequests: Array<{ name: string; bytes: string; status: number }> = [
    { name: 'garbage request line', bytes: 'HELLO\r\n\r\n', status: 400 },
    { name: 'bad header syntax', bytes: 'GET / HTTP/1.1\r\nHost x\r\n\r\n', status: 400 },
    { name: 'conflicting content-length', bytes: 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab', status: 400 },
    { name: 'oversized header block', bytes: `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(8192)}\r\n\r\n`, status: 431 },
    { name: 'request target that is not a path', bytes: 'GET * HTTP/1.1\r\nHost: x\r\n\r\n', status: 400 },
  ];
  for (const { name, bytes, status } of badRequests) {
    test(`${name} -> ${status}, and the gateway keeps serving`, async () => {
      const answer = await raw(gw.url, bytes);
      assert.match(answer, new RegExp(`^HTTP/1\\.1 ${status} `));
      const r = await get(`${gw.url}/still-alive`);
      assert.equal(r.status, 200);
    });
  }

  test('an absolute-form request target is proxied by its path', async () => {
    const answer = await raw(gw.url, 'GET http://elsewhere.example/abs?q=1 HTTP/1.1\r\nHost: elsewhere.example\r\nConnection: close\r\n\r\n');
    assert.match(answer, /^HTTP\/1\.1 200 /);
    assert.match(answer, /"url":"\/abs\?q=1"/);
  });
});
