import { monitorEventLoopDelay } from 'node:perf_hooks';
import { type Client, createClient } from 'graphql-ws';
import WebSocket from 'ws';
import type { BenchProcess } from './ipc.js';
import { percentile } from './load.js';
import {
  ELD_RESOLUTION_MS,
  type HeapSummary,
  loopDelayMs,
  type ProfileEntry,
  type WindowStats,
} from './procs/stats.js';
import { STAMP_PREFIX, type TrafficRequest } from './protocol.js';
import type { BenchData, SeededUser } from './seed.js';

/** What workload (d) measured. Latencies in ms, memory in MB. */
export interface SubscriptionResult {
  subscriptions: number;
  sockets: number;
  rooms: number;
  distinctTokens: number;
  perRoomPerSecond: number;
  trafficSeconds: number;
  sent: number;
  expected: number;
  delivered: number;
  errors: number;
  p50: number;
  p99: number;
  max: number;
  rssBeforeMB: number;
  /** After the first tenth of the users subscribed (the baseline of the growth). */
  rssWarmMB: number;
  rssSubscribedMB: number;
  rssAfterTrafficMB: number;
  /** JS heap used at the same four readings (after garbage collection). */
  heapMB: number[];
  rssPerThousandMB: number;
  /** The JS heap's share of that growth (the rest is native: sockets, buffers, code). */
  heapPerThousandMB: number;
  /** The kinds of heap objects that grew most, per 1,000 subscriptions (from heap snapshots). */
  heapGrowth: { kind: string; countPerThousand: number; kbPerThousand: number }[];
  /** Top functions of the gateway by self time during a further stretch of the traffic. */
  profile: ProfileEntry[];
  upstreamSockets: number;
  upstreamChannels: number;
  upstreamRestCalls: number;
  subscribeSeconds: number;
  cpuUsPerEvent: number;
  gatewayCpuPercent: number;
  eldP50Ms: number;
  eldP99Ms: number;
  /** The sandbox (which posts and fans out the messages) during the traffic. */
  sandboxCpuPercent: number;
  sandboxEldP99Ms: number;
  /** The load generator's event loop, where the subscribers receive the events. */
  clientEldP99Ms: number;
}

export const ROOM_EVENTS = /* GraphQL */ `subscription RoomEvents($roomId: ID!) {
  chatEvents(roomId: $roomId) {
    __typename
    ... on ChatMessageCreatedEvent { message { id text createdAt fromUser { id username name } } }
  }
}`;

interface Memory {
  rssBytes: number;
  heapUsedBytes: number;
}

interface CreatedEvent {
  chatEvents?: { __typename: string; message?: { text: string | null } };
}

/**
 * Workload (d): every room member subscribes to `chatEvents(roomId)` of each of their rooms,
 * one graphql-ws socket per user; once the sandbox shows every room channel open upstream, the
 * sandbox posts `perRoomPerSecond` messages per room, each stamped with its send time, and every
 * delivery's latency is its arrival time minus that stamp (both processes read the same clock).
 */
