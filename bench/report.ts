import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { FixedRateResult, LoadResult } from './load.js';
import type { ProfileEntry, WindowStats } from './procs/stats.js';
import type { SeedSizes } from './seed.js';
import type { SubscriptionResult } from './subscriptions.js';
import type { SystemId, WorkloadId } from './workloads.js';

export interface Machine {
  cores: number;
  cpuModel: string;
  memoryGiB: number;
  node: string;
  os: string;
  commit: string;
  /** How the processes were pinned, or why they were not. */
  pinning: string;
  date: string;
  /** 1-minute load average before and after the run: other work on the machine shows here. */
  loadAverage: { before: number; after: number };
}

/** One load run of one cell, with what the processes measured in the same window. */
export interface RunRecord<L extends LoadResult = LoadResult> {
  load: L;
  /** Upstream REST calls the sandbox answered in the window, per answered request. */
  upstreamCallsPerRequest: number;
  /** CPU time of the system under test (gateway or REST process) per answered request, in µs. */
  cpuUsPerRequest: number;
  /** CPU time of the sandbox per answered request, in µs (upstream cost). */
  upstreamCpuUsPerRequest: number;
  /** CPU use of the system's process in the window: 100 = one whole core. */
  systemCpuPercent: number;
  /** CPU use of the core the sandbox and the load generator share (sandbox + runner). */
  upstreamCorePercent: number;
  /** Busy share of each CPU of the machine in the window, whoever used it (null: unknown). */
  machineBusyPercent: number[] | null;
  system: WindowStats;
  upstream: WindowStats;
}

export interface Cell {
  workload: WorkloadId;
  system: SystemId;
  latencyMs: number;
  /** Upstream calls of exactly one request, counted with nothing else running, the first time
   *  the request is seen (cold). */
  exactUpstreamCalls: number;
  /** The same requests again right after (warm: what caches the system has are filled). */
  warmUpstreamCalls?: number;
  closed: { connections: number; runs: RunRecord[]; median: Summary };
  fixed: { runs: RunRecord<FixedRateResult>[]; median: Summary & { targetRps: number } } | null;
}

/** Median of each metric over the runs. */
export interface Summary {
  rps: number;
  p50: number;
  p90: number;
  p99: number;
  failed: number;
  upstreamCallsPerRequest: number;
  peakUpstreamSockets: number | null;
  /** Highest RSS of the system's process in the window, MB. */
  peakRssMB: number;
  cpuUsPerRequest: number;
  upstreamCpuUsPerRequest: number;
  systemCpuPercent: number;
  upstreamCorePercent: number;
  eldP50Ms: number;
  eldP99Ms: number;
  /** The sandbox's event-loop delay p99 (its pauses delay every system alike). */
  upstreamEldP99Ms: number;
  /** Busy share of CPU 0 and CPU 1, everything on the machine included. */
  cpu0BusyPercent: number;
  cpu1BusyPercent: number;
}

export interface Target {
  name: string;
  goal: string;
  measured: string;
  /** null: reported only, no pass/fail. */
  met: boolean | null;
}

export interface BenchResults {
  mode: 'full' | 'quick';
  machine: Machine;
  sizes: SeedSizes;
  seedMs: number;
  settings: {
    runs: number;
    closedSeconds: number;
    fixedSeconds: number;
    warmupSeconds: number;
    connections: number;
    fixedRateShare: number;
    gatewayEnv: Record<string, string>;
    artifact?: string;
  };
  cells: Cell[];
  /** The gateway's RSS at rest, after start-up and one `me` (node dist/main.js). */
  memory?: { idleRssMB: number };
  subscriptions: SubscriptionResult | null;
  profiles: { title: string; entries: ProfileEntry[] }[];
  targets: Target[];
  totalSeconds: number;
}

