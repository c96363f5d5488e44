import { connect } from 'node:net';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../src/observability/index.js';
import { post, WsClient } from './hardening-helpers.js';
import { DEMO_TOKENS, type Stack, startStack } from './harness.js';

/**
 * Credentials from clients are hostile until checked. Every kind of credential that cannot be a
 * Misskey token, sent over HTTP headers, `connection_init` payloads and per-operation
 * `extensions.headers`, is refused before any upstream call, and leaves the upstream pool, the
 * breaker, `/ready` and other users' service untouched.
 */

/** Log lines the gateway wrote (production logger at `info`). */
const lines: string[] = [];
const logSink = new Writable({
  write(chunk, _encoding, done) {
    lines.push(...String(chunk).split('\n').filter(Boolean));
    done();
  },
});

let stack: Stack;
beforeAll(async () => {
  stack = await startStack({
    gateway: {
      logger: createLogger('info', logSink),
      upstreamConnections: 4,
      limits: { wsMaxSocketsPerToken: 3, wsMaxSubscriptionsPerToken: 4, wsIdleWithoutTokenMs: 400 },
    },
  });
});
afterAll(() => stack.close());

/** Tokens that no HTTP header can carry, or that no Misskey token can be. */
const MALFORMED_TOKENS: unknown[] = [
  'a\r\nb',
  'a\nb',
  'a\u0000b',
  '✓',
  'tok\u00e9n',
  `${'x'.repeat(60_000)}`,
  'two words',
  'semi;colon',
  'quote"',
  42,
  { nested: 'object' },
  ['array'],
  true,
];
/** `authorization` values of a connection_init or an operation's headers. */
const MALFORMED_AUTHORIZATIONS: unknown[] = [
  ...MALFORMED_TOKENS.filter((t): t is string => typeof t === 'string').map((t) => `Bearer ${t}`),
  'Bearer',
  'Bearer ',
  'Basic YWxpY2U6c2VjcmV0',
  `Bearer ${DEMO_TOKENS.alice} extra`,
  7,
  {},
];

const upstream = () => stack.upstreamCalls.length;
const wsUrl = () => stack.gateway.url;

/** Sends one raw HTTP request (header bytes exactly as given) and reads the status code. */
function rawStatus(authorization: Buffer): Promise<number> {
  const { port } = new URL(stack.gateway.url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), '127.0.0.1');
    const body = JSON.stringify({ query: '{ me { id } }' });
    socket.on('connect', () => {
      socket.write(
        Buffer.concat([
          Buffer.from(
            `POST /graphql HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\nconnection: close\r\nauthorization: `,
          ),
          authorization,
          Buffer.from(`\r\n\r\n${body}`),
        ]),
      );
    });
    let answer = '';
    socket.on('data', (data) => {
      answer += data.toString('latin1');
    });
    socket.on('end', () => resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1] ?? 0)));
    socket.on('error', reject);
  });
}

async function meOf(token: string): Promise<{ ms: number; id: unknown }> {
  const started = performance.now();
  const res = await stack.gql<{ me: { id: string } }>('{ me { id } }', {}, token);
  return { ms: performance.now() - started, id: res.data?.me?.id };
}

describe('HTTP Authorization headers', () => {
  it('refuses every malformed Bearer credential with 401 UNAUTHENTICATED and no upstream call', async () => {
    const before = upstream();
    const headers = [
      'Bearer two words',
      'Bearer semi;colon',
      `Bearer ${'x'.repeat(8_000)}`,
      'Bearer',
      'Basic YWxpY2U6c2VjcmV0',
      `Bearer ${DEMO_TOKENS.alice} extra`,
      'Token abc',
    ];
    for (const authorization of headers) {
      const res = await post(
        stack.gateway.url,
        { query: '{ me { id } user(username: "bob") { id } }' },
        {
          authorization,
        },
      );
      expect(res.status, authorization.slice(0, 40)).toBe(401);
      expect(res.headers.get('www-authenticate')).toBe('Bearer error="invalid_token"');
      const body = res.json as unknown as { errors: { extensions: { code: string } }[] };
      expect(body.errors[0]?.extensions.code).toBe('UNAUTHENTICATED');
      // Never echoed back.
      expect(res.text).not.toContain(authorization.slice(7, 20) || '\u0000');
    }
    expect(upstream()).toBe(before);
  });

  it('refuses header bytes above U+00FF and control characters before any upstream call', async () => {
    const before = upstream();
    const raw = [
      Buffer.from('Bearer \u2713', 'utf8'),
      Buffer.from('Bearer tok\u00e9n', 'latin1'),
      Buffer.from('Bearer a\u0000b', 'latin1'),
      Buffer.from('Bearer a\u0007b', 'latin1'),
    ];
    for (const value of raw) {
      const status = await rawStatus(value);
      // 401 from the gateway, or 400 from Node's HTTP parser for bytes no header may hold.
      expect([400, 401], value.toString('hex')).toContain(status);
    }
    expect(upstream()).toBe(before);
  });

  it('still treats an empty Authorization header as no credential', async () => {
    const res = await post(stack.gateway.url, { query: '{ me { id } }' }, { authorization: '' });
    expect(res.status).toBe(200);
    const body = res.json as unknown as {
      errors: { path: string[]; extensions: { code: string } }[];
    };
    expect(body.errors[0]?.extensions.code).toBe('UNAUTHENTICATED');
    expect(body.errors[0]?.path).toEqual(['me']);
  });
});

