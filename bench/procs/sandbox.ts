import { startSandbox } from '../../src/sandbox/server.js';
import { announceReady, serveCommands } from '../ipc.js';
import { type SandboxReady, STAMP_PREFIX, type TrafficRequest } from '../protocol.js';
import { FULL_SIZES, QUICK_SIZES, seedBench } from '../seed.js';
import { statsHandlers } from './stats.js';

/**
 * The upstream of the benchmark: the Misskey sandbox (demo data, no rate limits) seeded with the
 * benchmark data, on a free loopback port. The runner reads its call counter, sets its latency
 * and has it post room messages (workload d) over IPC.
 */
async function main(): Promise<void> {
  const sandbox = await startSandbox({
    port: 0,
    host: '127.0.0.1',
    seed: 'demo',
    rateLimits: false,
    latencyMs: 0,
  });
  const sizes = process.env.BENCH_SIZES === 'quick' ? QUICK_SIZES : FULL_SIZES;
  const data = await seedBench(sandbox, sizes);
  sandbox.resetCalls();

  serveCommands({
    ...statsHandlers(),
    setLatency: (ms: number) => {
      sandbox.latencyMs = ms;
      return null;
    },
    resetCalls: () => {
      sandbox.resetCalls();
      return null;
    },
    calls: () => {
      const byEndpoint: Record<string, number> = {};
      for (const call of sandbox.calls) {
        byEndpoint[call.endpoint] = (byEndpoint[call.endpoint] ?? 0) + 1;
      }
      return { total: sandbox.calls.length, byEndpoint };
    },
    streaming: () => ({
      sockets: sandbox.streaming.socketCount(),
      channels: sandbox.streaming.channelCount(),
    }),
    traffic: (request: TrafficRequest) => traffic(request),
  });

  /** Posts `perRoomPerSecond` messages per room for `durationMs`, rooms evenly staggered. */
  async function traffic(
    request: TrafficRequest,
  ): Promise<{ sent: number; failed: number; byRoom: Record<string, number> }> {
    const interval = 1000 / request.perRoomPerSecond;
    const started = performance.now();
    const turns = new Map<string, number>();
    const byRoom: Record<string, number> = {};
    let sent = 0;
    let failed = 0;
    const due = request.rooms.map((_room, i) => started + (i * interval) / request.rooms.length);
    const pending = new Set<Promise<void>>();
    while (performance.now() - started < request.durationMs) {
      const now = performance.now();
      for (let i = 0; i < request.rooms.length; i++) {
        const room = request.rooms[i];
        if (!room || (due[i] ?? 0) > now) {
          continue;
        }
        due[i] = (due[i] ?? 0) + interval;
        const turn = turns.get(room.id) ?? 0;
        turns.set(room.id, turn + 1);
        const token = room.tokens[turn % room.tokens.length] as string;
        const stamp = performance.timeOrigin + performance.now();
        const post = sandbox
          .call(
            'chat/messages/create-to-room',
            { toRoomId: room.id, text: `${STAMP_PREFIX}${stamp}` },
            token,
          )
          .then(
            () => {
              sent++;
              byRoom[room.id] = (byRoom[room.id] ?? 0) + 1;
            },
            () => {
              failed++;
            },
          );
        pending.add(post);
        post.finally(() => pending.delete(post));
      }
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    await Promise.all(pending);
    return { sent, failed, byRoom };
  }

  announceReady({ origin: sandbox.origin, data } satisfies SandboxReady);
  const stop = () => {
    sandbox.close().finally(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

main().catch((error: unknown) => {
  console.error('bench sandbox:', error);
  process.exit(1);
});
