import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO_TOKENS } from '../src/sandbox/seed.js';
import { type Artifact, prepareArtifact, servingUrl, startBuilt } from './support/artifact.js';
import {
  CHAT_EVENTS,
  type ChatEvents,
  demoUserId,
  post,
  sendUntilDelivered,
  subscribe,
  textsOf,
} from './support/client.js';
import { freePort, type RunningProcess } from './support/process.js';
import { until } from './support/until.js';

/**
 * The artifact that ships, black box: `npm run build` output beside the production dependencies
 * alone, started as the Docker image starts it (`node dist/main.js`, NODE_ENV=production, default
 * settings: no MISSKEY_URL, so the embedded sandbox with demo data), used over HTTP and
 * websockets, stopped with SIGTERM. A runtime import of a dev-only package crashes it.
 */
let artifact: Artifact | undefined;
let gateway: RunningProcess;
let url = '';
let origin = '';

beforeAll(async () => {
  artifact = await prepareArtifact();
  gateway = startBuilt(artifact, 'dist/main.js', [], { PORT: '0' });
  url = await servingUrl(gateway);
  origin = new URL(url).origin;
}, 300_000);

afterAll(async () => {
  await gateway?.stop('SIGKILL');
  artifact?.remove();
});

const readJson = (file: string) =>
  JSON.parse(readFileSync(join(import.meta.dirname, '..', file), 'utf8')) as never;
const pkg: { dependencies: Record<string, string> } = readJson('package.json');
const lock: { packages: Record<string, { dev?: boolean }> } = readJson('package-lock.json');
/** Packages only the dev set needs (some dev dependencies are also needed by production ones). */
const devOnly = Object.entries(lock.packages)
  .filter(([path, entry]) => entry.dev === true && path.startsWith('node_modules/'))
  .map(([path]) => path);

describe('the production dependency set', () => {
  it('holds every dependency and no dev-only package', () => {
    const installed = (path: string) => existsSync(join(artifact?.dir ?? '', path));
    const dependencies = Object.keys(pkg.dependencies).map((name) => `node_modules/${name}`);
    expect(dependencies.filter((path) => !installed(path))).toEqual([]);
    expect(devOnly).toContain('node_modules/vitest');
    expect(devOnly).toContain('node_modules/typescript');
    expect(devOnly.filter(installed)).toEqual([]);
  });

  it('makes the gateway crash at start when it imports a dev-only package', async () => {
    const dir = artifact?.dir ?? '';
    // dist/main.js with one more import on top, as a stray `import 'typescript'` would compile.
    const main = readFileSync(join(dir, 'dist/main.js'), 'utf8');
    writeFileSync(join(dir, 'dist/main-dev-import.js'), `import 'typescript';\n${main}`);
    const broken = startBuilt(artifact as Artifact, 'dist/main-dev-import.js', [], { PORT: '0' });
    const code = await broken.exited;
    expect(code).not.toBe(0);
    expect(broken.output()).toContain("Cannot find package 'typescript'");
    expect(broken.output()).not.toContain('serving');
  });
});

