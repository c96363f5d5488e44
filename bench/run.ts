import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual, parseArgs } from 'node:util';
import { ArtifactProcess, profileWindow } from './artifact.js';
import { busyPercent, cpuTimes } from './cpu.js';
import { BenchProcess, pin } from './ipc.js';
import { closedLoop, fixedRate, type HttpRequest, type LoadResult } from './load.js';
import { type ProfileEntry, topFunctions, type WindowStats } from './procs/stats.js';
import type { SandboxReady, ServerReady } from './protocol.js';
import { type BenchResults, type Cell, type Machine, type RunRecord, summarize } from './report.js';
import { renderMarkdown, targetsOf } from './results-md.js';
import { runSubscriptions } from './subscriptions.js';
import { httpRequestFor, type SystemId, WORKLOADS, type Workload } from './workloads.js';

/**
 * `npm run bench [-- --quick] [-- --out DIR] [-- --artifact DIR]`: builds `dist/`, then starts the
 * sandbox (upstream), the gateway as users run it (S2: `node dist/main.js`), the REST clients'
 * server (S0, S1) and the engine floor (S4) as separate processes, pinned where taskset allows
 * (systems on CPU 0, sandbox and load generator on CPU 1), runs every workload against every
 * system at each upstream latency, then writes RESULTS.md and results.json. Everything is on
 * loopback, every loop is bounded, and the children are stopped on exit, error or signal.
 */
const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    out: { type: 'string' },
    'no-subscriptions': { type: 'boolean', default: false },
    /** Trace the gateway (OTEL_EXPORTER_OTLP_ENDPOINT at a loopback sink): its cost, compared
     *  with a run without it, where nothing of tracing is installed. */
    otlp: { type: 'boolean', default: false },
    /** Run S2 from another built tree (its `dist/` and `node_modules/`), e.g. an earlier commit,
     *  instead of building this one. */
    artifact: { type: 'string' },
    /** Only write RESULTS.md again from results.json (after editing FINDINGS.md). */
    render: { type: 'boolean', default: false },
    /** Narrow a run down while investigating (the committed results use none of these). */
    workloads: { type: 'string' },
    systems: { type: 'string' },
    latencies: { type: 'string' },
    runs: { type: 'string' },
    connections: { type: 'string' },
  },
});
const quick = args.quick ?? false;
const here = dirname(fileURLToPath(import.meta.url));
const outDir = args.out ?? (quick ? join(os.tmpdir(), 'misskey-graphql-bench-quick') : here);

const settings = quick
  ? {
      runs: 1,
      closedSeconds: 0.5,
      fixedSeconds: 0.5,
      warmupSeconds: 0,
      connections: 8,
      fixedRateShare: 0.5,
      latencies: [0],
      trafficSeconds: 1,
      profileSeconds: 0,
      deadlineMs: 120_000,
    }
  : {
      runs: 5,
      closedSeconds: 3,
      fixedSeconds: 3,
      warmupSeconds: 1,
      connections: 32,
      fixedRateShare: 0.5,
      latencies: [0, 5],
      trafficSeconds: 10,
      profileSeconds: 2,
      deadlineMs: 16 * 60_000,
    };
if (args.latencies) {
  settings.latencies = args.latencies.split(',').map(Number);
}
if (args.runs) {
  settings.runs = Number(args.runs);
}
if (args.connections) {
  settings.connections = Number(args.connections);
}
const onlyWorkloads = args.workloads?.split(',');
const onlySystems = args.systems?.split(',');
/** With 1,000 rooms of 10 members: 500 messages/s, 5,000 events/s delivered. */
const PER_ROOM_PER_SECOND = 0.5;
/** Requests per workload and system checked one at a time before the load. */
const EXACT_SAMPLE = 5;
const FIXED_RATE_MAX_CONNECTIONS = 128;
/** The gateway runs with every setting at its default, in production mode like the Docker
 *  image (graphql-js skips its development checks). Its access log goes to /dev/null. */
/** Production defaults, except the per-address connection cap: every load generator and
 *  subscriber of the benchmark connects from loopback (thousands of sockets in (d)). */
const GATEWAY_ENV: Record<string, string> = { NODE_ENV: 'production', MAX_CONNECTIONS_PER_IP: '0' };

const started = performance.now();
const children: { stop(): Promise<void> }[] = [];
const repositoryRoot = join(here, '..');
const log = (line: string) => console.log(line);

