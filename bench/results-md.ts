import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  type BenchResults,
  type Cell,
  heapGrowthTable,
  machineLine,
  profileBlock,
  resultsTable,
  subscriptionsTable,
  type Target,
  targetsTable,
} from './report.js';
import { WORKLOADS } from './workloads.js';

const RSS_TARGET_MB = 20;
/** (a): the gateway's req/s as a share of the engine floor's (S4). */
const FLOOR_SHARE = 0.9;
/** The gateway's CPU per request at most this many times S0's, per workload. */
const CPU_RATIO_TARGETS: readonly [string, number][] = [
  ['a', 2.5],
  ['b', 2.5],
  ['c', 3],
];
const IDLE_RSS_TARGET_MB = 70;
const PEAK_RSS_TARGET_MB = 150;
/** A CPU this busy (%) counts as the bound: one Node thread that also waits on I/O rarely goes higher. */
const SATURATED = 85;
const DELIVERY_P99_TARGET_MS = 50;

function cellOf(
  results: BenchResults,
  workload: string,
  system: string,
  latencyMs: number,
): Cell | undefined {
  return results.cells.find(
    (c) => c.workload === workload && c.system === system && c.latencyMs === latencyMs,
  );
}

const fmt = (value: number, digits = 0) =>
  Number.isFinite(value)
    ? value.toLocaleString('en-US', {
        maximumFractionDigits: digits,
        minimumFractionDigits: digits,
      })
    : '—';

/** The issue's targets, computed from the cells. */
export function targetsOf(results: BenchResults): Target[] {
  const targets: Target[] = [];
  const cpu = (cell: Cell | undefined) => cell?.closed.median.cpuUsPerRequest ?? Number.NaN;
  const rps = (cell: Cell | undefined) => cell?.closed.median.rps ?? Number.NaN;
  const a4 = cellOf(results, 'a', 'S4', 0);
  const a2 = cellOf(results, 'a', 'S2', 0);
  if (a4 && a2) {
    const share = rps(a2) / rps(a4);
    targets.push({
      name: '(a) gateway throughput vs the engine floor S4, 0 ms',
      goal: `S2 ≥ ${fmt(FLOOR_SHARE * 100)}% of S4 req/s`,
      measured: `${fmt(share * 100)}% (${fmt(rps(a2))} vs ${fmt(rps(a4))} req/s)`,
      met: share >= FLOOR_SHARE,
    });
  }
  for (const [workload, max] of CPU_RATIO_TARGETS) {
    for (const latencyMs of [0, 5]) {
      const s0 = cellOf(results, workload, 'S0', latencyMs);
      const s2 = cellOf(results, workload, 'S2', latencyMs);
      if (!s0 || !s2) {
        continue;
      }
      const ratio = cpu(s2) / cpu(s0);
      targets.push({
        name: `(${workload}) gateway CPU per request vs S0, ${latencyMs} ms`,
        goal: `≤ ${max}× S0's CPU µs/req`,
        measured: `${fmt(ratio, 2)}× (${fmt(cpu(s2))} vs ${fmt(cpu(s0))} µs/req)`,
        met: ratio <= max,
      });
    }
  }
  const b2 = results.cells.filter((c) => c.workload === 'b' && c.system === 'S2');
  if (b2.length > 0) {
    const cold = b2.map((c) => c.exactUpstreamCalls);
    const warm = b2.map((c) => c.warmUpstreamCalls ?? Number.NaN);
    targets.push({
      name: '(b) upstream calls per conversation page (cold / warm)',
      goal: 'warm exactly 1; cold at most 2 (senders another page brought are already known)',
      measured: `${b2.map((c, i) => `${fmt(cold[i] ?? Number.NaN, 2)} / ${fmt(warm[i] ?? Number.NaN, 2)} at ${c.latencyMs} ms`).join('; ')} (S0: 2 always)`,
      met: cold.every((v) => v <= 2) && warm.every((v) => v === 1),
    });
  }
  const b0 = cellOf(results, 'b', 'S0', 5);
  const b25 = cellOf(results, 'b', 'S2', 5);
  if (b0 && b25) {
    const ratio = rps(b25) / rps(b0);
    targets.push({
      name: '(b) gateway throughput vs S0 with the upstream as the bound, 5 ms',
      goal: 'S2 ≥ S0 req/s',
      measured: `${fmt(ratio, 2)}× (${fmt(rps(b25))} vs ${fmt(rps(b0))} req/s; upstream core ${fmt(b0.closed.median.upstreamCorePercent)}% busy under S0)`,
      met: ratio >= 1,
    });
  }
  const idle = results.memory?.idleRssMB;
  if (idle !== undefined) {
    targets.push({
      name: 'gateway idle RSS (node dist/main.js, after one `me`)',
      goal: `≤ ${IDLE_RSS_TARGET_MB} MB`,
      measured: `${fmt(idle, 1)} MB`,
      met: idle <= IDLE_RSS_TARGET_MB,
    });
  }
  const peakB = Math.max(
    ...results.cells
      .filter((c) => c.workload === 'b' && c.system === 'S2')
      .map((c) => c.closed.median.peakRssMB),
  );
  if (Number.isFinite(peakB)) {
    targets.push({
      name: 'gateway peak RSS under (b)',
      goal: `≤ ${PEAK_RSS_TARGET_MB} MB`,
      measured: `${fmt(peakB, 1)} MB`,
      met: peakB <= PEAK_RSS_TARGET_MB,
    });
  }
  const d = results.subscriptions;
  if (d) {
    targets.push({
      name: '(d) gateway RSS growth per 1,000 subscriptions',
      goal: `≤ ${RSS_TARGET_MB} MB`,
      measured: `${fmt(d.rssPerThousandMB, 1)} MB (${fmt(d.subscriptions)} subscriptions)`,
      met: d.rssPerThousandMB <= RSS_TARGET_MB,
    });
    targets.push({
      name: '(d) delivery latency',
      goal: `p99 ≤ ${DELIVERY_P99_TARGET_MS} ms`,
      measured: `p50 ${fmt(d.p50, 1)} ms, p99 ${fmt(d.p99, 1)} ms (${fmt(d.delivered)} of ${fmt(d.expected)} events)`,
      met: d.p99 <= DELIVERY_P99_TARGET_MS && d.delivered === d.expected && d.errors === 0,
    });
    targets.push({
      name: '(d) upstream streaming sockets',
      goal: '= distinct tokens',
      measured: `${fmt(d.upstreamSockets)} sockets for ${fmt(d.distinctTokens)} tokens`,
      met: d.upstreamSockets === d.distinctTokens,
    });
  }
  return targets;
}