export function median(values: readonly number[]): number {
  const sorted = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (sorted.length === 0) {
    return Number.NaN;
  }
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

export function summarize(runs: readonly RunRecord[]): Summary {
  const m = (pick: (run: RunRecord) => number | null) =>
    median(runs.map((run) => pick(run) ?? Number.NaN));
  const sockets = m((run) => run.system.peakSockets);
  return {
    rps: m((r) => r.load.rps),
    p50: m((r) => r.load.p50),
    p90: m((r) => r.load.p90),
    p99: m((r) => r.load.p99),
    failed: m((r) => r.load.failed),
    upstreamCallsPerRequest: m((r) => r.upstreamCallsPerRequest),
    peakUpstreamSockets: Number.isNaN(sockets) ? null : sockets,
    peakRssMB: m((r) => (r.system.peakRssBytes ?? Number.NaN) / 1024 ** 2),
    cpuUsPerRequest: m((r) => r.cpuUsPerRequest),
    upstreamCpuUsPerRequest: m((r) => r.upstreamCpuUsPerRequest),
    systemCpuPercent: m((r) => r.systemCpuPercent),
    upstreamCorePercent: m((r) => r.upstreamCorePercent),
    eldP50Ms: m((r) => r.system.eldP50Ms),
    eldP99Ms: m((r) => r.system.eldP99Ms),
    upstreamEldP99Ms: m((r) => r.upstream.eldP99Ms),
    cpu0BusyPercent: m((r) => r.machineBusyPercent?.[0] ?? null),
    cpu1BusyPercent: m((r) => r.machineBusyPercent?.[1] ?? null),
  };
}

// ---------------------------------------------------------------------------------------------
// Formatting

const SYSTEM_NAMES: Record<SystemId, string> = {
  S0: 'S0 hand-optimised REST',
  S1: 'S1 naive REST',
  S2: 'S2 gateway',
  S4: 'S4 engine floor',
};

function num(value: number | null | undefined, digits = 0): string {
  if (value === null || value === undefined || !Number.isFinite(value)) {
    return '—';
  }
  return value.toLocaleString('en-US', {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  });
}

function ms(value: number): string {
  if (!Number.isFinite(value)) {
    return '—';
  }
  return value < 10 ? value.toFixed(2) : value.toFixed(1);
}

function table(header: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

/** The main table: one row per workload, system and upstream latency. */
export function resultsTable(cells: readonly Cell[]): string {
  const rows = cells.map((cell) => {
    const c = cell.closed.median;
    const f = cell.fixed?.median;
    return [
      cell.workload,
      SYSTEM_NAMES[cell.system],
      `${cell.latencyMs} ms`,
      num(c.rps),
      ms(c.p50),
      ms(c.p99),
      f ? num(f.targetRps) : '—',
      f ? ms(f.p50) : '—',
      f ? ms(f.p99) : '—',
      callsCell(cell),
      num(c.peakUpstreamSockets),
      `**${num(c.cpuUsPerRequest)}**`,
      num(c.peakRssMB),
      num(c.upstreamCpuUsPerRequest),
      `${num(c.cpu0BusyPercent)}% (${num(c.systemCpuPercent)}%) / ${num(c.cpu1BusyPercent)}% (${num(c.upstreamCorePercent)}%)`,
      `${ms(c.eldP50Ms)} / ${ms(c.eldP99Ms)}`,
      num(c.failed + (f?.failed ?? 0)),
    ];
  });
  return table(
    [
      'workload',
      'system',
      'upstream latency',
      'req/s (closed)',
      'p50 ms',
      'p99 ms',
      'fixed rate req/s',
      'p50 ms',
      'p99 ms',
      'upstream calls/req (cold / warm)',
      'upstream sockets',
      '**CPU µs/req**',
      'peak RSS MB',
      'upstream CPU µs/req',
      'CPU 0 busy (system) / CPU 1 busy (sandbox + load)',
      'event-loop delay p50 / p99 ms',
      'failed',
    ],
    rows,
  );
}

function callsCell(cell: Cell): string {
  const warm = cell.warmUpstreamCalls;
  return warm === undefined || warm === cell.exactUpstreamCalls
    ? num(cell.exactUpstreamCalls, cell.exactUpstreamCalls % 1 === 0 ? 0 : 1)
    : `${num(cell.exactUpstreamCalls, cell.exactUpstreamCalls % 1 === 0 ? 0 : 1)} / ${num(warm, warm % 1 === 0 ? 0 : 1)}`;
}

export function targetsTable(targets: readonly Target[]): string {
  return table(
    ['target', 'goal', 'measured', 'met'],
    targets.map((t) => [
      t.name,
      t.goal,
      t.measured,
      t.met === null ? 'reported' : t.met ? 'yes' : '**no**',
    ]),
  );
}

export function subscriptionsTable(result: SubscriptionResult): string {
  return table(
    ['metric', 'value'],
    [
      ['subscriptions (graphql-ws sockets)', num(result.subscriptions)],
      ['rooms', num(result.rooms)],
      [
        'messages posted (per room per second)',
        `${num(result.sent)} (${result.perRoomPerSecond}/s)`,
      ],
      ['events expected / delivered', `${num(result.expected)} / ${num(result.delivered)}`],
      [
        'delivery latency p50 / p99 / max ms',
        `${ms(result.p50)} / ${ms(result.p99)} / ${ms(result.max)}`,
      ],
      [
        'gateway RSS MB: fresh / first tenth subscribed / all subscribed / after traffic',
        `${num(result.rssBeforeMB, 1)} / ${num(result.rssWarmMB, 1)} / ${num(result.rssSubscribedMB, 1)} / ${num(result.rssAfterTrafficMB, 1)}`,
      ],
      [
        'gateway JS heap used MB at the same readings',
        result.heapMB.map((v) => num(v, 1)).join(' / '),
      ],
      [
        'RSS growth per 1,000 subscriptions MB (between the last two readings; of it JS heap)',
        `${num(result.rssPerThousandMB, 1)} (${num(result.heapPerThousandMB, 1)})`,
      ],
      [
        'upstream streaming sockets / distinct tokens',
        `${num(result.upstreamSockets)} / ${num(result.distinctTokens)}`,
      ],
      ['upstream REST calls while subscribing', num(result.upstreamRestCalls)],
      ['subscribe time (all) s', num(result.subscribeSeconds, 1)],
      ['gateway CPU µs per delivered event', num(result.cpuUsPerEvent, 1)],
      ['gateway CPU use during traffic', `${num(result.gatewayCpuPercent)}%`],
      ['gateway event-loop delay p50 / p99 ms', `${ms(result.eldP50Ms)} / ${ms(result.eldP99Ms)}`],
      [
        'event-loop delay p99 ms: sandbox / subscribers (load generator)',
        `${ms(result.sandboxEldP99Ms)} / ${ms(result.clientEldP99Ms)}`,
      ],
      ['sandbox CPU use during traffic', `${num(result.sandboxCpuPercent)}%`],
    ],
  );
}

export function heapGrowthTable(result: SubscriptionResult): string {
  if (result.heapGrowth.length === 0) {
    return '';
  }
  return table(
    ['kind of heap object', 'objects per 1,000 subscriptions', 'KB per 1,000 subscriptions'],
    result.heapGrowth.map((g) => [`\`${g.kind}\``, num(g.countPerThousand), num(g.kbPerThousand)]),
  );
}

export function profileBlock(profile: { title: string; entries: ProfileEntry[] }): string {
  return [
    `**${profile.title}**`,
    '',
    table(
      ['self %', 'function'],
      profile.entries.map((e) => [e.selfPercent.toFixed(1), `\`${e.function}\``]),
    ),
  ].join('\n');
}

export function machineLine(machine: Machine): string {
  return `${machine.cores} × ${machine.cpuModel}, ${machine.memoryGiB} GiB, Node ${machine.node}, ${machine.os}, commit ${machine.commit}; 1-minute load average ${machine.loadAverage.before.toFixed(2)} before the run, ${machine.loadAverage.after.toFixed(2)} after`;
}

export async function writeResults(
  dir: string,
  results: BenchResults,
  markdown: string,
): Promise<{ json: string; md: string }> {
  const json = join(dir, 'results.json');
  const md = join(dir, 'RESULTS.md');
  await writeFile(json, `${JSON.stringify(results, null, 2)}\n`);
  await writeFile(md, markdown);
  return { json, md };
}
