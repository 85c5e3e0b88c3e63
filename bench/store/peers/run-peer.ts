import { PEER_VERIFY_SAMPLES, PROGRESS_INTERVAL_MS } from '../constants.js';
import { makeLayout } from '../layout.js';
import type { BenchOptions, PeerName } from '../options.js';
import { PayloadFactory, randomPool } from '../payload.js';
import { mix32 } from '../prng.js';
import { Counters, newLatencyHistogram, runProducers } from '../workload.js';
import { LevelDbPeer } from './leveldb.js';
import type { Peer } from './peer.js';
import { RedisPeer } from './redis.js';
import { SqlitePeer } from './sqlite.js';

export interface PeerResult {
  name: PeerName;
  /** Null when skipped. */
  mibps: number | null;
  skipped: string | null;
  seconds: number | null;
  bytesWritten: number;
  p50AppendMs: number | null;
  p99AppendMs: number | null;
  verifiedSamples: number;
  errors: number;
  errorSamples: string[];
}

function makePeer(name: PeerName): Peer {
  switch (name) {
    case 'sqlite':
      return new SqlitePeer();
    case 'leveldb':
      return new LevelDbPeer();
    case 'redis':
      return new RedisPeer();
  }
}

/**
 * The store's phase 1 (same layout, producers, message mix) against one peer, `peerBytes` long,
 * then a sample of records read back and checked, so a fast but wrong adapter cannot win.
 */
export async function runPeer(name: PeerName, dir: string, o: BenchOptions, log: (line: string) => void): Promise<PeerResult> {
  const peer = makePeer(name);
  const skipped = await peer.unavailable();
  const base: PeerResult = {
    name, mibps: null, skipped, seconds: null, bytesWritten: 0, p50AppendMs: null, p99AppendMs: null,
    verifiedSamples: 0, errors: 0, errorSamples: [],
  };
  if (skipped) {
    log(`peer ${name} skipped: ${skipped}`);
    return base;
  }
  const layout = makeLayout(o.seed, o.topics, o.maxQueues);
  const payload = new PayloadFactory(randomPool(o.seed), o.seed);
  const counters = new Counters();
  const latency = newLatencyHistogram();
  const next = new Uint32Array(layout.totalQueues);
  await peer.open(dir);
  try {
    log(`peer ${name}: writing ${(o.peerBytes / 1024 ** 3).toFixed(2)} GiB with ${o.producers} producers`);
    const started = process.hrtime.bigint();
    // A peer takes a minute or more at its 15-30 MiB/s: say how far it has got.
    const progress = setInterval(() => {
      const s = Number(process.hrtime.bigint() - started) / 1e9;
      log(`peer ${name}  t=${s.toFixed(0)}s written ${(counters.bytesWritten / 1024 ** 3).toFixed(2)} of ${(o.peerBytes / 1024 ** 3).toFixed(2)} GiB (${(counters.bytesWritten / 1024 ** 2 / s).toFixed(1)} MiB/s) errors ${counters.errors}`);
    }, PROGRESS_INTERVAL_MS);
    try {
      await runProducers({
        layout, payload, producers: o.producers, targetBytes: o.peerBytes, seed: o.seed, next, counters, latency,
        append: (t, q, data) => peer.append(layout.topicNames[t], q, data),
      });
    } finally {
      clearInterval(progress);
    }
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const mibps = counters.bytesWritten / 1024 ** 2 / seconds;
    log(`peer ${name}: ${mibps.toFixed(1)} MiB/s`);
    let verified = 0;
    for (let i = 0; i < PEER_VERIFY_SAMPLES; i++) {
      const g = mix32(o.seed, i, 0xbee) % layout.totalQueues;
      if (next[g] === 0) continue;
      const offset = mix32(o.seed, i, 0xcafe) % next[g];
      const t = layout.topicOf[g];
      const q = layout.queueIdOf[g];
      const rec = await peer.read(layout.topicNames[t], q, offset);
      const problem = rec ? payload.verify(t, q, offset, rec) : 'missing';
      if (problem) counters.fail(`peer ${name} ${layout.topicNames[t]}/${q}@${offset}: ${problem}`);
      else verified++;
    }
    return {
      ...base,
      mibps,
      seconds,
      bytesWritten: counters.bytesWritten,
      p50AppendMs: latency.getValueAtPercentile(50) / 1000,
      p99AppendMs: latency.getValueAtPercentile(99) / 1000,
      verifiedSamples: verified,
      errors: counters.errors,
      errorSamples: counters.errorSamples,
    };
  } finally {
    await peer.close();
  }
}