/** Explanations computed from the numbers: what bounded each cell. */
function readingNotes(results: BenchResults): string[] {
  const notes: string[] = [];
  for (const cell of results.cells) {
    const m = cell.closed.median;
    const what = `(${cell.workload}) ${cell.system} at ${cell.latencyMs} ms`;
    const others0 = m.cpu0BusyPercent - m.systemCpuPercent;
    const others1 = m.cpu1BusyPercent - m.upstreamCorePercent;
    if (m.cpu0BusyPercent >= SATURATED) {
      notes.push(
        `${what}: CPU 0 was saturated (${fmt(m.cpu0BusyPercent)}% busy: the system ${fmt(m.systemCpuPercent)}%, ` +
          `other processes ${fmt(Math.max(0, others0))}%); the system spent ${fmt(m.cpuUsPerRequest)} µs of CPU per request.`,
      );
    } else if (m.cpu1BusyPercent >= SATURATED) {
      notes.push(
        `${what}: CPU 1 was saturated (${fmt(m.cpu1BusyPercent)}% busy: sandbox and load generator ` +
          `${fmt(m.upstreamCorePercent)}%, other processes ${fmt(Math.max(0, others1))}%); the sandbox spent ` +
          `${fmt(m.upstreamCpuUsPerRequest)} µs per request, the system ${fmt(m.cpuUsPerRequest)} µs.`,
      );
    } else if (Number.isFinite(m.cpu0BusyPercent)) {
      notes.push(
        `${what}: neither CPU was saturated (${fmt(m.cpu0BusyPercent)}% / ${fmt(m.cpu1BusyPercent)}%): ` +
          `requests waited (upstream latency × sequential calls, the upstream pool of 32 sockets, or ` +
          `descheduling by other processes).`,
      );
    }
  }
  return notes;
}