describe('websocket credentials', () => {
  it('closes a connection_init with any malformed token with 4403, before any upstream call', async () => {
    const before = upstream();
    const payloads: Record<string, unknown>[] = [
      ...MALFORMED_TOKENS.map((token) => ({ token })),
      ...MALFORMED_AUTHORIZATIONS.map((authorization) => ({ authorization })),
      ...MALFORMED_AUTHORIZATIONS.map((Authorization) => ({ Authorization })),
    ];
    const codes = await Promise.all(
      payloads.map(async (payload) => {
        const ws = new WsClient(wsUrl());
        await ws.open();
        ws.send({ type: 'connection_init', payload });
        return ws.closed;
      }),
    );
    expect(new Set(codes)).toEqual(new Set([4403]));
    expect(upstream()).toBe(before);
    expect(stack.gateway.client.sockets().pending).toBe(0);
  });

  it("refuses malformed tokens in an operation's extensions.headers with 4403", async () => {
    const before = upstream();
    for (const authorization of MALFORMED_AUTHORIZATIONS) {
      const ws = new WsClient(wsUrl());
      await ws.init({});
      ws.send({
        id: '1',
        type: 'subscribe',
        payload: { query: '{ me { id } }', extensions: { headers: { authorization } } },
      });
      expect(await ws.closed).toBe(4403);
    }
    expect(upstream()).toBe(before);
  });

  it('after every kind of malformed credential, a valid user is served within 1 s and the pool is idle', async () => {
    await Promise.all(
      MALFORMED_TOKENS.map(async (token) => {
        const ws = new WsClient(wsUrl());
        await ws.open();
        ws.send({ type: 'connection_init', payload: { token } });
        await ws.closed;
      }),
    );
    const me = await meOf(DEMO_TOKENS.alice);
    expect(me.id).toBe(stack.sandbox.demo?.users.alice.id);
    expect(me.ms).toBeLessThan(1_000);
    expect(stack.gateway.client.sockets().pending).toBe(0);
    expect(stack.gateway.client.breakerState).toBe('closed');
    const ready = await fetch(`${stack.gateway.origin}/ready`);
    expect(ready.status).toBe(200);
  });

  it('keeps a valid user under 1 s p99 with the breaker closed during a sustained attack', async () => {
    const attackUntil = Date.now() + 3_000;
    let attacks = 0;
    const attacker = async () => {
      while (Date.now() < attackUntil) {
        const token = MALFORMED_TOKENS[attacks++ % MALFORMED_TOKENS.length];
        const ws = new WsClient(wsUrl());
        await ws.open();
        ws.send({ type: 'connection_init', payload: { token } });
        await ws.closed;
        await post(stack.gateway.url, { query: '{ me { id } }' }, { authorization: 'Bearer a b' });
      }
    };
    const latencies: number[] = [];
    const breakerStates = new Set<string>();
    const readyStatuses = new Set<number>();
    const user = async () => {
      while (Date.now() < attackUntil) {
        const me = await meOf(DEMO_TOKENS.bob);
        expect(me.id).toBe(stack.sandbox.demo?.users.bob.id);
        latencies.push(me.ms);
        breakerStates.add(stack.gateway.client.breakerState);
        readyStatuses.add((await fetch(`${stack.gateway.origin}/ready`)).status);
      }
    };
    await Promise.all([attacker(), attacker(), attacker(), user()]);
    latencies.sort((a, b) => a - b);
    const p99 = latencies[Math.floor(latencies.length * 0.99)] ?? Number.POSITIVE_INFINITY;
    expect(attacks).toBeGreaterThan(20);
    expect(p99).toBeLessThan(1_000);
    expect([...breakerStates]).toEqual(['closed']);
    expect([...readyStatuses]).toEqual([200]);
  });

  it('a flood of distinct well-formed bogus tokens opens no upstream socket and leaves no state', async () => {
    const sockets = stack.sandbox.streaming.socketCount();
    const codes = await Promise.all(
      Array.from({ length: 150 }, async (_, i) => {
        const ws = new WsClient(wsUrl());
        await ws.open();
        ws.send({ type: 'connection_init', payload: { token: `bogus${i}token${Date.now()}` } });
        return ws.closed;
      }),
    );
    expect(new Set(codes)).toEqual(new Set([4403]));
    expect(stack.sandbox.streaming.socketCount()).toBe(sockets);
    expect(stack.gateway.client.breakerState).toBe('closed');
    expect((await meOf(DEMO_TOKENS.alice)).id).toBe(stack.sandbox.demo?.users.alice.id);
  });

  it('never writes a credential to the logs', () => {
    expect(lines.length).toBeGreaterThan(0);
    for (const line of lines) {
      expect(() => JSON.parse(line)).not.toThrow();
      expect(line).not.toContain(DEMO_TOKENS.alice);
      expect(line).not.toContain(DEMO_TOKENS.bob);
    }
  });
});

