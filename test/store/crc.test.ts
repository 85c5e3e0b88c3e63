import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import fc from 'fast-check';
import { crc32c, crc32cImplementation, crc32cRange, portableCrc32c } from '../../src/store/crc.js';
import { nativeAddon, nativeAddonUnavailable } from '../../src/store/native.js';
import { repoRoot } from './helpers.js';

test('crc32c: the addon\'s SSE4.2 implementation is in use on x86-64 (the addon is built by npm install unless CIRRUS_NATIVE_READS=off)', () => {
  if (process.env.CIRRUS_NATIVE_CRC === 'off' || process.arch !== 'x64') {
    assert.equal(crc32cImplementation, '@node-rs/crc32');
  } else if (nativeAddon === null) {
    assert.equal(process.env.CIRRUS_NATIVE_READS, 'off', `the addon did not load: ${nativeAddonUnavailable}`);
    assert.equal(crc32cImplementation, '@node-rs/crc32');
  } else {
    assert.equal(crc32cImplementation, 'sse4.2');
  }
});

test('crc32c: known values (the Castagnoli check value, empty input, chaining from a seed)', () => {
  assert.equal(crc32c(Buffer.from('123456789')), 0xe3069283);
  assert.equal(crc32c(Buffer.alloc(0)), 0);
  assert.equal(crc32c(Buffer.alloc(0), 0x1234_5678), 0x1234_5678);
  assert.equal(crc32c(Buffer.from('56789'), crc32c(Buffer.from('1234'))), 0xe3069283);
  assert.equal(crc32cRange(Buffer.from('xx123456789yy'), 2, 11), 0xe3069283);
  // 32 bytes of zeros and of 0xff: RFC 3720, B.4.
  assert.equal(crc32c(Buffer.alloc(32, 0)), 0x8a9136aa);
  assert.equal(crc32c(Buffer.alloc(32, 0xff)), 0x62a8ab43);
});

test('crc32c: equals @node-rs/crc32 for any bytes, length (across the three-stream block sizes), alignment and seed (property)', () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 0, maxLength: 12_000, size: 'max' }),
      fc.nat({ max: 7 }),
      fc.nat({ max: 0xffff_ffff }),
      (bytes, skew, seed) => {
        // Copy at an offset so the data starts at every alignment mod 8.
        const buf = Buffer.alloc(bytes.length + skew);
        buf.set(bytes, skew);
        const view = buf.subarray(skew);
        const want = portableCrc32c(view, seed);
        assert.equal(crc32c(view, seed), want);
        assert.equal(crc32cRange(buf, skew, buf.length, seed), want);
        assert.equal(crc32c(new Uint8Array(view), seed), want, 'a Uint8Array that is not a Buffer');
      },
    ),
    { numRuns: 300 },
  );
});

test('crc32c: the CRC of a whole is the CRC of its parts chained (property)', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 9_000, size: 'max' }), fc.nat(), (bytes, cut) => {
      const buf = Buffer.from(bytes);
      const at = buf.length === 0 ? 0 : cut % (buf.length + 1);
      assert.equal(crc32cRange(buf, at, buf.length, crc32cRange(buf, 0, at)), crc32c(buf));
    }),
    { numRuns: 200 },
  );
});

test('crc32cRange: a range outside the data is rejected, naming it', () => {
  const buf = Buffer.alloc(10);
  for (const [start, end] of [[-1, 5], [5, 4], [0, 11], [1.5, 3], [Number.NaN, 2]] as const) {
    assert.throws(() => crc32cRange(buf, start, end), (err: unknown) => err instanceof Error && /start and end must be whole numbers with 0 <= start <= end <= data\.length/.test(err.message), `[${start}, ${end})`);
  }
});

test('crc32c: the portable path (CIRRUS_NATIVE_CRC=off) gives the same values and the same range checks', () => {
  const script = `
    import { crc32c, crc32cRange, crc32cImplementation } from ${JSON.stringify(join(repoRoot(), 'dist', 'src', 'store', 'crc.js'))};
    const b = Buffer.alloc(20000); for (let i = 0; i < b.length; i++) b[i] = (i * 131) & 255;
    let err = '';
    try { crc32cRange(b, 5, 3); } catch (e) { err = e.message; }
    console.log(JSON.stringify({ impl: crc32cImplementation, whole: crc32c(b), seeded: crc32c(new Uint8Array(b.subarray(3)), 77), range: crc32cRange(b, 7, 19_000, 5), err }));
  `;
  const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, CIRRUS_NATIVE_CRC: 'off' }, encoding: 'utf8' });
  assert.equal(run.status, 0, run.stderr);
  const got = JSON.parse(run.stdout) as { impl: string; whole: number; seeded: number; range: number; err: string };
  const b = Buffer.alloc(20000);
  for (let i = 0; i < b.length; i++) b[i] = (i * 131) & 255;
  assert.equal(got.impl, '@node-rs/crc32');
  assert.equal(got.whole, crc32c(b));
  assert.equal(got.seeded, crc32c(b.subarray(3), 77));
  assert.equal(got.range, crc32cRange(b, 7, 19_000, 5));
  assert.match(got.err, /start and end must be whole numbers .*\[5, 3\) of 20000/);
});