export function renderMarkdown(results: BenchResults): string {
  const { settings, sizes, machine } = results;
  const workloadList = WORKLOADS.map(
    (w) => `- ${w.title}:\n\n  \`\`\`graphql\n  ${w.query.split('\n').join('\n  ')}\n  \`\`\``,
  ).join('\n');
  const missed = results.targets.filter((t) => t.met === false);
  return `# Benchmark results

Generated by \`npm run bench\`${results.mode === 'quick' ? ' **--quick** (smoke sizes; not a measurement)' : ''} on ${machine.date.slice(0, 10)} in ${results.totalSeconds} s; regenerated on every run.

**Machine:** ${machineLine(machine)}.

**Reproduce:** \`npm ci && npm run bench\` (about ${Math.ceil(results.totalSeconds / 60)} minutes on this machine; writes this file and
[results.json](results.json)). \`npm run bench -- --quick\` is a smoke run of a few seconds with tiny data that
writes to a temporary directory.

## Setup

- **Upstream:** the Misskey sandbox (\`src/sandbox\`) in its own process with rate limits off, seeded with
  ${fmt(sizes.users)} users, ${fmt(sizes.conversations)} conversations of ${fmt(sizes.messagesPerConversation)} messages and ${fmt(sizes.rooms)} rooms of
  ${fmt(sizes.membersPerRoom)} members over ${fmt(sizes.roomOwners)} owners (seeded in ${fmt(results.seedMs)} ms), with an added latency of 0 ms or 5 ms per REST answer.
- **Systems** (each answers the same \`data\`, checked before the load):
  - **S0 hand-optimised REST client**: the fewest calls (embedded users and rooms used, user lookups batched into one \`users/show\`), undici pool;
  - **S1 naive REST client**: the same endpoints, one \`users/show\` per user reference, concurrently, embedded objects ignored;
  - **S2 the gateway** as users run it: \`node dist/main.js\` built from this commit, every setting at its default (upstream pool: \`UPSTREAM_CONNECTIONS\`, 32 sockets; access log at \`info\`, to /dev/null; metrics on) and \`NODE_ENV=production\` as in the Docker image;
  - **S4 the engine floor** (\`bench/procs/floor.ts\`, workloads (a) and (b)): a bare graphql-yoga + graphql-jit server with hand-written resolvers calling the upstream exactly as S0 does, and no limits, metrics, logging, caches or error model: what any Yoga server pays at least.
  S0 and S1 run in one REST server process (\`bench/procs/rest.ts\`, same pool size as the gateway) so the load drives all of them over HTTP alike.
- **Pinning:** ${machine.pinning}.
- **Load:** closed loop with autocannon, ${settings.connections} connections, ${settings.warmupSeconds} s warm-up, then ${settings.runs} runs of ${settings.closedSeconds} s per cell
  (latency resolution 1 ms), the systems of a workload taking turns run by run (the order rotating each round), so a drift of the machine over minutes falls on all of them alike; then a **fixed-rate** open loop (\`bench/load.ts\`): requests are due at exact intervals and their latency counts from when they were due,
  so a stall shows in every request it delayed (no coordinated omission). The rate is ${fmt(settings.fixedRateShare * 100)}% of the slowest system's closed-loop throughput in that
  workload, the same for every system, ${settings.runs} runs of ${settings.fixedSeconds} s. (autocannon's own rate mode sends each connection's quota at the start of every second and
  corrects latencies with a 1 ms interval, so it is not used for this.)
- **Medians:** every number is the median of its ${settings.runs} runs (each metric on its own).
- **The primary cross-system figure is CPU time per answered request of each system's own process**, each system under test alone on CPU 0
  and the upstream's CPU reported beside it (so a cell bound by the upstream shows as such). S2's CPU and RSS are read from \`/proc/<pid>\`
  (it runs unmodified); the bench's own processes (S0/S1, S4, sandbox) report \`process.cpuUsage\`, event-loop delay
  (\`monitorEventLoopDelay\` sampling every 10 ms, the interval subtracted) and their upstream sockets (sampled every 10 ms).
  Upstream calls come from the sandbox's call counter: *cold* is the first request of a kind, *warm* the ones after it.
  The profiles below are \`node --cpu-prof\` of \`dist/main.js\` in a process of its own, over the measured stretch only.

Workloads:

${workloadList}
- (d) ${results.subscriptions ? fmt(results.subscriptions.subscriptions) : '1,000'} graphql-ws subscriptions \`chatEvents(roomId)\`, one per room membership, one socket per user, ${results.subscriptions?.perRoomPerSecond ?? 5}
  messages per second in every room posted in the sandbox with their send time in the text; latency = arrival at the client − send time.

## Results

${resultsTable(results.cells)}

Columns: *upstream calls/req* is counted over the first requests one at a time, on an idle system (under load the
calls in a window also include requests still in flight at its ends: results.json has those ratios); *CPU µs/req* is CPU
time of the system's process (gateway or REST server) per answered request, *upstream CPU µs/req* the sandbox's;
*CPU 0 busy / CPU 1 busy* is how busy each CPU of the machine was, whoever used it, with the share of the system's process
(CPU 0) and of sandbox + load generator (CPU 1) in brackets; 100% = one core.

## Targets

${targetsTable(results.targets)}

${missed.length > 0 ? `Missed: ${missed.map((t) => t.name).join('; ')}. What bounded each cell (below) and the profiles explain why.` : 'Every target with a goal was met.'}

## (d) Subscriptions

${results.subscriptions ? subscriptionsTable(results.subscriptions) : 'Not run.'}
${results.subscriptions && results.subscriptions.heapGrowth.length > 0 ? `\nWhat the JS heap grew by, from heap snapshots of the gateway taken after the first tenth and after all subscriptions (self sizes; the rest of the RSS growth is native memory: socket buffers, zlib-free ws frames, V8 code):\n\n${heapGrowthTable(results.subscriptions)}\n` : ''}

## What bounded each cell

${readingNotes(results)
  .map((n) => `- ${n}`)
  .join('\n')}

## Profiles

${results.profiles.length > 0 ? results.profiles.map(profileBlock).join('\n\n') : 'Not taken in this mode.'}
${findings()}`;
}

/** bench/FINDINGS.md, written by hand from the runs: what explains the misses, what was changed. */
function findings(): string {
  const file = fileURLToPath(new URL('./FINDINGS.md', import.meta.url));
  if (!existsSync(file)) {
    return '';
  }
  return `\n${readFileSync(file, 'utf8')
    .replace(/^# .*\n/, '')
    .trim()}\n`;
}
