/**
 * Child processes of a benchmark run: forked Node helpers that report over IPC, and external
 * binaries (nginx, HAProxy) that are ready once their port accepts connections. Every child is
 * stopped by its own pid; none outlives the run.
 */
import { execFileSync, fork, spawn, type ChildProcess } from 'node:child_process';
import { connect, createServer, type AddressInfo } from 'node:net';

/** How long a child may take to come up on a loaded 2-core machine. */
const START_TIMEOUT_MS = 20_000;
/** Grace period between SIGTERM and SIGKILL. */
const STOP_GRACE_MS = 5_000;
/** Output kept from a child for error messages. */
const OUTPUT_TAIL_BYTES = 4_096;

export interface Child {
  readonly process: ChildProcess;
  /** The child's last output, for error messages. */
  tail(): string;
  stop(): Promise<void>;
}

/** Children still running: killed if the benchmark itself exits early (Ctrl-C, crash). */
const live = new Set<ChildProcess>();
let cleanupInstalled = false;

/** Installed with the first child, so that merely importing this module changes nothing. */
function installCleanup(): void {
  if (cleanupInstalled) return;
  cleanupInstalled = true;
  process.on('exit', () => {
    for (const c of live) c.kill('SIGKILL');
  });
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));
}

function track(child: ChildProcess): Child {
  installCleanup();
  live.add(child);
  child.once('exit', () => live.delete(child));
  let tail = '';
  const keep = (b: Buffer): void => {
    tail = (tail + b.toString()).slice(-OUTPUT_TAIL_BYTES);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  let exited = child.exitCode !== null || child.signalCode !== null;
  const exitedP = new Promise<void>((resolve) => {
    if (exited) resolve();
    child.once('exit', () => {
      exited = true;
      resolve();
    });
  });
  return {
    process: child,
    tail: () => tail,
    stop: async () => {
      if (exited) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
      await exitedP;
      clearTimeout(timer);
    },
  };
}

/** Forks a compiled Node module and waits for its first IPC message. */
export async function forkReporting<T>(modulePath: URL, arg: unknown, env: NodeJS.ProcessEnv = {}): Promise<{ child: Child; report: T }> {
  const proc = fork(modulePath, [JSON.stringify(arg)], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'], env: { ...process.env, ...env } });
  const child = track(proc);
  const report = await new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${modulePath.pathname}: no report within ${START_TIMEOUT_MS} ms\n${child.tail()}`)), START_TIMEOUT_MS);
    proc.once('message', (m) => {
      clearTimeout(timer);
      resolve(m as T);
    });
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${modulePath.pathname} exited (${code}) before reporting\n${child.tail()}`));
    });
  });
  return { child, report };
}

/** Spawns a binary and waits until 127.0.0.1:port accepts connections. */
export async function spawnListening(cmd: string, args: string[], port: number): Promise<Child> {
  const child = track(spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] }));
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (child.process.exitCode !== null) throw new Error(`${cmd} exited (${child.process.exitCode}):\n${child.tail()}`);
    if (await canConnect(port)) return child;
    await new Promise((r) => setTimeout(r, 50));
  }
  await child.stop();
  throw new Error(`${cmd} did not listen on ${port} within ${START_TIMEOUT_MS} ms:\n${child.tail()}`);
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ port, host: '127.0.0.1' });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** A port that was free a moment ago (for binaries that need a port in their config). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/** Absolute path of an executable on PATH (or in /usr/sbin), or null. */
export function findBinary(name: string): string | null {
  for (const dir of [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/usr/local/sbin', '/sbin']) {
    if (!dir) continue;
    try {
      execFileSync('test', ['-x', `${dir}/${name}`]);
      return `${dir}/${name}`;
    } catch {
      // not in this directory
    }
  }
  return null;
}
