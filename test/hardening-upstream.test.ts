import { createServer } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createGateway } from '../src/app/gateway.js';
import type { UpstreamCallEvent } from '../src/upstream/client.js';
import { backoffDelay } from '../src/upstream/policy.js';
import { DEMO_TOKENS, type GraphQLResponse, type Stack, startStack } from './harness.js';

/**
 * Upstream failures injected through the sandbox knobs, seen through the gateway: each one is a
 * typed, bounded GraphQL error; reads are retried on connection errors and 502/503/504, writes
 * are sent exactly once; the breaker fails fast and recovers; the deadline caps an operation.
 */

const SECRET = 'SECRET-db-password-hunter2';
const ME = '{ me { id username } }';
const WRITE = 'mutation { markAllChatMessagesRead }';
/** Two callers taking turns: one caller alone never opens the breaker. */
const TAKING_TURNS = [DEMO_TOKENS.alice, DEMO_TOKENS.bob];

let stack: Stack;
beforeAll(async () => {
  // No breaker here: each test injects its own failures and must not see the previous ones.
  stack = await startStack({
    gateway: { upstreamTimeoutMs: 400, upstreamRetryDelayMs: 5, breakerFailures: 0 },
  });
});
beforeEach(() => {
  stack.sandbox.clearFailures();
  stack.sandbox.resetCalls();
  stack.sandbox.latencyMs = 0;
});

/** The response must not leak the token, the secret, a stack trace or an upstream body. */
function expectClean(res: GraphQLResponse): void {
  const text = JSON.stringify(res);
  for (const token of Object.values(DEMO_TOKENS)) {
    expect(text).not.toContain(token);
  }
  expect(text).not.toContain(SECRET);
  expect(text).not.toMatch(/\bat .+:\d+:\d+/);
  expect(text).not.toContain('stack');
}

function codeOf(res: GraphQLResponse): unknown {
  return res.errors?.[0]?.extensions?.code;
}

const internalError = {
  error: {
    message: 'Internal error occurred. Please contact us if the error persists.',
    code: 'INTERNAL_ERROR',
    id: '5d37dbcb-891e-41ca-a3d6-e690c97775ac',
    kind: 'server',
    info: { e: { message: `${SECRET} at /srv/misskey/built/x.js:1:2`, code: 'Error', id: 'x' } },
  },
};

describe('faults on a read endpoint', () => {
  it.each([
    ['hang', 'UPSTREAM_TIMEOUT', 1, { hang: true }],
    [
      '500 with a secret in the Misskey envelope',
      'UPSTREAM_ERROR',
      1,
      { status: 500, body: internalError },
    ],
    [
      '500 with a secret as plain text',
      'UPSTREAM_BAD_RESPONSE',
      1,
      { status: 500, raw: `Traceback: ${SECRET}` },
    ],
    ['malformed JSON', 'UPSTREAM_BAD_RESPONSE', 1, { status: 200, raw: `{"id": "${SECRET}` }],
    ['reset before answering, every time', 'UPSTREAM_UNAVAILABLE', 3, { reset: true }],
    ['reset mid-body, every time', 'UPSTREAM_UNAVAILABLE', 3, { resetMidBody: true }],
    [
      '503 from a proxy, every time',
      'UPSTREAM_UNAVAILABLE',
      3,
      { status: 503, raw: `<h1>${SECRET}</h1>` },
    ],
  ] as const)('%s → %s after %d call(s), nothing leaked', async (_name, code, calls, failure) => {
    stack.sandbox.fail('i', failure);
    const started = performance.now();
    const res = await stack.gql(ME);
    expect(performance.now() - started).toBeLessThan(2_000);
    expect(res.data).toBeNull();
    expect(codeOf(res)).toBe(code);
    expect(res.errors?.[0]?.path).toEqual(['me']);
    expectClean(res);
    expect(stack.sandbox.callCount('i')).toBe(calls);
  });

  it('429 with Retry-After → RATE_LIMITED with retryAfter and the Misskey code; not retried', async () => {
    stack.sandbox.fail('i', {
      status: 429,
      headers: { 'retry-after': '7' },
      body: {
        error: {
          message: 'Rate limit exceeded. Please try again later.',
          code: 'RATE_LIMIT_EXCEEDED',
          id: 'd5826d14-3982-4d2e-8011-b9e9f02499ef',
          kind: 'client',
        },
      },
    });
    const res = await stack.gql(ME);
    expect(res.errors?.[0]?.extensions).toMatchObject({
      code: 'RATE_LIMITED',
      retryAfter: 7,
      misskey: { code: 'RATE_LIMIT_EXCEEDED', id: 'd5826d14-3982-4d2e-8011-b9e9f02499ef' },
    });
    expect(stack.sandbox.callCount('i')).toBe(1);
  });

  it.each([
    ['a reset mid-body', { resetMidBody: true, times: 1 }],
    ['a reset', { reset: true, times: 1 }],
    ['a 502', { status: 502, raw: 'Bad gateway', times: 1 }],
    ['a 504', { status: 504, raw: 'Gateway timeout', times: 2 }],
  ] as const)('a read recovers from %s by retrying', async (_name, failure) => {
    const res = await stack.gql(ME);
    expect(res.errors).toBeUndefined();
    stack.sandbox.resetCalls();
    stack.upstreamCalls.length = 0;
    stack.sandbox.fail('i', failure);
    const retried = await stack.gql(ME);
    expect(retried).toEqual(res);
    expect(stack.sandbox.callCount('i')).toBe((failure.times ?? 1) + 1);
    expect(stack.upstreamCalls.map((c) => c.attempt)).toEqual(
      Array.from({ length: (failure.times ?? 1) + 1 }, (_, i) => i),
    );
  });
});

