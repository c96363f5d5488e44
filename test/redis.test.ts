import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createServer } from 'node:net';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createGateway, type Gateway, type GatewayOptions } from '../src/app/gateway.js';
import { ConfigError, loadConfig } from '../src/config.js';
import { createLogger } from '../src/observability/index.js';
import { DEMO_TOKENS } from '../src/sandbox/seed.js';
import { type Sandbox, startSandbox } from '../src/sandbox/server.js';
import { KEY_PREFIX } from '../src/state/redis.js';
import { until } from './support/until.js';

/**
 * Several replicas sharing one real Redis (Debian's `redis-server`, started here on a free port
 * and killed after the file): the anonymous response cache and the gateway rate limit are shared
 * across replicas, nothing fetched with a token reaches Redis, and a Redis that dies or hangs
 * never fails an operation (no cache, per-replica limits, one warning, reconnection by itself).
 */

const REDIS_SERVER = process.env.REDIS_SERVER ?? 'redis-server';
/** Without redis-server these skip with one line, except in CI (`CI=true`), where they must run
 *  (.ci/run installs Debian's redis-server). */
const skip = spawnSync(REDIS_SERVER, ['--version']).status !== 0 && process.env.CI !== 'true';
if (skip) {
  console.warn(
    `redis tests skipped: no ${REDIS_SERVER} (apt-get install redis-server, or set REDIS_SERVER)`,
  );
}

interface RedisProcess {
  readonly port: number;
  readonly url: string;
  readonly child: ChildProcess;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

const redisProcesses = new Set<ChildProcess>();

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** A throwaway redis-server: no persistence, loopback only; resolves once it accepts clients. */
async function startRedis(port?: number): Promise<RedisProcess> {
  const chosen = port ?? (await freePort());
  const child = spawn(
    REDIS_SERVER,
    [
      '--port',
      String(chosen),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
      '--loglevel',
      'warning',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  redisProcesses.add(child);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.once('exit', () => redisProcesses.delete(child));
  await new Promise<void>((resolve, reject) => {
    let output = '';
    const timer = setTimeout(
      () => reject(new Error(`redis-server did not start on ${chosen}: ${output}`)),
      5_000,
    );
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(
        new Error(
          `cannot run ${REDIS_SERVER} (${error.message}): apt-get install redis-server (.ci/run does)`,
        ),
      );
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`redis-server exited with ${code}: ${output}`));
    });
    // With --loglevel warning it prints nothing when all is well: poll until it answers.
    child.stdout?.on('data', (chunk) => {
      output += chunk;
    });
    child.stderr?.on('data', (chunk) => {
      output += chunk;
    });
    const probe = async () => {
      const client = new Redis({ port: chosen, lazyConnect: true, retryStrategy: () => null });
      client.on('error', () => undefined);
      try {
        await client.connect();
        await client.ping();
        clearTimeout(timer);
        resolve();
      } catch {
        setTimeout(probe, 20);
      } finally {
        client.disconnect();
      }
    };
    void probe();
  });
  return {
    port: chosen,
    url: `redis://127.0.0.1:${chosen}/0`,
    child,
    kill: async (signal = 'SIGKILL') => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill(signal);
        await exited;
      }
    },
  };
}

const killAll = () => {
  for (const child of redisProcesses) {
    child.kill('SIGKILL');
  }
};
// Even if the worker dies before afterAll runs, no redis-server outlives it.
process.once('exit', killAll);
afterAll(killAll);

interface Replica {
  readonly gateway: Gateway;
  /** Log lines at warn and above, parsed. */
  readonly logs: { level: number; msg: string; redis?: string; reason?: string }[];
  gql<T = Record<string, unknown>>(
    query: string,
    token?: string | null,
  ): Promise<{ status: number; headers: Headers; body: GraphQLBody<T> }>;
  health(): Promise<{ status: string; redis?: string }>;
}

interface GraphQLBody<T> {
  data?: T | null;
  errors?: { message: string; extensions?: Record<string, unknown> }[];
}

