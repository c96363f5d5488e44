import {
  type BenchResults,
  type Cell,
  machineLine,
  profileBlock,
  resultsTable,
  subscriptionsTable,
  type Target,
  targetsTable,
} from './report.js';
import { WORKLOADS } from './workloads.js';

const RSS_TARGET_MB = 30;
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
    const exact = b2.every((c) => c.exactUpstreamCalls === 2);
    const underLoad = b2.map((c) => c.closed.median.upstreamCallsPerRequest);
    targets.push({
      name: '(b) upstream calls per conversation page',
      goal: 'exactly 2',
      measured: `${b2[0]?.exactUpstreamCalls} for one request; ${underLoad.map((v) => fmt(v, 2)).join(' / ')} per request under load (${b2.map((c) => `${c.latencyMs} ms`).join(' / ')})`,
      met: exact && underLoad.every((v) => Math.abs(v - 2) < 0.05),
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

/** Explanations computed from the numbers: what bounded each system. */
function readingNotes(results: BenchResults): string[] {
  const notes: string[] = [];
  for (const cell of results.cells) {
    const m = cell.closed.median;
    if (m.upstreamCorePercent >= 80 && m.systemCpuPercent < 80) {
      notes.push(
        `(${cell.workload}) ${cell.system} at ${cell.latencyMs} ms was bound by CPU 1 (sandbox + load ` +
          `generator at ${fmt(m.upstreamCorePercent)}%; the sandbox spent ${fmt(m.upstreamCpuUsPerRequest)} µs per ` +
          `request) while the system's own core was at ${fmt(m.systemCpuPercent)}%.`,
      );
    } else if (m.systemCpuPercent >= 80) {
      notes.push(
        `(${cell.workload}) ${cell.system} at ${cell.latencyMs} ms was bound by its own core ` +
          `(${fmt(m.systemCpuPercent)}%, ${fmt(m.cpuUsPerRequest)} µs per request).`,
      );
    } else {
      notes.push(
        `(${cell.workload}) ${cell.system} at ${cell.latencyMs} ms was bound by neither core ` +
          `(${fmt(m.systemCpuPercent)}% / ${fmt(m.upstreamCorePercent)}%): by waiting, i.e. upstream latency × ` +
          `sequential calls with ${results.settings.connections} connections, or by the upstream pool.`,
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
  - **S2 the gateway**, started like \`npm start\` with every setting at its default (upstream pool: \`UPSTREAM_CONNECTIONS\`, 32 sockets by default).
  S0 and S1 run in one REST server process (\`bench/procs/rest.ts\`, same pool size as the gateway) so the load drives all three over HTTP alike.
- **Pinning:** ${machine.pinning}.
- **Load:** closed loop with autocannon, ${settings.connections} connections, ${settings.warmupSeconds} s warm-up, then ${settings.runs} runs of ${settings.closedSeconds} s per cell
  (latency resolution 1 ms); then a **fixed-rate** open loop (\`bench/load.ts\`): requests are due at exact intervals and their latency counts from when they were due,
  so a stall shows in every request it delayed (no coordinated omission). The rate is ${fmt(settings.fixedRateShare * 100)}% of the slowest system's closed-loop throughput in that
  workload, the same for every system, ${settings.runs} runs of ${settings.fixedSeconds} s. (autocannon's own rate mode sends each connection's quota at the start of every second and
  corrects latencies with a 1 ms interval, so it is not used for this.)
- **Medians:** every number is the median of its ${settings.runs} runs (each metric on its own).
- **Measured inside the processes:** CPU time (\`process.cpuUsage\`) per answered request; event-loop delay (\`monitorEventLoopDelay\`, 10 ms resolution);
  upstream sockets sampled every 2 ms from the system's own pool; upstream calls from the sandbox's call counter.

Workloads:

${workloadList}
- (d) ${results.subscriptions ? fmt(results.subscriptions.subscriptions) : '1,000'} graphql-ws subscriptions \`chatEvents(roomId)\`, one per room membership, one socket per user, ${results.subscriptions?.perRoomPerSecond ?? 5}
  messages per second in every room posted in the sandbox with their send time in the text; latency = arrival at the client − send time.

## Results

${resultsTable(results.cells)}

Columns: *upstream calls/req* is counted for one request on an idle system (under load the counts match, see results.json);
*CPU µs/req* is the system's process (gateway or REST server), *upstream CPU µs/req* the sandbox's; *CPU system / upstream core* is the
busy share of the system's process and of CPU 1 (sandbox + load generator), 100% = one core.

## Targets

${targetsTable(results.targets)}

${missed.length > 0 ? `Missed: ${missed.map((t) => t.name).join('; ')}. What bounded each cell (below) and the profiles explain why.` : 'Every target with a goal was met.'}

## (d) Subscriptions

${results.subscriptions ? subscriptionsTable(results.subscriptions) : 'Not run.'}

## What bounded each cell

${readingNotes(results)
  .map((n) => `- ${n}`)
  .join('\n')}

## Profiles

${results.profiles.length > 0 ? results.profiles.map(profileBlock).join('\n\n') : 'Not taken in this mode.'}
`;
}