describe('retry backoff', () => {
  it('full jitter: attempt n waits a random time up to base·2ⁿ, capped', () => {
    const options = { retries: 5, baseDelayMs: 100, maxDelayMs: 1_000 };
    expect([0, 1, 2, 3, 4].map((n) => backoffDelay(n, options, () => 1))).toEqual([
      100, 200, 400, 800, 1_000,
    ]);
    expect(backoffDelay(3, options, () => 0)).toBe(0);
    const spread = new Set(Array.from({ length: 50 }, () => backoffDelay(2, options)));
    expect(spread.size).toBeGreaterThan(10);
    expect(Math.max(...spread)).toBeLessThanOrEqual(400);
  });
});

describe('faults on a write endpoint', () => {
  it.each([
    ['reset before answering', 'UPSTREAM_UNAVAILABLE', { reset: true }],
    ['reset mid-body', 'UPSTREAM_UNAVAILABLE', { resetMidBody: true }],
    ['502 from a proxy', 'UPSTREAM_UNAVAILABLE', { status: 502, raw: 'Bad gateway' }],
    ['503 with a Misskey envelope', 'UPSTREAM_ERROR', { status: 503, body: internalError }],
    ['hang', 'UPSTREAM_TIMEOUT', { hang: true }],
    [
      '429',
      'RATE_LIMITED',
      {
        status: 429,
        headers: { 'retry-after': '3' },
        body: {
          error: {
            message: 'Rate limit exceeded.',
            code: 'RATE_LIMIT_EXCEEDED',
            id: 'd5826d14-3982-4d2e-8011-b9e9f02499ef',
            kind: 'client',
          },
        },
      },
    ],
  ] as const)('%s: attempted exactly once → %s', async (_name, code, failure) => {
    stack.sandbox.fail('chat/read-all', failure);
    const res = await stack.gql(WRITE);
    expect(codeOf(res)).toBe(code);
    expectClean(res);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(stack.sandbox.callCount('chat/read-all')).toBe(1);
  });
});

describe('Misskey down', () => {
  it('connection refused → UPSTREAM_UNAVAILABLE; a read is tried 3 times, a write once', async () => {
    const port = await new Promise<number>((resolve) => {
      const server = createServer();
      server.listen(0, '127.0.0.1', () => {
        const address = server.address();
        server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
      });
    });
    const calls: UpstreamCallEvent[] = [];
    const gateway = await createGateway({
      misskeyUrl: `http://127.0.0.1:${port}`,
      port: 0,
      upstreamRetryDelayMs: 5,
      breakerFailures: 0,
      onUpstreamCall: (event) => calls.push(event),
    });
    try {
      const ask = async (query: string) =>
        (await (
          await fetch(gateway.url, {
            method: 'POST',
            headers: {
              'content-type': 'application/json',
              authorization: `Bearer ${DEMO_TOKENS.alice}`,
            },
            body: JSON.stringify({ query }),
          })
        ).json()) as GraphQLResponse;
      const read = await ask(ME);
      expect(codeOf(read)).toBe('UPSTREAM_UNAVAILABLE');
      expectClean(read);
      expect(calls.map((c) => [c.endpoint, c.attempt])).toEqual([
        ['i', 0],
        ['i', 1],
        ['i', 2],
      ]);
      calls.length = 0;
      const write = await ask(WRITE);
      expect(codeOf(write)).toBe('UPSTREAM_UNAVAILABLE');
      expect(calls.map((c) => c.endpoint)).toEqual(['chat/read-all']);
      expect((await fetch(`${gateway.origin}/ready`)).status).toBe(503);
    } finally {
      await gateway.close();
    }
  });
});

