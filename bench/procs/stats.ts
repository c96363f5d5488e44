import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { getHeapSnapshot } from 'node:v8';
import type { Handlers } from '../ipc.js';

/** What a process reports about one measurement window (`mark` … `stats`). */
export interface WindowStats {
  /** CPU time of the process in the window (user + system), in µs. */
  cpuUs: number;
  wallMs: number;
  /** Event-loop delay in the window, in ms. */
  eldP50Ms: number;
  eldP99Ms: number;
  eldMaxMs: number;
  rssBytes: number;
  /** Highest RSS sampled (every 50 ms) in the window. */
  peakRssBytes: number;
  heapUsedBytes: number;
  /** Highest number of upstream sockets sampled (every 10 ms) in the window, when known. */
  peakSockets: number | null;
}

export interface ProfileEntry {
  function: string;
  /** Share of the sampled time spent in the function itself, in %. */
  selfPercent: number;
}

/** Sampling interval of the event-loop delay histogram. */
export const ELD_RESOLUTION_MS = 10;

/** A value of `monitorEventLoopDelay` (ns, the sampling interval included) as the delay in ms. */
export function loopDelayMs(valueNs: number): number {
  return Math.max(0, valueNs / 1e6 - ELD_RESOLUTION_MS);
}

/**
 * The measurement commands every benchmark process answers: `mark` opens a window, `stats`
 * reads it, `gc` collects garbage (the process runs with --expose-gc), `profileStart` /
 * `profileStop` take a CPU profile and answer its top functions by self time.
 * `sockets` reads the process's open upstream sockets.
 */
export function statsHandlers(sockets?: () => number): Handlers {
  const eld = monitorEventLoopDelay({ resolution: ELD_RESOLUTION_MS });
  eld.enable();
  let cpu = process.cpuUsage();
  let wall = performance.now();
  let peak = 0;
  let peakRss = 0;
  let sampler: NodeJS.Timeout | undefined;
  let rssSampler: NodeJS.Timeout | undefined;
  let session: Session | undefined;

  return {
    mark: () => {
      eld.reset();
      cpu = process.cpuUsage();
      wall = performance.now();
      peakRss = process.memoryUsage.rss();
      clearInterval(rssSampler);
      rssSampler = setInterval(() => {
        peakRss = Math.max(peakRss, process.memoryUsage.rss());
      }, 50);
      rssSampler.unref();
      if (sockets) {
        peak = sockets();
        clearInterval(sampler);
        sampler = setInterval(() => {
          peak = Math.max(peak, sockets());
        }, 10);
        sampler.unref();
      }
      return null;
    },
    stats: (): WindowStats => {
      const used = process.cpuUsage(cpu);
      clearInterval(sampler);
      clearInterval(rssSampler);
      const memory = process.memoryUsage();
      return {
        cpuUs: used.user + used.system,
        wallMs: performance.now() - wall,
        eldP50Ms: loopDelayMs(eld.percentile(50)),
        eldP99Ms: loopDelayMs(eld.percentile(99)),
        eldMaxMs: loopDelayMs(eld.max),
        rssBytes: memory.rss,
        peakRssBytes: Math.max(peakRss, memory.rss),
        heapUsedBytes: memory.heapUsed,
        peakSockets: sockets ? Math.max(peak, sockets()) : null,
      };
    },
    gc: () => {
      const collect = (globalThis as { gc?: () => void }).gc;
      collect?.();
      collect?.();
      const memory = process.memoryUsage();
      return { rssBytes: memory.rss, heapUsedBytes: memory.heapUsed };
    },
    heapSummary: (top: number) => heapSummary(top),
    profileStart: async () => {
      session = new Session();
      session.connect();
      await session.post('Profiler.enable');
      await session.post('Profiler.setSamplingInterval', { interval: 200 });
      await session.post('Profiler.start');
      return null;
    },
    profileStop: async (top: number): Promise<ProfileEntry[]> => {
      if (!session) {
        throw new Error('no profile running');
      }
      const { profile } = await session.post('Profiler.stop');
      session.disconnect();
      session = undefined;
      // For a closer look (e.g. in Chrome's DevTools): the whole profile, as a .cpuprofile file.
      if (process.env.BENCH_PROFILE_DUMP) {
        writeFileSync(process.env.BENCH_PROFILE_DUMP, JSON.stringify(profile));
      }
      return topFunctions(profile, top);
    },
  };
}

/** Live JS heap by kind of object: count and self size, the `top` largest kinds. */
export type HeapSummary = Record<string, { count: number; bytes: number }>;

interface HeapSnapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
  nodes: number[];
  strings: string[];
}

async function heapSummary(top: number): Promise<HeapSummary> {
  (globalThis as { gc?: () => void }).gc?.();
  const chunks: string[] = [];
  for await (const chunk of getHeapSnapshot()) {
    chunks.push(String(chunk));
  }
  const snapshot = JSON.parse(chunks.join('')) as HeapSnapshot;
  const fields = snapshot.snapshot.meta.node_fields;
  const types = snapshot.snapshot.meta.node_types[0];
  const width = fields.length;
  const typeAt = fields.indexOf('type');
  const nameAt = fields.indexOf('name');
  const sizeAt = fields.indexOf('self_size');
  const kinds = new Map<string, { count: number; bytes: number }>();
  for (let i = 0; i < snapshot.nodes.length; i += width) {
    const type = types[snapshot.nodes[i + typeAt] ?? 0] ?? '?';
    const name =
      type === 'object' ? (snapshot.strings[snapshot.nodes[i + nameAt] ?? 0] ?? '?') : `(${type})`;
    const kind = kinds.get(name) ?? { count: 0, bytes: 0 };
    kind.count++;
    kind.bytes += snapshot.nodes[i + sizeAt] ?? 0;
    kinds.set(name, kind);
  }
  return Object.fromEntries([...kinds].sort((a, b) => b[1].bytes - a[1].bytes).slice(0, top));
}

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

export function topFunctions(
  profile: { nodes: ProfileNode[]; samples?: number[]; timeDeltas?: number[] },
  top: number,
): ProfileEntry[] {
  const nodes = new Map(profile.nodes.map((node) => [node.id, node]));
  const self = new Map<string, number>();
  let total = 0;
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  for (let i = 0; i < samples.length; i++) {
    const node = nodes.get(samples[i] ?? -1);
    const delta = deltas[i] ?? 0;
    if (!node) {
      continue;
    }
    const { functionName, url, lineNumber } = node.callFrame;
    if (functionName === '(idle)') {
      continue;
    }
    total += delta;
    const where = url ? ` ${shortPath(url)}:${lineNumber + 1}` : '';
    const key = `${functionName || '(anonymous)'}${where}`;
    self.set(key, (self.get(key) ?? 0) + delta);
  }
  return [...self]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([key, time]) => ({
      function: key,
      selfPercent: total > 0 ? Math.round((time / total) * 1000) / 10 : 0,
    }));
}

/** `graphql/execution/execute.js` for a dependency, `src/…` for ours, `node:…` for Node's. */
function shortPath(url: string): string {
  const file = url.replace(/^file:\/\//, '');
  const deps = file.lastIndexOf('/node_modules/');
  if (deps >= 0) {
    return file.slice(deps + '/node_modules/'.length);
  }
  for (const root of ['/src/', '/bench/']) {
    const at = file.lastIndexOf(root);
    if (at >= 0) {
      return file.slice(at + 1);
    }
  }
  return file;
}