describe('shares of the websocket front per token', () => {
  it('closes a token’s socket over WS_MAX_SOCKETS_PER_TOKEN with 4429; other tokens are unaffected', async () => {
    const held = [new WsClient(wsUrl()), new WsClient(wsUrl()), new WsClient(wsUrl())];
    for (const ws of held) {
      await ws.init({ token: DEMO_TOKENS.carol });
    }
    const fourth = new WsClient(wsUrl());
    await fourth.open();
    fourth.send({ type: 'connection_init', payload: { token: DEMO_TOKENS.carol } });
    expect(await fourth.closed).toBe(4429);
    const other = new WsClient(wsUrl());
    await other.init({ token: DEMO_TOKENS.bob });
    other.close();
    // A socket given back frees its place.
    held[0]?.close();
    await held[0]?.closed;
    const again = new WsClient(wsUrl());
    await again.init({ token: DEMO_TOKENS.carol });
    for (const ws of [...held, again]) {
      ws.close();
    }
  });

  it('refuses a token’s operation over WS_MAX_SUBSCRIPTIONS_PER_TOKEN across its sockets', async () => {
    const { bob } = stack.sandbox.demo?.users ?? {};
    const sockets = [new WsClient(wsUrl()), new WsClient(wsUrl())];
    for (const ws of sockets) {
      await ws.init({ token: DEMO_TOKENS.alice });
    }
    const query = 'subscription($u: ID!) { chatEvents(userId: $u) { __typename } }';
    for (let i = 0; i < 5; i++) {
      sockets[i % 2]?.subscribe(String(i), query, { u: bob?.id });
    }
    const errorsOf = () => sockets.flatMap((ws) => ws.messages.filter((m) => m.type === 'error'));
    const deadline = Date.now() + 5_000;
    while (errorsOf().length === 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
    // Exactly one of the five is over the share of four.
    expect(errorsOf()).toHaveLength(1);
    const errors = errorsOf()[0]?.payload as {
      extensions: { code: string; limit: { name: string } };
    }[];
    expect(errors[0]?.extensions.code).toBe('OPERATION_LIMIT_EXCEEDED');
    expect(errors[0]?.extensions.limit.name).toBe('subscriptionsPerToken');
    const refusedId = errorsOf()[0]?.id;
    // Completing one gives its place back.
    const running = ['0', '1', '2', '3', '4'].find((id) => id !== refusedId) ?? '0';
    sockets[Number(running) % 2]?.send({ id: running, type: 'complete' });
    await new Promise((resolve) => setTimeout(resolve, 100));
    sockets[0]?.subscribe('5', query, { u: bob?.id });
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(errorsOf()).toHaveLength(1);
    for (const ws of sockets) {
      ws.close();
      await ws.closed;
    }
  });

  it('closes a socket without a token that runs nothing with 4408; a socket with one stays', async () => {
    const anonymous = new WsClient(wsUrl());
    await anonymous.init({});
    const authenticated = new WsClient(wsUrl());
    await authenticated.init({ token: DEMO_TOKENS.alice });
    const started = Date.now();
    expect(await anonymous.closed).toBe(4408);
    expect(Date.now() - started).toBeLessThan(2_000);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(authenticated.closeCode).toBeNull();
    authenticated.close();
  });
});

describe('the stream hub is bounded in tokens', () => {
  it('refuses a new token past `stream.maxTokens` without opening an upstream socket', async () => {
    const small = await startStack({ gateway: { stream: { maxTokens: 2, idleCloseMs: 60_000 } } });
    const opened: WsClient[] = [];
    for (const token of [DEMO_TOKENS.alice, DEMO_TOKENS.bob]) {
      const ws = new WsClient(small.gateway.url);
      await ws.init({ token });
      opened.push(ws);
    }
    const third = new WsClient(small.gateway.url);
    await third.open();
    third.send({ type: 'connection_init', payload: { token: DEMO_TOKENS.carol } });
    expect(await third.closed).toBe(1013);
    const calls = small.upstreamCalls.filter((c) => c.endpoint === 'i').length;
    expect(calls).toBe(2);
    for (const ws of opened) {
      ws.close();
    }
    await small.close();
  });
});