const openGateways: Gateway[] = [];

async function startReplica(
  sandbox: Sandbox,
  redisUrl: string,
  options: Partial<GatewayOptions> = {},
): Promise<Replica> {
  const logs: Replica['logs'] = [];
  const gateway = await createGateway({
    misskeyUrl: sandbox.origin,
    port: 0,
    upstreamTimeoutMs: 5_000,
    logger: createLogger('info', {
      write: (line: string) => {
        const entry = JSON.parse(line) as Replica['logs'][number];
        if (entry.level >= 30 && /redis/.test(entry.msg)) {
          logs.push(entry);
        }
      },
    }),
    redisUrl,
    ...options,
  });
  openGateways.push(gateway);
  return {
    gateway,
    logs,
    gql: async (query, token = null) => {
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if (token !== null) {
        headers.authorization = `Bearer ${token}`;
      }
      const res = await fetch(gateway.url, {
        method: 'POST',
        headers,
        body: JSON.stringify({ query }),
      });
      return { status: res.status, headers: res.headers, body: (await res.json()) as never };
    },
    health: async () => (await (await fetch(`${gateway.origin}/health`)).json()) as never,
  };
}

const TREND = '{ trendingHashtags { tag chart usersCount } }';

let sandbox: Sandbox;
let redis: RedisProcess;
/** A plain client of the test's own, to look into Redis. */
let inspect: Redis;

beforeAll(async () => {
  if (skip) {
    return;
  }
  redis = await startRedis();
  sandbox = await startSandbox({ port: 0, rateLimits: false });
  inspect = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  inspect.on('error', () => undefined);
  await inspect.connect();
});
beforeEach(async () => {
  sandbox?.resetCalls();
  if (inspect?.status === 'ready') {
    await inspect.flushdb();
  }
});
afterEach(async () => {
  await Promise.all(openGateways.splice(0).map((gateway) => gateway.close()));
});
afterAll(async () => {
  inspect?.disconnect();
  await sandbox?.close();
  await redis?.kill();
});

