import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import type { ProfileEntry, WindowStats } from './procs/stats.js';

/**
 * S2 as users run it: `node dist/main.js` of a built tree (the repository's own `dist/`, or
 * another tree's with `--artifact DIR`), in production mode, with no benchmark code inside the
 * process. Everything is read from outside: CPU time and RSS from /proc, upstream sockets from
 * its /metrics, a CPU profile with Node's `--cpu-prof`.
 */
export class ArtifactProcess {
  readonly child: ChildProcess;
  readonly ready: Promise<{ origin: string }>;
  #mark = { cpuTicks: 0, wall: 0 };
  #peakRss = 0;
  #sampler: NodeJS.Timeout | undefined;
  #exited = false;

  private constructor(
    readonly name: string,
    readonly origin: string,
    root: string,
    env: Record<string, string>,
    execArgv: string[],
  ) {
    const port = new URL(origin).port;
    this.child = spawn(process.execPath, [...execArgv, join(root, 'dist/main.js')], {
      cwd: root,
      env: { ...process.env, ...env, PORT: port, HOST: '127.0.0.1' },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    this.child.once('exit', () => {
      this.#exited = true;
    });
    this.ready = waitHealthy(origin, this.child).then(() => ({ origin }));
    this.ready.catch(() => undefined);
  }

  static async start(
    name: string,
    root: string,
    env: Record<string, string>,
    execArgv: string[] = [],
  ): Promise<ArtifactProcess> {
    const origin = `http://127.0.0.1:${await freePort()}`;
    return new ArtifactProcess(name, origin, root, env, execArgv);
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  /** Resident set size now, in bytes. */
  rssBytes(): number {
    return procStatus(this.pid, 'VmRSS');
  }

  /** The measurement commands of `BenchProcess` that apply from outside: `mark` and `stats`. */
  async request<T = unknown>(cmd: string): Promise<T> {
    if (this.#exited) {
      throw new Error(`${this.name} is not running`);
    }
    if (cmd === 'mark') {
      this.#mark = { cpuTicks: cpuTicks(this.pid), wall: performance.now() };
      this.#peakRss = this.rssBytes();
      clearInterval(this.#sampler);
      this.#sampler = setInterval(() => {
        this.#peakRss = Math.max(this.#peakRss, this.rssBytes());
      }, 50);
      this.#sampler.unref();
      return null as T;
    }
    if (cmd === 'stats') {
      clearInterval(this.#sampler);
      const ticks = cpuTicks(this.pid) - this.#mark.cpuTicks;
      const rss = this.rssBytes();
      const stats: WindowStats = {
        cpuUs: (ticks * 1e6) / CLOCK_TICKS_PER_SECOND,
        wallMs: performance.now() - this.#mark.wall,
        eldP50Ms: Number.NaN,
        eldP99Ms: Number.NaN,
        eldMaxMs: Number.NaN,
        rssBytes: rss,
        peakRssBytes: Math.max(this.#peakRss, rss),
        heapUsedBytes: Number.NaN,
        peakSockets: await this.#openUpstreamSockets(),
      };
      return stats as T;
    }
    throw new Error(`${this.name}: ${cmd} is not available from outside the process`);
  }

  /** `misskey_upstream_open_sockets` from /metrics (null when it cannot be read). */
  async #openUpstreamSockets(): Promise<number | null> {
    try {
      const text = await (await fetch(`${this.origin}/metrics`)).text();
      const line = /^misskey_upstream_open_sockets(?:\{[^}]*\})? (\d+)/m.exec(text);
      return line ? Number(line[1]) : null;
    } catch {
      return null;
    }
  }

  /** SIGTERM (a graceful close, which writes a `--cpu-prof` profile), SIGKILL after `graceMs`. */
  async stop(graceMs = 15_000): Promise<void> {
    clearInterval(this.#sampler);
    if (this.#exited) {
      return;
    }
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
  }
}

/** USER_HZ: the unit of utime/stime in /proc/PID/stat on Linux. */
const CLOCK_TICKS_PER_SECOND = 100;

/** User + system CPU time of a process (all its threads) in clock ticks. */
function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may hold spaces) start at state; utime is field 14.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

function procStatus(pid: number, key: string): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1];
    return kb === undefined ? Number.NaN : Number(kb) * 1024;
  } catch {
    return Number.NaN;
  }
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

async function waitHealthy(origin: string, child: ChildProcess): Promise<void> {
  const until = Date.now() + 60_000;
  while (Date.now() < until) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`node dist/main.js exited (${child.signalCode ?? child.exitCode})`);
    }
    try {
      if ((await fetch(`${origin}/health`)).ok) {
        return;
      }
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error('node dist/main.js did not answer /health within 60 s');
}

interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }[];
  startTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

/**
 * The samples of a `--cpu-prof` profile between two readings of the monotonic clock (µs, as
 * `process.hrtime` reads it; V8 stamps samples with the same clock), so start-up, warm-up and
 * shutdown are left out.
 */
export function profileWindow(file: string, fromUs: number, toUs: number): CpuProfile {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const samples: number[] = [];
  const deltas: number[] = [];
  let at = profile.startTime;
  let last = fromUs;
  for (let i = 0; i < (profile.samples?.length ?? 0); i++) {
    at += profile.timeDeltas?.[i] ?? 0;
    if (at >= fromUs && at <= toUs) {
      samples.push(profile.samples?.[i] ?? 0);
      deltas.push(at - last);
      last = at;
    }
  }
  return { ...profile, samples, timeDeltas: deltas };
}

export type { ProfileEntry };