describe('node dist/main.js (embedded sandbox, demo data)', () => {
  it('answers `me` for the demo token', async () => {
    const res = await post<{ me: { id: string; username: string } }>(
      url,
      '{ me { id username } }',
      {
        token: DEMO_TOKENS.alice,
      },
    );
    expect(res.status).toBe(200);
    expect(res.errors).toBeUndefined();
    expect(res.data?.me.username).toBe('alice');
    expect(res.data?.me.id).toMatch(/^\w+$/);
  });

  it('refuses anonymous `me` with UNAUTHENTICATED at path ["me"]', async () => {
    const res = await post(url, '{ me { id } }');
    expect(res.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    expect(res.errors?.[0]?.path).toEqual(['me']);
  });

  it('pages a 50-message conversation', async () => {
    const bob = await demoUserId(url, 'bob');
    const res = await post<{ chatConversation: ConversationPage }>(url, CONVERSATION, {
      token: DEMO_TOKENS.alice,
      variables: { bob },
    });
    expect(res.errors).toBeUndefined();
    const page = res.data?.chatConversation;
    expect(page?.edges).toHaveLength(50);
    // The demo seed has 65 messages between alice and bob: more pages follow, newest first.
    expect(page?.pageInfo.hasNextPage).toBe(true);
    expect(page?.pageInfo.endCursor).toBe(page?.edges.at(-1)?.cursor);
    const times = page?.edges.map(({ node }) => Date.parse(node.createdAt)) ?? [];
    expect(times).toEqual([...times].sort((a, b) => b - a));
    expect(new Set(page?.edges.map(({ node }) => node.id)).size).toBe(50);
    const senders = new Set(page?.edges.map(({ node }) => node.fromUser?.username));
    expect(senders).toEqual(new Set(['alice', 'bob']));
  });

  it('delivers a message bob sends to alice’s graphql-ws subscription', async () => {
    const [alice, bob] = [await demoUserId(url, 'alice'), await demoUserId(url, 'bob')];
    const live = subscribe<ChatEvents>(url, DEMO_TOKENS.alice, CHAT_EVENTS, { userId: bob });
    try {
      const text = await sendUntilDelivered(url, alice, (texts) =>
        textsOf(live).some((t) => texts.includes(t)),
      );
      const event = live.results.find((r) => r.data?.chatEvents.message?.text === text);
      expect(event?.data?.chatEvents.message?.fromUser.username).toBe('bob');
      expect(live.ended).toBeNull();
    } finally {
      await live.close();
    }
  });

  it('serves /health, /ready and Prometheus /metrics', async () => {
    const health = await fetch(`${origin}/health`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: 'ok' });
    const ready = await fetch(`${origin}/ready`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: 'ready' });
    const metrics = await fetch(`${origin}/metrics`);
    expect(metrics.status).toBe(200);
    expect(metrics.headers.get('content-type')).toMatch(/^text\/plain/);
    const text = await metrics.text();
    expect(text).toContain('# TYPE gateway_http_request_duration_seconds histogram');
    expect(text).toMatch(/gateway_http_request_duration_seconds_count\{[^}]*\/graphql[^}]*\} \d+/);
    expect(text).toContain('# TYPE misskey_upstream_calls_total counter');
  });

  it('exits 0 on SIGTERM', async () => {
    expect(await gateway.stop('SIGTERM', 15_000)).toBe(0);
    expect(gateway.output()).toContain('SIGTERM: shutting down');
    expect(gateway.output()).toContain('"msg":"gateway closed"');
  }, 20_000);
});

describe('node dist/main.js whose standard output is closed', () => {
  it('keeps serving, drops its output, and still exits 0 on SIGTERM', async () => {
    // Its stdout is a pipe to `head -n 5`, which exits after five of the startup lines (as a
    // log collector that dies would): every later write fails with EPIPE.
    const head = spawn('head', ['-n', '5'], { stdio: ['pipe', 'ignore', 'ignore'] });
    const port = await freePort();
    const built = spawn(process.execPath, ['dist/main.js'], {
      cwd: artifact?.dir,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', NODE_ENV: 'production', PORT: `${port}` },
      stdio: ['ignore', head.stdin, 'pipe'],
    });
    let stderr = '';
    built.stderr?.on('data', (chunk) => {
      stderr += String(chunk);
    });
    const exited = new Promise<number | null>((done) => built.once('exit', done));
    try {
      const at = `http://127.0.0.1:${port}`;
      await until(async () => (await fetch(`${at}/health`).catch(() => null))?.ok === true, 20_000);
      for (let i = 0; i < 3; i++) {
        const res = await fetch(`${at}/graphql`, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            authorization: `Bearer ${DEMO_TOKENS.alice}`,
          },
          body: JSON.stringify({ query: '{ me { username } }' }),
        });
        expect(await res.json()).toEqual({ data: { me: { username: 'alice' } } });
      }
      built.kill('SIGTERM');
      const code = await Promise.race([exited, sleep(15_000).then(() => 'still running')]);
      expect(code).toBe(0);
      expect(stderr).not.toContain('EPIPE');
    } finally {
      built.kill('SIGKILL');
      head.kill('SIGKILL');
    }
  }, 40_000);
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const CONVERSATION = `query Conversation($bob: ID!) {
  chatConversation(userId: $bob, first: 50) {
    edges { cursor node { id text createdAt fromUser { username } toUser { username } } }
    pageInfo { hasNextPage endCursor }
  }
}`;

interface ConversationPage {
  edges: {
    cursor: string;
    node: { id: string; createdAt: string; fromUser: { username: string } | null };
  }[];
  pageInfo: { hasNextPage: boolean; endCursor: string | null };
}