describe('circuit breaker', () => {
  let breaker: Stack;
  beforeAll(async () => {
    breaker = await startStack({
      gateway: { breakerFailures: 3, breakerCooldownMs: 300, upstreamRetries: 0 },
    });
  });

  async function breakerGauge(): Promise<number> {
    const text = await (await fetch(`${breaker.gateway.origin}/metrics`)).text();
    return Number(/^misskey_upstream_breaker_state (\d)/m.exec(text)?.[1]);
  }

  it('opens after 3 failures, fails fast without calling, and closes after a good probe', async () => {
    breaker.sandbox.fail('i', { status: 503, raw: 'maintenance' });
    for (let i = 0; i < 3; i++) {
      expect(codeOf(await breaker.gql(ME, {}, TAKING_TURNS[i % 2]))).toBe('UPSTREAM_UNAVAILABLE');
    }
    expect(breaker.sandbox.callCount('i')).toBe(3);
    expect(breaker.gateway.client.breakerState).toBe('open');
    expect(await breakerGauge()).toBe(2);

    const started = performance.now();
    const fast = await breaker.gql(ME);
    expect(performance.now() - started).toBeLessThan(100);
    expect(fast.errors?.[0]?.extensions).toMatchObject({
      code: 'UPSTREAM_UNAVAILABLE',
      circuit: 'open',
    });
    expect(fast.errors?.[0]?.extensions?.retryAfter).toBeGreaterThanOrEqual(1);
    expect(breaker.sandbox.callCount('i')).toBe(3);
    expect((await fetch(`${breaker.gateway.origin}/ready`)).status).toBe(503);
    expect(breaker.sandbox.callCount('meta')).toBe(0);

    // Misskey is back; after the cooldown one probe goes through and closes the breaker.
    breaker.sandbox.clearFailures();
    await new Promise((resolve) => setTimeout(resolve, 350));
    expect(breaker.gateway.client.breakerState).toBe('half-open');
    const probe = await breaker.gql(ME);
    expect(probe.errors).toBeUndefined();
    expect(breaker.gateway.client.breakerState).toBe('closed');
    expect(await breakerGauge()).toBe(0);
    expect((await fetch(`${breaker.gateway.origin}/ready`)).status).toBe(200);
  });

  it('a failed probe opens it again at once; Misskey 4xx answers count as healthy', async () => {
    breaker.sandbox.resetCalls();
    breaker.sandbox.fail('i', { reset: true });
    for (let i = 0; i < 3; i++) {
      await breaker.gql(ME, {}, TAKING_TURNS[i % 2]);
    }
    expect(breaker.gateway.client.breakerState).toBe('open');
    await new Promise((resolve) => setTimeout(resolve, 350));
    expect(codeOf(await breaker.gql(ME))).toBe('UPSTREAM_UNAVAILABLE');
    expect(breaker.sandbox.callCount('i')).toBe(4);
    expect(breaker.gateway.client.breakerState).toBe('open');
    expect((await breaker.gql(ME)).errors?.[0]?.extensions?.circuit).toBe('open');
    expect(breaker.sandbox.callCount('i')).toBe(4);

    breaker.sandbox.clearFailures();
    await new Promise((resolve) => setTimeout(resolve, 350));
    // Unknown token: Misskey answers 401, which shows a live upstream.
    const refused = await breaker.gql(ME, {}, 'notARealToken123');
    expect(codeOf(refused)).toBe('UNAUTHENTICATED');
    expect(breaker.gateway.client.breakerState).toBe('closed');
  });
});

describe('what the breaker counts', () => {
  it('own timeouts count; calls cut by the operation deadline do not', async () => {
    const slowUpstream = await startStack({
      gateway: {
        breakerFailures: 2,
        upstreamTimeoutMs: 150,
        operationTimeoutMs: 5_000,
        upstreamRetries: 0,
      },
    });
    slowUpstream.sandbox.fail('i', { hang: true });
    for (let i = 0; i < 2; i++) {
      expect(codeOf(await slowUpstream.gql(ME, {}, TAKING_TURNS[i % 2]))).toBe('UPSTREAM_TIMEOUT');
    }
    expect(slowUpstream.gateway.client.breakerState).toBe('open');

    const impatient = await startStack({
      gateway: {
        breakerFailures: 2,
        upstreamTimeoutMs: 5_000,
        operationTimeoutMs: 150,
        upstreamRetries: 0,
      },
    });
    impatient.sandbox.fail('i', { hang: true });
    for (let i = 0; i < 3; i++) {
      expect(codeOf(await impatient.gql(ME, {}, TAKING_TURNS[i % 2]))).toBe('UPSTREAM_TIMEOUT');
    }
    expect(impatient.gateway.client.breakerState).toBe('closed');
    await Promise.all([slowUpstream.close(), impatient.close()]);
  });
});