export async function runSubscriptions(options: {
  gatewayUrl: string;
  gateway: BenchProcess;
  sandbox: BenchProcess;
  data: BenchData;
  perRoomPerSecond: number;
  trafficSeconds: number;
  /**
   * Instead of measuring memory and delivery: compare heap snapshots (by kind of object) taken
   * after the first tenth and after all subscriptions, then stop (snapshots inflate the RSS, so
   * this runs on a gateway of its own).
   */
  heapSummary?: boolean;
  /** Profile the gateway over this many more seconds of traffic (0: none). */
  profileSeconds?: number;
  /** At most this many sockets connect at once while subscribing. */
  connectConcurrency?: number;
  log: (line: string) => void;
}): Promise<SubscriptionResult> {
  const { data, gateway, sandbox } = options;
  const roomsOf = new Map<string, { user: SeededUser; rooms: string[] }>();
  for (const room of data.rooms) {
    for (const member of room.members) {
      const entry = roomsOf.get(member.token) ?? { user: member, rooms: [] };
      entry.rooms.push(room.id);
      roomsOf.set(member.token, entry);
    }
  }
  const subscriptions = data.rooms.reduce((sum, room) => sum + room.members.length, 0);
  const members = new Map(data.rooms.map((room) => [room.id, room.members.length]));

  await sandbox.request('resetCalls');
  const latencies: number[] = [];
  let errors = 0;
  let delivered = 0;
  let measuring = false;
  const clients: Client[] = [];
  const disposers: (() => void)[] = [];
  const concurrency = options.connectConcurrency ?? 50;

  /** Connects one socket per user and subscribes to each of their rooms. */
  async function subscribe(users: { user: SeededUser; rooms: string[] }[]): Promise<void> {
    for (let i = 0; i < users.length; i += concurrency) {
      await Promise.all(users.slice(i, i + concurrency).map(connect));
    }
  }

  async function connect({ user, rooms }: { user: SeededUser; rooms: string[] }): Promise<void> {
    const client = createClient({
      url: options.gatewayUrl.replace(/^http/, 'ws'),
      webSocketImpl: WebSocket,
      connectionParams: { authorization: `Bearer ${user.token}` },
      retryAttempts: 0,
      lazy: false,
      keepAlive: 0,
    });
    clients.push(client);
    await new Promise<void>((resolve, reject) => {
      disposers.push(
        client.on('connected', () => resolve()),
        client.on('error', (error) => reject(error)),
        client.on('closed', (event) =>
          reject(new Error(`socket closed before connecting: ${JSON.stringify(event)}`)),
        ),
      );
    });
    for (const roomId of rooms) {
      disposers.push(
        client.subscribe<CreatedEvent>(
          { query: ROOM_EVENTS, variables: { roomId } },
          {
            next: (result) => {
              const arrived = performance.timeOrigin + performance.now();
              if (result.errors) {
                errors++;
                return;
              }
              const text = result.data?.chatEvents?.message?.text ?? '';
              if (!measuring || !text.startsWith(STAMP_PREFIX)) {
                return;
              }
              delivered++;
              latencies.push(arrived - Number(text.slice(STAMP_PREFIX.length)));
            },
            error: () => {
              errors++;
            },
            complete: () => undefined,
          },
        ),
      );
    }
  }

  /** Subscribing is asynchronous upstream: waits until the sandbox has `channels` open. */
  async function upstreamChannels(
    channels: number,
  ): Promise<{ sockets: number; channels: number }> {
    const deadline = Date.now() + 60_000;
    let streaming = await sandbox.request<{ sockets: number; channels: number }>('streaming');
    while (streaming.channels < channels && Date.now() < deadline && errors === 0) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      streaming = await sandbox.request('streaming');
    }
    if (streaming.channels < channels) {
      options.log(
        `  (d) only ${streaming.channels} of ${channels} upstream channels opened (${errors} errors)`,
      );
    }
    return streaming;
  }

  // A first tenth of the users warms the code paths up; the memory growth per subscription is
  // measured over the other nine tenths, between two garbage-collected readings.
  const entries = [...roomsOf.values()];
  const warm = entries.slice(0, Math.max(1, Math.floor(entries.length / 10)));
  const rest = entries.slice(warm.length);
  const count = (list: typeof entries) => list.reduce((sum, e) => sum + e.rooms.length, 0);
  const rssBefore = await gateway.request<Memory>('gc');
  const subscribeStarted = performance.now();
  await subscribe(warm);
  await upstreamChannels(count(warm));
  const rssWarm = await gateway.request<Memory>('gc');
  const heapWarm = options.heapSummary
    ? await gateway.request<HeapSummary>('heapSummary', 400)
    : null;
  await subscribe(rest);
  const streaming = await upstreamChannels(subscriptions);
  const subscribeSeconds = (performance.now() - subscribeStarted) / 1000;
  const calls = await sandbox.request<{ total: number }>('calls');
  const rssSubscribed = await gateway.request<Memory>('gc');
  const heapSubscribed = heapWarm ? await gateway.request<HeapSummary>('heapSummary', 400) : null;
  const skipTraffic = options.heapSummary === true;
  options.log(
    `  (d) ${subscriptions} subscriptions on ${clients.length} sockets in ${subscribeSeconds.toFixed(1)} s; ` +
      `upstream ${streaming.sockets} sockets, ${streaming.channels} channels`,
  );

  // Traffic.
  measuring = true;
  await Promise.all([gateway.request('mark'), sandbox.request('mark')]);
  const runnerDelay = monitorEventLoopDelay({ resolution: ELD_RESOLUTION_MS });
  runnerDelay.enable();
  const request: TrafficRequest = {
    rooms: data.rooms.map((room) => ({ id: room.id, tokens: room.members.map((m) => m.token) })),
    perRoomPerSecond: options.perRoomPerSecond,
    durationMs: skipTraffic ? 0 : options.trafficSeconds * 1000,
  };
  const traffic = await sandbox.request<{
    sent: number;
    failed: number;
    byRoom: Record<string, number>;
  }>('traffic', request);
  // Each message reaches every member of its room (the sender included).
  const expected = Object.entries(traffic.byRoom).reduce(
    (sum, [roomId, count]) => sum + count * (members.get(roomId) ?? 0),
    0,
  );
  // Let the last events arrive.
  const settle = Date.now() + 5_000;
  while (delivered < expected && Date.now() < settle) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const stats = await gateway.request<WindowStats>('stats');
  const upstreamStats = await sandbox.request<WindowStats>('stats');
  runnerDelay.disable();
  measuring = false;
  const rssAfterTraffic = await gateway.request<Memory>('gc');

  // A CPU profile of the gateway over a further stretch of the same traffic (not measured).
  let profile: ProfileEntry[] = [];
  if (options.profileSeconds && options.profileSeconds > 0 && !skipTraffic) {
    await gateway.request('profileStart');
    await sandbox.request('traffic', { ...request, durationMs: options.profileSeconds * 1000 });
    profile = await gateway.request<ProfileEntry[]>('profileStop', 12);
  }

  for (const dispose of disposers) {
    dispose();
  }
  await Promise.all(clients.map((client) => client.dispose()));

  latencies.sort((a, b) => a - b);
  const mb = (bytes: number) => bytes / 1024 / 1024;
  const perThousand = (bytes: number) =>
    rest.length > 0 ? (mb(bytes) / count(rest)) * 1000 : Number.NaN;
  return {
    subscriptions,
    sockets: clients.length,
    rooms: data.rooms.length,
    distinctTokens: roomsOf.size,
    perRoomPerSecond: options.perRoomPerSecond,
    trafficSeconds: options.trafficSeconds,
    sent: traffic.sent,
    expected,
    delivered,
    errors: errors + traffic.failed,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    max: latencies.at(-1) ?? Number.NaN,
    rssBeforeMB: mb(rssBefore.rssBytes),
    rssSubscribedMB: mb(rssSubscribed.rssBytes),
    rssAfterTrafficMB: mb(rssAfterTraffic.rssBytes),
    heapMB: [rssBefore, rssWarm, rssSubscribed, rssAfterTraffic].map((m) => mb(m.heapUsedBytes)),
    rssWarmMB: mb(rssWarm.rssBytes),
    rssPerThousandMB: perThousand(rssSubscribed.rssBytes - rssWarm.rssBytes),
    heapPerThousandMB: perThousand(rssSubscribed.heapUsedBytes - rssWarm.heapUsedBytes),
    profile,
    heapGrowth:
      heapWarm && heapSubscribed
        ? Object.entries(heapSubscribed)
            .map(([kind, after]) => ({
              kind,
              countPerThousand: ((after.count - (heapWarm[kind]?.count ?? 0)) / count(rest)) * 1000,
              kbPerThousand:
                ((after.bytes - (heapWarm[kind]?.bytes ?? 0)) / 1024 / count(rest)) * 1000,
            }))
            .sort((a, b) => b.kbPerThousand - a.kbPerThousand)
            .slice(0, 12)
        : [],
    upstreamSockets: streaming.sockets,
    upstreamChannels: streaming.channels,
    upstreamRestCalls: calls.total,
    subscribeSeconds,
    cpuUsPerEvent: delivered > 0 ? stats.cpuUs / delivered : Number.NaN,
    gatewayCpuPercent: (stats.cpuUs / 1000 / stats.wallMs) * 100,
    eldP50Ms: stats.eldP50Ms,
    eldP99Ms: stats.eldP99Ms,
    sandboxCpuPercent: (upstreamStats.cpuUs / 1000 / upstreamStats.wallMs) * 100,
    sandboxEldP99Ms: upstreamStats.eldP99Ms,
    clientEldP99Ms: loopDelayMs(runnerDelay.percentile(99)),
  };
}