describe.skipIf(skip)('two replicas, one Redis', () => {
  it('serve an anonymous public query with one upstream call in total', async () => {
    const a = await startReplica(sandbox, redis.url);
    const b = await startReplica(sandbox, redis.url);
    await until(async () => (await a.health()).redis === 'up' && (await b.health()).redis === 'up');
    const answers = [];
    for (const replica of [a, b, a, b]) {
      answers.push(await replica.gql(TREND));
    }
    expect(answers[0]?.body.errors).toBeUndefined();
    expect(answers[0]?.body.data).toMatchObject({ trendingHashtags: expect.any(Array) });
    for (const answer of answers) {
      expect(answer.body).toEqual(answers[0]?.body);
    }
    expect(sandbox.callCount('hashtags/trend')).toBe(1);

    // One entry, under the gateway's prefix, with its own TTL (the trend's 60 s).
    const keys = await inspect.keys('*');
    expect(keys).toHaveLength(1);
    expect(keys[0]).toMatch(new RegExp(`^${KEY_PREFIX}rc:[\\w-]{12}:`));
    const ttl = await inspect.pttl(keys[0] ?? '');
    expect(ttl).toBeGreaterThan(50_000);
    expect(ttl).toBeLessThanOrEqual(60_000);
    expect(JSON.parse((await inspect.get(keys[0] ?? '')) ?? 'null')).toMatchObject({
      data: answers[0]?.body.data,
    });
  });

  it('an entry expires on its own TTL in Redis, and the next read goes upstream once', async () => {
    const a = await startReplica(sandbox, redis.url);
    const b = await startReplica(sandbox, redis.url);
    await until(async () => (await a.health()).redis === 'up' && (await b.health()).redis === 'up');
    const query = '{ announcements(first: 3) { edges { node { title } } } }';
    await a.gql(query);
    await b.gql(query);
    expect(sandbox.callCount('announcements')).toBe(1);
    const [key] = await inspect.keys(`${KEY_PREFIX}rc:*`);
    expect(await inspect.pttl(key ?? '')).toBeGreaterThan(20_000);
    // Redis expires the key itself (what the 30 s TTL does, shortened here).
    await inspect.pexpire(key ?? '', 50);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(await inspect.exists(key ?? '')).toBe(0);
    await a.gql(query);
    expect(sandbox.callCount('announcements')).toBe(2);
    await b.gql(query);
    expect(sandbox.callCount('announcements')).toBe(2);
  });

  it('never cache a token-bearing query: every call goes upstream, nothing reaches Redis', async () => {
    const a = await startReplica(sandbox, redis.url);
    const b = await startReplica(sandbox, redis.url);
    await until(async () => (await a.health()).redis === 'up' && (await b.health()).redis === 'up');
    const query = '{ announcements(first: 5) { edges { node { title isRead } } } }';
    const alice = await a.gql<{ announcements: { edges: { node: { title: string } }[] } }>(
      query,
      DEMO_TOKENS.alice,
    );
    expect(alice.body.data?.announcements.edges.map((e) => e.node.title)).toContain(
      'For Alice only',
    );
    await b.gql(query, DEMO_TOKENS.alice);
    await a.gql(query, DEMO_TOKENS.bob);
    await b.gql(TREND, DEMO_TOKENS.bob);
    await a.gql(TREND, DEMO_TOKENS.alice);
    expect(sandbox.callCount('announcements')).toBe(3);
    expect(sandbox.callCount('hashtags/trend')).toBe(2);
    expect(await inspect.keys('*')).toEqual([]);

    // The anonymous answer that is then cached holds nothing of alice's.
    const anonymous = await b.gql<{ announcements: { edges: { node: { title: string } }[] } }>(
      query,
    );
    expect(anonymous.body.data?.announcements.edges.map((e) => e.node.title)).not.toContain(
      'For Alice only',
    );
    const keys = await inspect.keys('*');
    expect(keys).toHaveLength(1);
    const stored = (await inspect.get(keys[0] ?? '')) ?? '';
    expect(stored).not.toContain('For Alice only');
    for (const token of Object.values(DEMO_TOKENS)) {
      expect(stored).not.toContain(token);
      expect(keys[0]).not.toContain(token);
    }
    // ... and alice, on the other replica, still gets her own answer from upstream.
    const again = await a.gql<{ announcements: { edges: { node: { title: string } }[] } }>(
      query,
      DEMO_TOKENS.alice,
    );
    expect(again.body.data?.announcements.edges.map((e) => e.node.title)).toContain(
      'For Alice only',
    );
    expect(sandbox.callCount('announcements')).toBe(5);
  });

  it('hold one rate limit per token across both replicas', async () => {
    const rateLimit = { perToken: 4, perIp: 0, windowMs: 60_000 };
    const a = await startReplica(sandbox, redis.url, { rateLimit });
    const b = await startReplica(sandbox, redis.url, { rateLimit });
    await until(async () => (await a.health()).redis === 'up' && (await b.health()).redis === 'up');
    const me = '{ me { username } }';
    const statuses: number[] = [];
    for (const replica of [a, b, a, b]) {
      statuses.push((await replica.gql(me, DEMO_TOKENS.alice)).status);
    }
    expect(statuses).toEqual([200, 200, 200, 200]);
    sandbox.resetCalls();
    // Each replica has seen only two of alice's operations: a per-process count would let more in.
    for (const replica of [a, b]) {
      const refused = await replica.gql(me, DEMO_TOKENS.alice);
      expect(refused.status).toBe(429);
      expect(refused.body.errors?.[0]?.extensions?.code).toBe('RATE_LIMITED');
      const retryAfter = Number(refused.headers.get('retry-after'));
      expect(retryAfter).toBeGreaterThanOrEqual(1);
      expect(retryAfter).toBeLessThanOrEqual(60);
    }
    expect(sandbox.callCount()).toBe(0);
    // Another token has its own budget.
    expect((await b.gql(me, DEMO_TOKENS.bob)).body.data).toEqual({ me: { username: 'bob' } });
    // The counter is keyed by a hash, never by the token, and expires with its window.
    const keys = await inspect.keys(`${KEY_PREFIX}rl:*`);
    expect(keys).toHaveLength(2);
    for (const key of keys) {
      expect(await inspect.pttl(key)).toBeGreaterThan(50_000);
      for (const token of Object.values(DEMO_TOKENS)) {
        expect(key).not.toContain(token);
      }
    }
  });

  it('hold one rate limit per client address across both replicas', async () => {
    const rateLimit = { perToken: 0, perIp: 3, windowMs: 60_000 };
    const a = await startReplica(sandbox, redis.url, { rateLimit });
    const b = await startReplica(sandbox, redis.url, { rateLimit });
    await until(async () => (await a.health()).redis === 'up' && (await b.health()).redis === 'up');
    const statuses: number[] = [];
    for (const replica of [a, b, a, b, a]) {
      statuses.push((await replica.gql(TREND)).status);
    }
    expect(statuses).toEqual([200, 200, 200, 429, 429]);
  });
});

