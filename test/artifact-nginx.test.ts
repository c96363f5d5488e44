import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO_TOKENS } from '../src/sandbox/seed.js';
import { type Artifact, prepareArtifact, servingUrl, startBuilt } from './support/artifact.js';
import {
  type Answer,
  CHAT_EVENTS,
  type ChatEvents,
  demoUserId,
  post,
  sendFromBob,
  sendUntilDelivered,
  subscribe,
  textsOf,
} from './support/client.js';
import { freePort, type RunningProcess, root, startCommand } from './support/process.js';

/**
 * The load-balancer setup deploy/ ships, on this machine instead of Docker: Debian's nginx with a
 * config derived from deploy/nginx.conf (only the upstream addresses, the listen port and what a
 * foreground run in a temp prefix needs are changed), in front of two built replicas
 * (`node dist/main.js`) sharing one built sandbox and one throwaway redis-server, with
 * TRUST_PROXY=true as in deploy/docker-compose.yml. .ci/run installs nginx and redis-server.
 */
const NGINX = process.env.NGINX ?? '/usr/sbin/nginx';
const REDIS_SERVER = process.env.REDIS_SERVER ?? 'redis-server';
/** Without nginx or redis-server this file skips with one line, except in CI (`CI=true`), where
 *  it must run. */
const missing = [
  existsSync(NGINX) ? null : NGINX,
  spawnSync(REDIS_SERVER, ['--version']).status === 0 ? null : REDIS_SERVER,
].filter((name) => name !== null);
const skip = missing.length > 0 && process.env.CI !== 'true';
if (skip) {
  console.warn(
    `nginx tests skipped: no ${missing.join(' or ')} (apt-get install nginx redis-server, or set NGINX and REDIS_SERVER)`,
  );
}

let artifact: Artifact | undefined;
let scratch = '';
let redis: RunningProcess | undefined;
let sandbox: RunningProcess | undefined;
const replicas: RunningProcess[] = [];
let nginx: RunningProcess | undefined;
/** nginx's /graphql */
let url = '';
let aliceId = '';

beforeAll(async () => {
  if (skip) {
    return;
  }
  scratch = mkdtempSync(join(tmpdir(), 'misskey-graphql-nginx-'));
  artifact = await prepareArtifact();
  const redisUrl = await startRedis();
  sandbox = startBuilt(artifact, 'dist/sandbox/main.js', ['--port', '0', '--host', '127.0.0.1']);
  const listening = /listening on (http:\/\/\S+)/;
  await sandbox.waitFor(listening, 30_000);
  const misskeyUrl = listening.exec(sandbox.output())?.[1] ?? '';
  const upstreams: string[] = [];
  for (let i = 0; i < 2; i++) {
    const replica = startBuilt(artifact, 'dist/main.js', [], {
      ...REPLICA_ENV,
      MISSKEY_URL: misskeyUrl,
      REDIS_URL: redisUrl,
    });
    replicas.push(replica);
    upstreams.push(new URL(await servingUrl(replica)).host);
  }
  url = await startNginx(upstreams);
  aliceId = await demoUserId(url, 'alice');
}, 300_000);

afterAll(async () => {
  // nginx first (its workers must not outlive the master), then the replicas, the upstreams.
  await nginx?.stop('SIGTERM');
  await Promise.all(replicas.map((replica) => replica.stop('SIGKILL')));
  await sandbox?.stop('SIGKILL');
  await redis?.stop('SIGKILL');
  artifact?.remove();
  if (scratch) {
    rmSync(scratch, { recursive: true, force: true });
  }
});

/** deploy/docker-compose.yml's gateway environment, minus what only containers need; a shorter
 *  shutdown delay keeps the test quick. */
const REPLICA_ENV = {
  HOST: '127.0.0.1',
  PORT: '0',
  TRUST_PROXY: 'true',
  RATE_LIMIT_PER_TOKEN: '600',
  RATE_LIMIT_PER_IP: '1200',
  RATE_LIMIT_WINDOW_MS: '60000',
  GRAPHIQL: 'false',
  LOG_LEVEL: 'info',
  SHUTDOWN_DELAY_MS: '500',
  SHUTDOWN_TIMEOUT_MS: '10000',
};