async function stopChildren(): Promise<void> {
  await Promise.all(children.map((child) => child.stop()));
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    log(`${signal}: stopping`);
    stopChildren().finally(() => process.exit(130));
  });
}
const deadline = setTimeout(() => {
  console.error(`bench: still running after ${settings.deadlineMs / 1000} s, giving up`);
  stopChildren().finally(() => process.exit(1));
}, settings.deadlineMs);
deadline.unref();

async function main(): Promise<void> {
  const loadBefore = os.loadavg()[0] ?? Number.NaN;
  const cores = os.cpus().length;
  const canPin = cores >= 2 && hasTaskset();
  const pinning = canPin
    ? 'pinned with taskset: gateway and REST server on CPU 0, sandbox and load generator on CPU 1'
    : cores < 2
      ? 'not pinned (one CPU)'
      : 'not pinned (taskset not found)';
  if (canPin) {
    pin(process.pid, 1);
  }

  log(`bench (${quick ? 'quick' : 'full'}): starting the sandbox and seeding`);
  const sandbox = new BenchProcess<SandboxReady>('sandbox', 'sandbox', {
    BENCH_SIZES: quick ? 'quick' : 'full',
  });
  children.push(sandbox);
  if (canPin) {
    pin(sandbox.pid, 1);
  }
  /** Calls the sandbox has answered since its counter was last reset. */
  const upstreamCalls = async () => (await sandbox.request<{ total: number }>('calls')).total;
  const { origin: upstream, data } = await withTimeout(sandbox.ready, 120_000, 'sandbox start');
  log(
    `  ${data.users.length} users, ${data.conversations.length} conversations × ${data.sizes.messagesPerConversation} messages, ` +
      `${data.rooms.length} rooms × ${data.sizes.membersPerRoom} members, seeded in ${data.seedMs} ms`,
  );

  const otlp = args.otlp ? await startOtlpSink() : null;
  if (otlp) {
    log(`  tracing on: spans exported to ${otlp.url}`);
  }
  const env = {
    MISSKEY_URL: upstream,
    ...GATEWAY_ENV,
    ...(otlp ? { OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url } : {}),
  };
  const artifactRoot = args.artifact ?? buildArtifact();
  const gateway = await ArtifactProcess.start('gateway', artifactRoot, env);
  const rest = new BenchProcess<ServerReady>('rest', 'rest', env);
  const floor = new BenchProcess<ServerReady>('floor', 'floor', env);
  children.push(gateway, rest, floor);
  if (canPin) {
    for (const proc of [gateway, rest, floor]) {
      pin(proc.pid, 0);
    }
  }
  const [gatewayReady, restReady, floorReady] = await withTimeout(
    Promise.all([gateway.ready, rest.ready, floor.ready]),
    60_000,
    'gateway, REST server and engine floor start',
  );
  const targetOf = (system: SystemId): { proc: Measured; origin: string } =>
    system === 'S2'
      ? { proc: gateway, origin: gatewayReady.origin }
      : system === 'S4'
        ? { proc: floor, origin: floorReady.origin }
        : { proc: rest, origin: restReady.origin };
  const idleRssMB = await idleRss(gateway, data.users[0]?.token ?? '');
  log(`  gateway (node dist/main.js) idle: ${idleRssMB.toFixed(1)} MB RSS after one \`me\``);

  const machine: Machine = {
    cores,
    cpuModel: os.cpus()[0]?.model.trim() ?? 'unknown',
    memoryGiB: Math.round(os.totalmem() / 1024 ** 3),
    node: process.version,
    os: `${os.type()} ${os.release()}`,
    commit: commitOf(),
    pinning,
    date: new Date().toISOString(),
    loadAverage: { before: loadBefore, after: Number.NaN },
  };

  // The first requests of each workload, one at a time on each system: the same data from
  // every system, and the exact number of upstream calls per request.
  const exactCalls = new Map<string, number>();
  const warmCalls = new Map<string, number>();
  for (const workload of workloads()) {
    const sample = workload.requests(data).slice(0, EXACT_SAMPLE);
    if (sample.length === 0) {
      throw new Error(`workload ${workload.id} has no request`);
    }
    const reference: unknown[] = [];
    for (const system of systemsOf(workload)) {
      // Cold (the first time these requests are seen), then warm (the same requests again).
      for (const calls of [exactCalls, warmCalls]) {
        await sandbox.request('resetCalls');
        for (const [i, request] of sample.entries()) {
          const origin = targetOf(system).origin;
          const body = await send(origin, httpRequestFor(workload, system, request));
          if (reference[i] === undefined) {
            reference[i] = body;
          } else if (!isDeepStrictEqual(body, reference[i])) {
            throw new Error(
              `workload ${workload.id}: ${system} answered differently:\n${JSON.stringify(body).slice(0, 500)}\nvs\n${JSON.stringify(reference[i]).slice(0, 500)}`,
            );
          }
        }
        calls.set(`${workload.id}/${system}`, (await upstreamCalls()) / sample.length);
      }
    }
    log(
      `  (${workload.id}) same data from ${systemsOf(workload).join(', ')}; upstream calls ${systemsOf(
        workload,
      )
        .map(
          (s) =>
            `${s} ${exactCalls.get(`${workload.id}/${s}`)} cold, ${warmCalls.get(`${workload.id}/${s}`)} warm`,
        )
        .join(', ')}`,
    );
  }

  /** Runs one load against a system with the measurement window of every process around it. */
  async function measure<L extends LoadResult>(
    target: Measured,
    run: () => Promise<L>,
  ): Promise<RunRecord<L>> {
    await Promise.all([
      sandbox.request('resetCalls'),
      sandbox.request('mark'),
      target.request('mark'),
    ]);
    const cpu = process.cpuUsage();
    const machineBefore = cpuTimes();
    const t0 = performance.now();
    const load = await run();
    const wallMs = performance.now() - t0;
    const runner = process.cpuUsage(cpu);
    const machineBusy = busyPercent(machineBefore, cpuTimes());
    const [system, upstreamStats, calls] = await Promise.all([
      target.request<WindowStats>('stats'),
      sandbox.request<WindowStats>('stats'),
      upstreamCalls(),
    ]);
    const ok = Math.max(1, load.ok);
    return {
      load,
      upstreamCallsPerRequest: calls / Math.max(1, load.ok + load.failed),
      cpuUsPerRequest: system.cpuUs / ok,
      upstreamCpuUsPerRequest: upstreamStats.cpuUs / ok,
      systemCpuPercent: system.cpuUs / 10 / system.wallMs,
      upstreamCorePercent: (upstreamStats.cpuUs + runner.user + runner.system) / 10 / wallMs,
      machineBusyPercent: machineBusy,
      system,
      upstream: upstreamStats,
    };
  }

  /** Resolves once the upstream has received no call for 200 ms (at most 30 s). */
  async function upstreamQuiet(): Promise<void> {
    let last = -1;
    for (const deadline = Date.now() + 30_000; Date.now() < deadline; ) {
      const total = await upstreamCalls();
      if (total === last) {
        return;
      }
      last = total;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }

  const cells: Cell[] = [];
  for (const latencyMs of settings.latencies) {
    await sandbox.request('setLatency', latencyMs);
    for (const workload of workloads()) {
      const requests = workload.requests(data);
      const byRequest = (system: SystemId): HttpRequest[] =>
        requests.map((request) => httpRequestFor(workload, system, request));
      const systems = systemsOf(workload);
      const closedLoopOf = (system: SystemId, durationSec: number) => () =>
        closedLoop({
          origin: targetOf(system).origin,
          requests: byRequest(system),
          connections: settings.connections,
          durationSec,
        });
      for (const system of systems) {
        await closedLoopOf(system, settings.warmupSeconds)();
        await upstreamQuiet();
      }
      // The systems take turns run by run (each round in another order): the machine's state
      // drifts over minutes, and runs of one system back to back would carry that drift into
      // the comparison of the systems.
      const closedRuns = await inTurns(
        systems,
        settings.runs,
        (system) => measure(targetOf(system).proc, closedLoopOf(system, settings.closedSeconds)),
        upstreamQuiet,
      );
      const group: Cell[] = systems.map((system) => {
        const runs = closedRuns.get(system) ?? [];
        const cell: Cell = {
          workload: workload.id,
          system,
          latencyMs,
          exactUpstreamCalls: exactCalls.get(`${workload.id}/${system}`) ?? Number.NaN,
          warmUpstreamCalls: warmCalls.get(`${workload.id}/${system}`) ?? Number.NaN,
          closed: { connections: settings.connections, runs, median: summarize(runs) },
          fixed: null,
        };
        const m = cell.closed.median;
        log(
          `  (${workload.id}) ${system} ${latencyMs} ms closed: ${Math.round(m.rps)} req/s, p99 ${m.p99} ms, ` +
            `${m.upstreamCallsPerRequest.toFixed(1)} calls/req, CPU ${Math.round(m.cpuUsPerRequest)} µs/req ` +
            `(${Math.round(m.systemCpuPercent)}% / upstream core ${Math.round(m.upstreamCorePercent)}%)`,
        );
        return cell;
      });

      // The same fixed rate for every system of the workload: a share of the slowest one's
      // closed-loop throughput, so every system can keep up and latencies compare at equal load.
      const slowest = Math.min(...group.map((c) => c.closed.median.rps));
      const rate = roundRate(slowest * settings.fixedRateShare);
      const fixedRuns = await inTurns(
        systems,
        settings.runs,
        (system) =>
          measure(targetOf(system).proc, () =>
            fixedRate({
              origin: targetOf(system).origin,
              requests: byRequest(system),
              rps: rate,
              durationSec: settings.fixedSeconds,
              maxConnections: FIXED_RATE_MAX_CONNECTIONS,
            }),
          ),
        upstreamQuiet,
      );
      for (const cell of group) {
        const runs = fixedRuns.get(cell.system) ?? [];
        cell.fixed = { runs, median: { ...summarize(runs), targetRps: rate } };
        const f = cell.fixed.median;
        log(
          `  (${cell.workload}) ${cell.system} ${latencyMs} ms fixed ${rate} req/s: p50 ${f.p50.toFixed(2)} ms, ` +
            `p99 ${f.p99.toFixed(2)} ms, CPU ${Math.round(f.cpuUsPerRequest)} µs/req`,
        );
      }
      cells.push(...group);
    }
  }

  // CPU profiles of the gateway per workload (and of the sandbox during b) at 0 ms latency.
  const profiles: BenchResults['profiles'] = [];
  if (settings.profileSeconds > 0) {
    await sandbox.request('setLatency', 0);
    for (const workload of workloads()) {
      const list = workload.requests(data).map((r) => httpRequestFor(workload, 'S2', r));
      const withSandbox = workload.id === 'b';
      if (withSandbox) {
        await sandbox.request('profileStart');
      }
      profiles.push({
        title: `Gateway (S2, node dist/main.js --cpu-prof), workload (${workload.id}), 0 ms, closed loop: top functions by self time`,
        entries: await profileArtifact(artifactRoot, env, list, canPin),
      });
      if (withSandbox) {
        profiles.push({
          title: `Sandbox (upstream) during (${workload.id}) S2, 0 ms: top functions by self time`,
          entries: await sandbox.request<ProfileEntry[]>('profileStop', 8),
        });
      }
    }
  }

  // (d) on a fresh gateway process, so its memory readings start from a clean heap.
  await Promise.all([gateway.stop(), rest.stop(), floor.stop()]);
  let subscriptions: BenchResults['subscriptions'] = null;
  if (!args['no-subscriptions']) {
    log(
      `  (d) subscribing (${data.rooms.length} rooms, ${PER_ROOM_PER_SECOND} messages/s per room)`,
    );
    await sandbox.request('setLatency', 0);
    const dEnv = { ...env, BENCH_ARTIFACT_ROOT: artifactRoot };
    const fresh = new BenchProcess<ServerReady>('gateway (d)', 'gateway', dEnv, {
      quietStdout: true,
    });
    children.push(fresh);
    if (canPin) {
      pin(fresh.pid, 0);
    }
    try {
      const ready = await withTimeout(fresh.ready, 60_000, 'gateway start');
      subscriptions = await runSubscriptions({
        gatewayUrl: `${ready.origin}/graphql`,
        gateway: fresh,
        sandbox,
        data,
        perRoomPerSecond: PER_ROOM_PER_SECOND,
        trafficSeconds: settings.trafficSeconds,
        profileSeconds: settings.profileSeconds,
        log,
      });
      if (subscriptions.profile.length > 0) {
        profiles.push({
          title: `Gateway (S2) during (d): ${PER_ROOM_PER_SECOND} messages/s in each of ${data.rooms.length} rooms, ${subscriptions.subscriptions} subscriptions: top functions by self time`,
          entries: subscriptions.profile,
        });
      }
      log(
        `  (d) delivered ${subscriptions.delivered}/${subscriptions.expected}, p50 ${subscriptions.p50.toFixed(1)} ms, ` +
          `p99 ${subscriptions.p99.toFixed(1)} ms, RSS ${subscriptions.rssPerThousandMB.toFixed(1)} MB per 1,000 more`,
      );
      if (!quick) {
        // What the JS heap grew by, from heap snapshots on another fresh gateway.
        await fresh.stop();
        const heapGateway = new BenchProcess<ServerReady>('gateway (d heap)', 'gateway', dEnv, {
          quietStdout: true,
        });
        children.push(heapGateway);
        if (canPin) {
          pin(heapGateway.pid, 0);
        }
        const heapReady = await withTimeout(heapGateway.ready, 60_000, 'gateway start');
        const heap = await runSubscriptions({
          gatewayUrl: `${heapReady.origin}/graphql`,
          gateway: heapGateway,
          sandbox,
          data,
          perRoomPerSecond: PER_ROOM_PER_SECOND,
          trafficSeconds: 0,
          heapSummary: true,
          log,
        });
        subscriptions.heapGrowth = heap.heapGrowth;
        await heapGateway.stop();
      }
    } catch (error) {
      log(`  (d) failed: ${error instanceof Error ? error.message : String(error)}`);
    }
  }

  const results: BenchResults = {
    mode: quick ? 'quick' : 'full',
    machine,
    sizes: data.sizes,
    seedMs: data.seedMs,
    settings: {
      runs: settings.runs,
      closedSeconds: settings.closedSeconds,
      fixedSeconds: settings.fixedSeconds,
      warmupSeconds: settings.warmupSeconds,
      connections: settings.connections,
      fixedRateShare: settings.fixedRateShare,
      gatewayEnv: GATEWAY_ENV,
      artifact: args.artifact ?? 'dist/ built from this commit',
    },
    cells,
    memory: { idleRssMB },
    subscriptions,
    profiles,
    targets: [],
    totalSeconds: 0,
  };
  results.targets = targetsOf(results);
  machine.loadAverage.after = os.loadavg()[0] ?? Number.NaN;
  results.totalSeconds = Math.round((performance.now() - started) / 1000);

  await stopChildren();
  if (otlp) {
    log(`  the OTLP sink received ${otlp.requests()} export requests`);
    otlp.server.close();
  }
  mkdirSync(outDir, { recursive: true });
  const markdown = renderMarkdown(results);
  const written = await import('./report.js').then((r) =>
    r.writeResults(outDir, results, markdown),
  );
  log('');
  log(markdown.slice(markdown.indexOf('## Results')));
  log(
    `wrote ${relative(process.cwd(), written.md)} and ${relative(process.cwd(), written.json)} in ${results.totalSeconds} s`,
  );
}

/** What `measure` needs of a system under test: the `mark` / `stats` window commands. */
interface Measured {
  request<T = unknown>(cmd: string, arg?: unknown): Promise<T>;
}

/** Builds this repository's `dist/` (what `node dist/main.js` runs) and answers its root. */
function buildArtifact(): string {
  log('  building dist/ (npm run build)');
  execFileSync('npm', ['run', '--silent', 'build'], { cwd: repositoryRoot, stdio: 'inherit' });
  return repositoryRoot;
}

/** RSS of the gateway at rest, in MB: after one `me` and a second of quiet. */
async function idleRss(gateway: ArtifactProcess, token: string): Promise<number> {
  await fetch(`${gateway.origin}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ query: '{ me { id } }' }),
  });
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  return gateway.rssBytes() / 1024 ** 2;
}

/**
 * The top functions of `node dist/main.js --cpu-prof` under a closed loop of `list`: a process
 * of its own, warmed up for a second first; only the samples of the measured stretch count.
 */
async function profileArtifact(
  root: string,
  env: Record<string, string>,
  list: HttpRequest[],
  canPin: boolean,
): Promise<ProfileEntry[]> {
  const dir = mkdtempSync(join(os.tmpdir(), 'misskey-graphql-cpuprof-'));
  const proc = await ArtifactProcess.start('gateway (profile)', root, env, [
    '--cpu-prof',
    `--cpu-prof-dir=${dir}`,
    '--cpu-prof-interval=200',
  ]);
  children.push(proc);
  try {
    if (canPin) {
      pin(proc.pid, 0);
    }
    await withTimeout(proc.ready, 60_000, 'gateway (profile) start');
    const load = { origin: proc.origin, requests: list, connections: settings.connections };
    await closedLoop({ ...load, durationSec: 1 });
    const from = Number(process.hrtime.bigint() / 1000n);
    await closedLoop({ ...load, durationSec: settings.profileSeconds });
    const to = Number(process.hrtime.bigint() / 1000n);
    await proc.stop();
    const file = readdirSync(dir).find((name) => name.endsWith('.cpuprofile'));
    if (!file) {
      throw new Error('node --cpu-prof wrote no profile');
    }
    return topFunctions(profileWindow(join(dir, file), from, to) as never, 12);
  } finally {
    await proc.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * `runs` rounds in which every system runs once, in an order that rotates from round to round;
 * the records of each system in round order. After each run `settle` waits for the upstream to be
 * quiet: a system's requests still in flight when its load stops (the naive client's fan-out of
 * hundreds of calls) must not land in the next system's window.
 */
async function inTurns<R>(
  systems: readonly SystemId[],
  runs: number,
  run: (system: SystemId) => Promise<R>,
  settle: () => Promise<void>,
): Promise<Map<SystemId, R[]>> {
  const records = new Map<SystemId, R[]>(systems.map((system) => [system, []]));
  for (let round = 0; round < runs; round++) {
    for (let k = 0; k < systems.length; k++) {
      const system = systems[(round + k) % systems.length] as SystemId;
      records.get(system)?.push(await run(system));
      await settle();
    }
  }
  return records;
}

function systemsOf(workload: Workload): SystemId[] {
  const systems: SystemId[] = [
    ...(['S0', 'S1'] as const).filter((s) => workload.rest[s] !== undefined),
    'S2',
    ...(workload.floor ? (['S4'] as const) : []),
  ];
  return systems.filter((s) => !onlySystems || onlySystems.includes(s));
}

function workloads(): Workload[] {
  return WORKLOADS.filter((w) => !onlyWorkloads || onlyWorkloads.includes(w.id));
}

/** One request outside the load (checks): the answer's `data`, or an error. */
async function send(origin: string, request: HttpRequest): Promise<unknown> {
  const res = await fetch(`${origin}${request.path}`, {
    method: 'POST',
    headers: request.headers,
    body: request.body,
  });
  const body = (await res.json()) as { data?: unknown; errors?: unknown };
  if (!res.ok || body.errors) {
    throw new Error(
      `${request.path} answered ${res.status}: ${JSON.stringify(body).slice(0, 500)}`,
    );
  }
  return body.data;
}

function roundRate(rate: number): number {
  if (!Number.isFinite(rate) || rate < 10) {
    return 5;
  }
  const magnitude = 10 ** (Math.floor(Math.log10(rate)) - 1);
  return Math.floor(rate / magnitude) * magnitude;
}

function hasTaskset(): boolean {
  try {
    execFileSync('taskset', ['-p', String(process.pid)], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function commitOf(): string {
  try {
    const sha = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], {
      encoding: 'utf8',
    }).trim();
    return dirty ? `${sha} (with uncommitted changes)` : sha;
  } catch {
    return 'unknown';
  }
}

/** A loopback OTLP/HTTP endpoint that accepts every export and keeps nothing. */
async function startOtlpSink(): Promise<{ server: Server; url: string; requests(): number }> {
  let requests = 0;
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      requests++;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { server, url: `http://127.0.0.1:${port}`, requests: () => requests };
}

async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took longer than ${ms / 1000} s`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function renderOnly(): Promise<void> {
  const { readFile } = await import('node:fs/promises');
  const results = JSON.parse(await readFile(join(outDir, 'results.json'), 'utf8')) as BenchResults;
  const { writeResults } = await import('./report.js');
  const written = await writeResults(outDir, results, renderMarkdown(results));
  log(`wrote ${relative(process.cwd(), written.md)} from ${relative(process.cwd(), written.json)}`);
}

(args.render ? renderOnly() : main())
  .then(() => process.exit(0))
  .catch(async (error: unknown) => {
    console.error('bench failed:', error instanceof Error ? (error.stack ?? error.message) : error);
    await stopChildren();
    process.exit(1);
  });
