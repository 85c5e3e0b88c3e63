import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { Redis } from 'ioredis';
import { REDIS_START_TIMEOUT_MS } from '../constants.js';
import { Batcher } from './batcher.js';
import { OffsetCounter, type Peer } from './peer.js';

interface Add {
  key: string;
  id: string;
  data: Buffer;
  offset: number;
}

async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  server.close();
  await once(server, 'close');
  return port;
}

/**
 * Redis Streams: a private `redis-server` (127.0.0.1, free port, temp dir) with the append-only
 * file and `appendfsync always`, so a reply means the command is fsynced. Each queue is one stream;
 * stream ids carry the offset (`<offset>-1`). Concurrent appends go as one pipeline, which Redis
 * executes and fsyncs together before replying (its documented way to amortise the fsync).
 */
export class RedisPeer implements Peer {
  readonly name = 'redis';
  private server: ChildProcess | null = null;
  private client: Redis | null = null;
  private readonly offsets = new OffsetCounter();
  private batcher: Batcher<Add, number> | null = null;

  constructor(private readonly binary = 'redis-server') {}

  async unavailable(): Promise<string | null> {
    const probe = spawnSync(this.binary, ['--version'], { encoding: 'utf8' });
    if (probe.error || probe.status !== 0) {
      return `${this.binary} not found; install it with: apt-get install redis-server`;
    }
    return null;
  }

  async open(dir: string): Promise<void> {
    const port = await freePort();
    const server = spawn(
      this.binary,
      ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'yes',
        '--appendfsync', 'always', '--save', '', '--daemonize', 'no', '--protected-mode', 'yes'],
      { stdio: 'ignore' },
    );
    this.server = server;
    const client = new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 0 });
    // Connection errors while redis-server starts are expected and retried below; commands
    // still reject with their own error, so nothing is lost by not logging them here.
    client.on('error', () => {});
    const deadline = Date.now() + REDIS_START_TIMEOUT_MS;
    for (;;) {
      try {
        await client.connect();
        await client.ping();
        break;
      } catch (err) {
        client.disconnect();
        if (Date.now() > deadline || server.exitCode !== null) {
          await this.close();
          throw new Error(`redis-server did not start on 127.0.0.1:${port}`, { cause: err });
        }
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
    const appendfsync = (await client.config('GET', 'appendfsync')) as string[];
    if (appendfsync[1] !== 'always') throw new Error(`redis appendfsync is ${appendfsync[1]}, expected always`);
    this.client = client;
    this.batcher = new Batcher<Add, number>(async (adds) => {
      const pipeline = client.pipeline();
      for (const a of adds) pipeline.xadd(a.key, a.id, 'd', a.data);
      const results = (await pipeline.exec()) ?? [];
      return adds.map((a, i) => {
        const [err] = results[i] ?? [new Error('missing pipeline result')];
        if (err) throw err;
        return a.offset;
      });
    });
  }

  append(topic: string, queueId: number, data: Buffer): Promise<number> {
    if (!this.batcher) throw new Error('redis peer not open');
    const offset = this.offsets.take(topic, queueId);
    return this.batcher.add({ key: `${topic}:${queueId}`, id: `${offset}-1`, data, offset });
  }

  async read(topic: string, queueId: number, offset: number): Promise<Buffer | null> {
    if (!this.client) return null;
    const id = `${offset}-1`;
    const entries = await this.client.xrangeBuffer(`${topic}:${queueId}`, id, id);
    const fields = entries[0]?.[1];
    return fields?.[1] ?? null;
  }

  async close(): Promise<void> {
    this.client?.disconnect();
    this.client = null;
    const server = this.server;
    this.server = null;
    if (server && server.exitCode === null && server.signalCode === null) {
      server.kill('SIGTERM');
      await once(server, 'exit');
    }
  }
}
