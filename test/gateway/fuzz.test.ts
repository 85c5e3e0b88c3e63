import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { gateway, get, named, startTcp, startUpstream, waitFor } from './helpers.js';

/** Writes `bytes`, half-closes, and collects the answer until the gateway closes (or 5 s pass). */
function exchange(url: string, bytes: Uint8Array): Promise<string> {
  const { port } = new URL(url);
  return new Promise((resolve) => {
    const socket = connect(Number(port), '127.0.0.1');
    let out = '';
    const done = (): void => resolve(out);
    socket.on('data', (d) => (out += d.toString('latin1')));
    socket.on('error', done);
    socket.on('close', done);
    socket.setTimeout(5_000, () => socket.destroy());
    socket.end(bytes);
  });
}

const token = fc.stringMatching(/^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,12}$/);
const anyText = fc.string({ unit: 'binary-ascii', maxLength: 64 });

/** Requests that are almost right: real shapes with random pieces, CRLF injections and bad lengths. */
const nearlyHttp = fc
  .record({
    method: fc.oneof(fc.constantFrom('GET', 'POST', 'PUT', 'HEAD', 'DELETE', 'CONNECT', 'PRI'), token, anyText),
    target: fc.oneof(fc.constantFrom('/', '/a?b=c', '*', 'http://x/y', '//', '/%00'), anyText),
    version: fc.constantFrom('HTTP/1.1', 'HTTP/1.0', 'HTTP/2.0', 'HTTP/1.1 ', 'HTTP/9', ''),
    headers: fc.array(fc.tuple(fc.oneof(token, anyText, fc.constantFrom('Content-Length', 'Transfer-Encoding', 'Host', 'Connection', 'Expect')), fc.oneof(anyText, fc.constantFrom('chunked', '-1', '99999999999', 'close', '100-continue', '5'))), { maxLength: 6 }),
    body: anyText,
  })
  .map(({ method, target, version, headers, body }) =>
    Buffer.from(`${method} ${target} ${version}\r\n${headers.map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n${body}`, 'latin1'),
  );

describe('fuzz: the gateway never falls over', () => {
  test('random bytes and malformed requests from clients', async () => {
    const good = await startUpstream(named('good'));
    const gw = await gateway({ upstreams: [good.url], timeoutMs: 2_000 });
    try {
      await fc.assert(
        fc.asyncProperty(fc.oneof(fc.uint8Array({ maxLength: 1_024 }), nearlyHttp), async (bytes) => {
          const answer = await exchange(gw.url, bytes);
          // Either nothing (the connection was simply closed) or well-formed HTTP responses.
          if (answer !== '') assert.match(answer, /^HTTP\/1\.[01] [1-5]\d\d /);
        }),
        { numRuns: 150, seed: 20211, endOnFailure: true },
      );
      const r = await get(`${gw.url}/after-fuzz`);
      assert.equal(r.status, 200);
      assert.equal(r.body, 'good');
    } finally {
      await gw.close();
      await good.close();
    }
  });

  test('random garbage and broken responses from an upstream', async () => {
    let reply: Buffer | null = null;
    const upstream = await startTcp((socket) => {
      socket.once('data', () => {
        if (reply === null) {
          socket.end('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
        } else {
          socket.end(reply);
        }
      });
    });
    const gw = await gateway({ upstreams: [upstream.url], timeoutMs: 1_000, queue: { timeoutMs: 100 }, outlier: { consecutiveFailures: 1_000, baseEjectionMs: 50, maxEjectionMs: 50 } });
    const brokenResponse = fc
      .record({
        status: fc.oneof(fc.constantFrom('200', '503', '999', '20', 'abc', '100'), anyText),
        headers: fc.array(fc.tuple(fc.oneof(token, anyText, fc.constantFrom('Content-Length', 'Transfer-Encoding', 'Connection')), fc.oneof(anyText, fc.constantFrom('chunked', '-1', '10', 'close'))), { maxLength: 5 }),
        body: anyText,
      })
      .map(({ status, headers, body }) => Buffer.from(`HTTP/1.1 ${status} X\r\n${headers.map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n${body}`, 'latin1'));
    try {
      await fc.assert(
        fc.asyncProperty(fc.oneof(fc.uint8Array({ maxLength: 512 }).map((u) => Buffer.from(u)), brokenResponse), async (bytes) => {
          reply = bytes;
          const r = await get(`${gw.url}/fuzz`).catch((err: unknown) => err as Error);
          // The gateway answers with a status, or cuts a response whose head it had already sent.
          if (!(r instanceof Error)) assert.ok(r.status >= 100 && r.status <= 599, `status ${r.status}`);
        }),
        { numRuns: 120, seed: 2021, endOnFailure: true },
      );
      reply = null;
      await waitFor(async () => (await get(`${gw.url}/after-fuzz`)).status === 200, 15_000, 'the gateway to serve again');
    } finally {
      await gw.close();
      await upstream.close();
    }
  });
});
