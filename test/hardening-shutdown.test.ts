import { get } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO_TOKENS } from '../src/sandbox/seed.js';
import { type Sandbox, startSandbox } from '../src/sandbox/server.js';
import { WsClient } from './hardening-helpers.js';
import { startStack } from './harness.js';
import { freePort, startProcess } from './support/process.js';

/**
 * SIGTERM under load, on a real `npm start` process in front of a slow sandbox: /ready turns 503,
 * every in-flight operation is answered, websockets close with 1001, the process exits 0 within
 * its bound, and its logs hold no token.
 */

let sandbox: Sandbox;

beforeAll(async () => {
  sandbox = await startSandbox({ port: 0, latencyMs: 400 });
});
afterAll(async () => {
  await sandbox.close();
});
describe('graceful shutdown', () => {
  // A real process under the whole suite's load: give it room to start.
  it('SIGTERM during load: no in-flight request fails, websockets get 1001, exit 0 in bound', {
    timeout: 60_000,
  }, async () => {
    const port = await freePort();
    const origin = `http://127.0.0.1:${port}`;
    const gateway = startProcess('src/main.ts', [], {
      MISSKEY_URL: sandbox.origin,
      PORT: String(port),
      LOG_LEVEL: 'info',
      SHUTDOWN_DELAY_MS: '300',
      SHUTDOWN_TIMEOUT_MS: '5000',
    });
    const { child, exited } = gateway;
    await gateway.waitFor('serving', 40_000);

    // A live subscription on a websocket.
    const ws = new WsClient(`${origin}/graphql`);
    await ws.init({ authorization: `Bearer ${DEMO_TOKENS.alice}` });
    ws.subscribe('live', 'subscription { chatMessageReceived { id } }');

    // 100 operations in flight (each waits 400 ms upstream; 32 upstream sockets).
    sandbox.resetCalls();
    const users = ['alice', 'bob'] as const;
    const inflight = Array.from({ length: 100 }, async (_, i) => {
      const user = users[i % 2] as (typeof users)[number];
      try {
        const res = await fetch(`${origin}/graphql`, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            authorization: `Bearer ${DEMO_TOKENS[user]}`,
          },
          body: JSON.stringify({ query: '{ me { username } }' }),
        });
        return { user, status: res.status, body: (await res.json()) as Record<string, unknown> };
      } catch (error) {
        return { user, status: 0, body: { error: String(error), output: gateway.output() } };
      }
    });
    while (sandbox.callCount('i') < 10) {
      await new Promise((r) => setTimeout(r, 10));
    }

    const signalled = Date.now();
    child.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 50));
    // On a new connection: a pooled keep-alive socket may be closed as idle by the shutdown.
    const ready = await new Promise<number>((done, fail) => {
      get(`${origin}/ready`, { agent: false }, (res) => {
        res.resume();
        done(res.statusCode ?? 0);
      }).once('error', fail);
    });
    expect(ready).toBe(503);

    const results = await Promise.all(inflight);
    const failed = results.filter(
      (r) =>
        r.status !== 200 ||
        JSON.stringify(r.body) !== JSON.stringify({ data: { me: { username: r.user } } }),
    );
    expect(failed).toEqual([]);
    expect(await ws.closed).toBe(1001);

    expect(await exited).toBe(0);
    const took = Date.now() - signalled;
    // In-flight work took ~1.6 s; the hard bound is SHUTDOWN_DELAY_MS + SHUTDOWN_TIMEOUT_MS.
    expect(took).toBeLessThan(5_300);
    await expect(fetch(`${origin}/health`)).rejects.toThrow();

    // The logs: JSON lines (after the startup banner), the shutdown logged, no token anywhere.
    for (const token of Object.values(DEMO_TOKENS)) {
      expect(gateway.output()).not.toContain(token);
    }
    const json = gateway
      .output()
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as { msg: string });
    expect(json.filter((l) => l.msg === 'request').length).toBeGreaterThanOrEqual(100);
    expect(json.map((l) => l.msg)).toEqual(
      expect.arrayContaining(['shutting down', 'gateway closed']),
    );
    console.log(`SIGTERM with 100 operations in flight: all answered, exit 0 after ${took} ms`);
  });

  it('close() is bounded: an operation stuck upstream is cut at SHUTDOWN_TIMEOUT_MS', async () => {
    const stack = await startStack({
      gateway: { shutdownTimeoutMs: 400, upstreamTimeoutMs: 30_000, breakerFailures: 0 },
    });
    stack.sandbox.fail('i', { hang: true });
    const stuck = stack.gql('{ me { id } }').catch((error: unknown) => error);
    while (stack.sandbox.callCount('i') === 0) {
      await new Promise((r) => setTimeout(r, 10));
    }
    const started = Date.now();
    await stack.gateway.close();
    const took = Date.now() - started;
    expect(took).toBeGreaterThanOrEqual(350);
    expect(took).toBeLessThan(1_500);
    expect(await stuck).toBeInstanceOf(Error);
    expect(stack.gateway.client.sockets().connected).toBe(0);
  });
});