describe.skipIf(skip)('Redis outage', () => {
  it('killing Redis mid-run keeps every query answering; limits turn per replica; it comes back by itself', async () => {
    const own = await startRedis();
    const rateLimit = { perToken: 3, perIp: 0, windowMs: 60_000 };
    const a = await startReplica(sandbox, own.url, { rateLimit });
    const b = await startReplica(sandbox, own.url, { rateLimit });
    const replicas = [a, b];
    await until(async () => (await a.health()).redis === 'up' && (await b.health()).redis === 'up');
    await a.gql(TREND);
    await b.gql(TREND);
    expect(sandbox.callCount('hashtags/trend')).toBe(1);

    // 40 anonymous public reads, four at a time over both replicas; Redis dies after the 10th.
    const results: { status: number; ok: boolean; ms: number }[] = [];
    let next = 0;
    let killed: Promise<void> | undefined;
    const worker = async () => {
      while (next < 40) {
        const i = next++;
        const started = performance.now();
        const res = await replicas[i % 2]?.gql<{ trendingHashtags: unknown[] }>(TREND);
        results.push({
          status: res?.status ?? 0,
          ok: res?.body.errors === undefined && Array.isArray(res?.body.data?.trendingHashtags),
          ms: performance.now() - started,
        });
        if (results.length === 10) {
          killed = own.kill('SIGKILL');
        }
      }
    };
    await Promise.all([worker(), worker(), worker(), worker()]);
    await killed;
    expect(results).toHaveLength(40);
    expect(results.every((r) => r.status === 200 && r.ok)).toBe(true);
    expect(Math.max(...results.map((r) => r.ms))).toBeLessThan(1_000);

    // Without Redis there is no cache: each read goes upstream, and each still answers.
    sandbox.resetCalls();
    for (const replica of [a, b, a, b]) {
      const res = await replica.gql(TREND);
      expect(res.status).toBe(200);
      expect(res.body.errors).toBeUndefined();
    }
    expect(sandbox.callCount('hashtags/trend')).toBe(4);
    for (const replica of replicas) {
      expect(await replica.health()).toEqual({ status: 'ok', redis: 'down' });
      // One warning per replica for the whole outage, not one per request.
      expect(replica.logs.filter((l) => l.level === 40)).toHaveLength(1);
      expect(replica.logs[0]).toMatchObject({ redis: `127.0.0.1:${own.port}/0` });
    }

    // The rate limit still holds, counted by each replica on its own.
    const me = '{ me { username } }';
    const onA: number[] = [];
    for (let i = 0; i < 4; i++) {
      onA.push((await a.gql(me, DEMO_TOKENS.carol)).status);
    }
    expect(onA).toEqual([200, 200, 200, 429]);
    expect((await b.gql(me, DEMO_TOKENS.carol)).status).toBe(200);

    // Redis back on the same port: both replicas reconnect by themselves and share again.
    const back = await startRedis(own.port);
    await until(
      async () => (await a.health()).redis === 'up' && (await b.health()).redis === 'up',
      8_000,
    );
    sandbox.resetCalls();
    await a.gql(TREND);
    await b.gql(TREND);
    expect(sandbox.callCount('hashtags/trend')).toBe(1);
    // The new Redis has neither the counters nor the script: one budget again, across both.
    const shared: number[] = [];
    for (const replica of [a, b, a, b]) {
      shared.push((await replica.gql(me, DEMO_TOKENS.carol)).status);
    }
    expect(shared).toEqual([200, 200, 200, 429]);
    for (const replica of replicas) {
      expect(replica.logs.map((l) => l.msg)).toEqual([
        expect.stringMatching(/^redis unavailable/),
        expect.stringMatching(/^redis is back/),
      ]);
    }
    await Promise.all(openGateways.splice(0).map((gateway) => gateway.close()));
    await back.kill();
  });

  it('a Redis that stops answering costs at most one command timeout, then is skipped', async () => {
    const own = await startRedis();
    const a = await startReplica(sandbox, own.url, {
      redis: { commandTimeoutMs: 1_000, cooldownMs: 60_000 },
    });
    await until(async () => (await a.health()).redis === 'up');
    own.child.kill('SIGSTOP');
    try {
      const times: number[] = [];
      for (let i = 0; i < 5; i++) {
        const started = performance.now();
        const res = await a.gql(TREND);
        times.push(performance.now() - started);
        expect(res.status).toBe(200);
        expect(res.body.errors).toBeUndefined();
      }
      // The first read waits for the cache lookup's timeout; the rest do not touch Redis.
      expect(times[0]).toBeGreaterThanOrEqual(950);
      expect(times[0]).toBeLessThan(3_000);
      expect(Math.max(...times.slice(1))).toBeLessThan(500);
      expect(sandbox.callCount('hashtags/trend')).toBe(5);
      expect(a.logs.filter((l) => l.level === 40)).toHaveLength(1);
      expect(a.logs[0]?.reason).toMatch(/timed out/i);
    } finally {
      own.child.kill('SIGCONT');
      await own.kill();
    }
  });

  it('a Redis that is not there at start-up: operations answer, uncached, after one warning', async () => {
    const nowhere = `redis://127.0.0.1:${await freePort()}/0`;
    const a = await startReplica(sandbox, nowhere);
    for (let i = 0; i < 3; i++) {
      const res = await a.gql(TREND);
      expect(res.body.errors).toBeUndefined();
    }
    expect(sandbox.callCount('hashtags/trend')).toBe(3);
    await until(() => a.logs.length > 0);
    expect(await a.health()).toEqual({ status: 'ok', redis: 'down' });
    expect(a.logs.filter((l) => l.level === 40)).toHaveLength(1);
  });
});

describe('REDIS_URL', () => {
  it('accepts redis and rediss URLs, with a database number and a password', () => {
    expect(loadConfig({}).redisUrl).toBeNull();
    expect(loadConfig({ REDIS_URL: 'redis://redis:6379/0' }).redisUrl).toBe('redis://redis:6379/0');
    expect(loadConfig({ REDIS_URL: ' rediss://:s3cret@cache.internal:6380/2 ' }).redisUrl).toBe(
      'rediss://:s3cret@cache.internal:6380/2',
    );
  });

  it.each([
    ['http://redis:6379', /redis or rediss/],
    ['redis:6379', /must name a host/],
    ['not a url', /must be a URL/],
    ['redis:///0', /must name a host/],
    ['redis://:s3cret@redis:6379/cache', /database number/],
  ])('refuses %s without echoing it', (value, message) => {
    let error: unknown;
    try {
      loadConfig({ REDIS_URL: value });
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toMatch(/^REDIS_URL: /);
    expect((error as Error).message).toMatch(message);
    expect((error as Error).message).not.toContain('s3cret');
  });
});
