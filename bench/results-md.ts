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

const RSS_TARGET_MB = 30;
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
  const a0 = cellOf(results, 'a', 'S0', 0);
  const a2 = cellOf(results, 'a', 'S2', 0);
  if (a0 && a2) {
    const share = a2.closed.median.rps / a0.closed.median.rps;
    targets.push({
      name: '(a) gateway throughput vs hand-written, 0 ms',
      goal: 'S2 ≥ 60% of S0 req/s',
      measured: `${fmt(share * 100)}% (${fmt(a2.closed.median.rps)} vs ${fmt(a0.closed.median.rps)} req/s)`,
      met: share >= 0.6,
    });
    if (a0.fixed && a2.fixed) {
      targets.push({
        name: '(a) p99 latency the gateway adds, 0 ms',
        goal: 'reported',
        measured:
          `${fmt(a2.fixed.median.p99 - a0.fixed.median.p99, 2)} ms at ${fmt(a2.fixed.median.targetRps)} req/s fixed rate ` +
          `(p99 ${fmt(a2.fixed.median.p99, 2)} vs ${fmt(a0.fixed.median.p99, 2)} ms); ` +
          `closed loop ${fmt(a2.closed.median.p99 - a0.closed.median.p99)} ms`,
        met: null,
      });
    }
  }
  const b2 = results.cells.filter((c) => c.workload === 'b' && c.system === 'S2');
  if (b2.length > 0) {
    const exact = b2.map((c) => c.exactUpstreamCalls);
    const underLoad = b2.map((c) => c.closed.median.upstreamCallsPerRequest);
    targets.push({
      name: '(b) upstream calls per conversation page',
      goal: 'exactly 2',
      measured:
        `${exact.map((v) => fmt(v, 2)).join(' / ')} per request, one at a time ` +
        `(${b2.map((c) => `${c.latencyMs} ms`).join(' / ')}); under load ` +
        `${underLoad.map((v) => fmt(v, 2)).join(' / ')} calls per answered request in a window ` +
        '(requests in flight at its ends included)',
      met: exact.every((v) => v === 2),
    });
  }
  const b1 = cellOf(results, 'b', 'S1', 5);
  const b25 = cellOf(results, 'b', 'S2', 5);
  if (b1 && b25) {
    const ratio = b25.closed.median.rps / b1.closed.median.rps;
    targets.push({
      name: '(b) gateway vs naive client, 5 ms',
      goal: 'S2 ≥ 10× S1 req/s',
      measured: `${fmt(ratio, 1)}× (${fmt(b25.closed.median.rps)} vs ${fmt(b1.closed.median.rps)} req/s)`,
      met: ratio >= 10,
    });
  }
  const c = results.cells.filter((cell) => cell.workload === 'c');
  if (c.length > 0) {
    const line = (system: string) => {
      const cells = c.filter((cell) => cell.system === system);
      if (cells.length === 0) {
        return null;
      }
      return `${system} ${cells[0]?.exactUpstreamCalls} calls, peak ${cells
        .map((cell) => fmt(cell.closed.median.peakUpstreamSockets ?? Number.NaN))
        .join(' / ')} sockets`;
    };
    targets.push({
      name: '(c) upstream calls per request and peak upstream sockets (0 / 5 ms)',
      goal: 'reported',
      measured: ['S0', 'S1', 'S2']
        .map(line)
        .filter((x) => x !== null)
        .join('; '),
      met: null,
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
  - **S2 the gateway**, started like \`npm start\` with every setting at its default (upstream pool: \`UPSTREAM_CONNECTIONS\`, 32 sockets; access log at \`info\`; metrics on) and \`NODE_ENV=production\` as in the Docker image.
  S0 and S1 run in one REST server process (\`bench/procs/rest.ts\`, same pool size as the gateway) so the load drives all three over HTTP alike.
- **Pinning:** ${machine.pinning}.
- **Load:** closed loop with autocannon, ${settings.connections} connections, ${settings.warmupSeconds} s warm-up, then ${settings.runs} runs of ${settings.closedSeconds} s per cell
  (latency resolution 1 ms); then a **fixed-rate** open loop (\`bench/load.ts\`): requests are due at exact intervals and their latency counts from when they were due,
  so a stall shows in every request it delayed (no coordinated omission). The rate is ${fmt(settings.fixedRateShare * 100)}% of the slowest system's closed-loop throughput in that
  workload, the same for every system, ${settings.runs} runs of ${settings.fixedSeconds} s. (autocannon's own rate mode sends each connection's quota at the start of every second and
  corrects latencies with a 1 ms interval, so it is not used for this.)
- **Medians:** every number is the median of its ${settings.runs} runs (each metric on its own).
- **Measured inside the processes:** CPU time (\`process.cpuUsage\`) per answered request; event-loop delay (\`monitorEventLoopDelay\` sampling every 10 ms, the interval subtracted);
  upstream sockets sampled every 10 ms from the system's own pool; upstream calls from the sandbox's call counter.

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