async function startRedis(): Promise<string> {
  const port = await freePort();
  redis = startCommand(
    REDIS_SERVER,
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { cwd: scratch, env: { PATH: process.env.PATH ?? '' }, scope: 'file' },
  );
  await redis.waitFor('Ready to accept connections', 10_000);
  return `redis://127.0.0.1:${port}/0`;
}

/**
 * deploy/nginx.conf with each replacement made exactly once (a changed file fails here rather
 * than being silently tested in another shape), plus a foreground run in `prefix`.
 */
function nginxConfig(source: string, upstreams: string[], port: number, prefix: string) {
  const replace = (text: string, from: string, to: string) => {
    const count = text.split(from).length - 1;
    if (count !== 1) {
      throw new Error(`deploy/nginx.conf: expected "${from}" once, found it ${count} times`);
    }
    return text.replace(from, to);
  };
  let config = replace(source, 'server gateway-1:4000 ', `server ${upstreams[0]} `);
  config = replace(config, 'server gateway-2:4000 ', `server ${upstreams[1]} `);
  config = replace(config, 'listen 8080;', `listen 127.0.0.1:${port};`);
  const temp = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']
    .map((kind) => `  ${kind}_temp_path ${join(prefix, `${kind}_temp`)};`)
    .join('\n');
  config = replace(config, '\nhttp {\n', `\nhttp {\n${temp}\n`);
  const foreground = `daemon off;\npid ${join(prefix, 'nginx.pid')};\nerror_log stderr warn;\n`;
  return foreground + config;
}