describe('per-operation deadline', () => {
  let deadline: Stack;
  beforeAll(async () => {
    deadline = await startStack({
      gateway: {
        operationTimeoutMs: 300,
        upstreamTimeoutMs: 5_000,
        upstreamRetryDelayMs: 1,
        breakerFailures: 0,
      },
    });
  });

  it('a hanging upstream call is cut at the operation deadline, not the call timeout', async () => {
    deadline.sandbox.fail('i', { hang: true });
    const started = performance.now();
    const res = await deadline.gql(ME);
    const elapsed = performance.now() - started;
    expect(codeOf(res)).toBe('UPSTREAM_TIMEOUT');
    expect(elapsed).toBeGreaterThan(250);
    expect(elapsed).toBeLessThan(1_500);
    deadline.sandbox.clearFailures();
  });

  it('calls of the batch loaders (users/show, chat reads) are cut at the deadline as well', async () => {
    const demo = deadline.sandbox.demo;
    deadline.sandbox.fail('users/show', { hang: true });
    deadline.sandbox.fail('chat/rooms/show', { hang: true });
    const cases: [string, Record<string, unknown>][] = [
      // `description` is only in the detailed user: it goes to users/show, whatever is cached.
      ['query($id: ID!) { user(id: $id) { description } }', { id: demo?.users.bob.id }],
      ['query($id: ID!) { chatRoom(id: $id) { name } }', { id: demo?.ids.room }],
    ];
    for (const [query, variables] of cases) {
      const started = performance.now();
      const res = await deadline.gql(query, variables);
      const elapsed = performance.now() - started;
      expect(codeOf(res)).toBe('UPSTREAM_TIMEOUT');
      expect(elapsed).toBeGreaterThan(250);
      expect(elapsed).toBeLessThan(1_500);
    }
    deadline.sandbox.clearFailures();
  });

  it('retries stop at the deadline', async () => {
    deadline.sandbox.resetCalls();
    deadline.sandbox.fail('i', { reset: true, delayMs: 200 });
    const started = performance.now();
    const res = await deadline.gql(ME);
    expect(performance.now() - started).toBeLessThan(1_000);
    expect(['UPSTREAM_TIMEOUT', 'UPSTREAM_UNAVAILABLE']).toContain(codeOf(res));
    expect(deadline.sandbox.callCount('i')).toBeLessThanOrEqual(2);
    deadline.sandbox.clearFailures();
  });

  it('subscriptions-free queries within the deadline are untouched', async () => {
    deadline.sandbox.latencyMs = 100;
    const res = await deadline.gql(ME);
    expect(res.errors).toBeUndefined();
    deadline.sandbox.latencyMs = 0;
  });
});

describe('bounded upstream sockets', () => {
  let pool: Stack;
  beforeAll(async () => {
    pool = await startStack({
      gateway: {
        upstreamConnections: 8,
        upstreamTimeoutMs: 20_000,
        operationTimeoutMs: 30_000,
        // 1,000 concurrent connections from one test client: over MAX_CONNECTIONS_PER_IP.
        maxConnectionsPerIp: 0,
      },
    });
  });
  afterAll(async () => {
    await pool.close();
  });

  it('1,000 concurrent operations share at most UPSTREAM_CONNECTIONS sockets', async () => {
    pool.sandbox.latencyMs = 2;
    let most = 0;
    const sampler = setInterval(() => {
      most = Math.max(most, pool.gateway.client.sockets().connected);
    }, 2);
    const started = performance.now();
    const results = await Promise.all(
      Array.from({ length: 1_000 }, (_, i) =>
        pool.gql<{ me: { username: string } }>(
          '{ me { username } }',
          {},
          i % 2 ? DEMO_TOKENS.alice : DEMO_TOKENS.bob,
        ),
      ),
    );
    clearInterval(sampler);
    const ms = performance.now() - started;
    expect(results.filter((r) => r.errors)).toEqual([]);
    expect(pool.sandbox.callCount('i')).toBe(1_000);
    expect(most).toBeGreaterThan(0);
    expect(most).toBeLessThanOrEqual(8);
    console.log(`1,000 concurrent operations on ${most} upstream sockets in ${Math.round(ms)} ms`);
  });
});