async function startNginx(upstreams: string[]): Promise<string> {
  if (!existsSync(NGINX)) {
    throw new Error(`no nginx at ${NGINX}: apt-get install nginx (as .ci/run does) or set NGINX`);
  }
  const prefix = join(scratch, 'nginx');
  mkdirSync(prefix);
  // Started as root, nginx's workers run as nobody and must reach the temp folders.
  chmodSync(scratch, 0o755);
  chmodSync(prefix, 0o755);
  const source = readFileSync(join(root, 'deploy/nginx.conf'), 'utf8');
  const port = await freePort();
  const conf = join(prefix, 'nginx.conf');
  writeFileSync(conf, nginxConfig(source, upstreams, port, prefix));
  nginx = startCommand(NGINX, ['-p', prefix, '-c', conf, '-e', 'stderr'], {
    cwd: prefix,
    env: { PATH: process.env.PATH ?? '' },
    scope: 'file',
  });
  const origin = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 10_000;
  for (;;) {
    const ok = await fetch(`${origin}/health`).then(
      (res) => res.ok,
      () => false,
    );
    if (ok) {
      return `${origin}/graphql`;
    }
    if (Date.now() > deadline || nginx.child.exitCode !== null) {
      throw new Error(`nginx did not answer on ${origin}:\n${nginx.output()}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Which replica served each request id (from its access log line), polled until all are seen. */
async function servedBy(ids: string[], ms = 5_000): Promise<number[]> {
  const deadline = Date.now() + ms;
  for (;;) {
    const who = ids.map((id) =>
      replicas.findIndex((replica) => replica.output().includes(`"reqId":"${id}"`)),
    );
    if (!who.includes(-1) || Date.now() > deadline) {
      return who;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

const ME = '{ me { username } }';

/** `me` as alice through nginx, tagged with `id` as its X-Request-Id: 'ok' or what went wrong. */
async function me(id: string, method: 'GET' | 'POST' = 'POST'): Promise<string> {
  const headers = {
    authorization: `Bearer ${DEMO_TOKENS.alice}`,
    'x-request-id': id,
    // GET must carry a preflighted header (CSRF prevention).
    'x-graphql-yoga-csrf': '1',
  };
  try {
    const res =
      method === 'POST'
        ? await post<{ me: { username: string } }>(url, ME, { headers })
        : await getJson(`${url}?query=${encodeURIComponent(ME)}`, headers);
    return res.status === 200 && res.data?.me.username === 'alice'
      ? 'ok'
      : `HTTP ${res.status} ${JSON.stringify(res.errors)}`;
  } catch (error) {
    return `${method} failed: ${(error as Error).message}`;
  }
}

async function getJson(target: string, headers: Record<string, string>) {
  const res = await fetch(target, { headers, signal: AbortSignal.timeout(10_000) });
  const text = await res.text();
  try {
    const body = JSON.parse(text) as Pick<Answer<{ me: { username: string } }>, 'data' | 'errors'>;
    return { ...body, status: res.status };
  } catch {
    throw new Error(`HTTP ${res.status}, not JSON: ${text.slice(0, 300)}`);
  }
}

describe.skipIf(skip)('deploy/nginx.conf in front of two built replicas', () => {
  it('answers a query', async () => {
    const res = await post<{ me: { username: string } }>(url, ME, { token: DEMO_TOKENS.alice });
    expect(res.status).toBe(200);
    expect(res.data?.me.username).toBe('alice');
    const anonymous = await post(url, '{ me { id } }');
    expect(anonymous.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
  });

  it('keeps a websocket subscription receiving while HTTP spreads over both replicas', async () => {
    const bobId = await demoUserId(url, 'bob');
    const live = subscribe<ChatEvents>(url, DEMO_TOKENS.alice, CHAT_EVENTS, { userId: bobId });
    try {
      await sendUntilDelivered(url, aliceId, (texts) =>
        textsOf(live).some((t) => texts.includes(t)),
      );
      const ids: string[] = [];
      const sent: string[] = [];
      for (let round = 0; round < 10; round++) {
        const batch = Array.from({ length: 6 }, (_, i) => `spread-${Date.now()}-${round}-${i}`);
        ids.push(...batch);
        sent.push(`spread ${round}`);
        const [outcomes] = await Promise.all([
          Promise.all(batch.map((id) => me(id))),
          sendFromBob(url, aliceId, `spread ${round}`),
        ]);
        expect(outcomes.filter((o) => o !== 'ok')).toEqual([]);
      }
      await live.until(() => sent.every((text) => textsOf(live).includes(text)));
      expect(live.ended).toBeNull();
      expect(live.connects).toBe(1);
      const who = await servedBy(ids);
      expect(who.filter((index) => index === -1)).toEqual([]);
      expect(who.filter((index) => index === 0).length).toBeGreaterThan(5);
      expect(who.filter((index) => index === 1).length).toBeGreaterThan(5);
    } finally {
      await live.close();
    }
  }, 30_000);

  // While the replica closes, queries go as GET: nginx resends an idempotent request that met
  // a closing socket to the other replica (`proxy_next_upstream error timeout`), never a POST
  // that reached the replica. Once it has exited, connections to it are refused before anything
  // is sent, so POSTs are safe again and must all succeed.
  it('keeps serving through SIGTERM of one replica, which exits 0', async () => {
    const [leaving, staying] = replicas as [RunningProcess, RunningProcess];
    const outcomes: { id: string; outcome: string; afterExit: boolean }[] = [];
    let exited = false;
    let afterExit = 0;
    const worker = async (w: number) => {
      for (let n = 0; afterExit < 40; n++) {
        const id = `kill-${Date.now()}-${w}-${n}`;
        const wasExited = exited;
        const outcome = await me(id, wasExited ? 'POST' : 'GET');
        outcomes.push({ id, outcome, afterExit: wasExited });
        if (wasExited) {
          afterExit++;
        }
      }
    };
    const load = Promise.all([0, 1, 2].map(worker));
    await new Promise((r) => setTimeout(r, 300));
    const code = await leaving.stop('SIGTERM', 20_000);
    exited = true;
    await load;
    expect(code).toBe(0);
    expect(leaving.output()).toContain('SIGTERM: shutting down');
    expect(
      outcomes.filter(({ outcome }) => outcome !== 'ok'),
      nginx?.output(),
    ).toEqual([]);
    expect(staying.child.exitCode).toBeNull();
    // Both replicas had a share of this load until the one left; everything sent after its
    // exit was the other's.
    expect(await servedBy(outcomes.filter((o) => !o.afterExit).map((o) => o.id))).toContain(0);
    const late = outcomes.filter((o) => o.afterExit).map((o) => o.id);
    expect(late.length).toBeGreaterThanOrEqual(40);
    expect(new Set(await servedBy(late))).toEqual(new Set([1]));
  }, 40_000);
});
