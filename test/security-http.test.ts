import { createServer, type IncomingHttpHeaders, request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { getIntrospectionQuery } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createGateway, type Gateway } from '../src/app/gateway.js';
import { loadConfig } from '../src/config.js';
import { post, WsClient } from './hardening-helpers.js';
import { DEMO_TOKENS, type Stack, startStack } from './harness.js';
import { until } from './support/until.js';

/**
 * The HTTP front under hostile input: metric series a client cannot grow, CORS, methods,
 * slow and numerous connections, introspection cost, and a readiness probe with its own deadline.
 */

let stack: Stack;
beforeAll(async () => {
  stack = await startStack({ gateway: { upstreamRetries: 0, breakerFailures: 0 } });
});
afterAll(() => stack.close());

interface Raw {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** One request with exactly these headers (fetch would add or refuse some, e.g. Origin). */
function raw(
  url: string,
  method: string,
  headers: Record<string, string> = {},
  body?: string,
): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(chunks).toString(),
        }),
      );
    });
    req.on('error', reject);
    req.end(body);
  });
}

const corsOf = (headers: IncomingHttpHeaders) =>
  Object.fromEntries(Object.entries(headers).filter(([name]) => name.startsWith('access-control')));

const JSON_POST = { 'content-type': 'application/json' };
const QUERY = JSON.stringify({ query: '{ __typename }' });

const scrape = async () => (await fetch(`${stack.gateway.origin}/metrics`)).text();

/** `count` anonymous operations, each with 30 fresh aliases of a field that fails without a
 *  token (nullable, so every alias is its own error with its own path). */
async function failingAliases(from: number, count: number): Promise<void> {
  for (let i = from; i < from + count; i += 4) {
    await Promise.all(
      [0, 1, 2, 3].map(async (k) => {
        const aliases = Array.from({ length: 30 }, (_, j) => `a${i + k}_${j}: inviteLimit`);
        const res = await post(stack.gateway.url, { query: `{ ${aliases.join(' ')} }` });
        expect(res.status).toBe(200);
      }),
    );
  }
}

describe('metric series stay bounded', () => {
  it('thousands of distinct aliases of a failing field add no series', async () => {
    await failingAliases(0, 4);
    const before = await scrape();
    await failingAliases(4, 100);
    const after = await scrape();
    // Values grew, series did not (bar the first scrape's own request duration).
    const series = (text: string) => text.split('\n').filter((l) => /^[a-z]/.test(l)).length;
    expect(series(after) - series(before)).toBeLessThanOrEqual(15);
    expect(after.length).toBeLessThan(before.length * 1.2);
    expect(after).not.toMatch(/path="/);
    expect(after).not.toContain('a77_');
    // The 3,120 errors were counted, in one series.
    const errors = /^graphql_envelop_error_result\{operationType="query",phase="execute"\} (\d+)/m;
    expect(Number(errors.exec(after)?.[1])).toBeGreaterThanOrEqual(3_120);
  });

  it("an upstream's odd statuses are counted by class, not one series each", async () => {
    for (let status = 520; status < 530; status++) {
      stack.sandbox.fail('i', { status, raw: 'odd', times: 1 });
      expect((await stack.gql('{ me { id } }')).errors).toBeDefined();
    }
    stack.sandbox.clearFailures();
    const text = await scrape();
    expect(text).toMatch(/^misskey_upstream_calls_total\{endpoint="i",[^}]*status="5xx"\} 10$/m);
    expect(text).not.toMatch(/status="52\d"/);
  });
});

describe('CORS', () => {
  const preflight = (url: string, origin: string) =>
    raw(url, 'OPTIONS', {
      origin,
      'access-control-request-method': 'POST',
      'access-control-request-headers': 'authorization, content-type',
    });

  it('by default any origin may call /graphql, answered as `*`, never with credentials', async () => {
    const res = await raw(
      stack.gateway.url,
      'POST',
      { ...JSON_POST, origin: 'https://a.example' },
      QUERY,
    );
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toEqual({ data: { __typename: 'Query' } });
    expect(corsOf(res.headers)).toEqual({
      'access-control-allow-origin': '*',
      'access-control-expose-headers': 'x-request-id, retry-after',
    });
    const pre = await preflight(stack.gateway.url, 'https://a.example');
    expect(pre.status).toBe(204);
    expect(corsOf(pre.headers)).toEqual({
      'access-control-allow-origin': '*',
      'access-control-allow-methods': 'GET, POST',
      'access-control-allow-headers':
        'authorization, content-type, x-request-id, x-graphql-yoga-csrf, apollo-require-preflight',
      'access-control-max-age': '600',
    });
  });

  it('the null origin is never allowed', async () => {
    const res = await raw(stack.gateway.url, 'POST', { ...JSON_POST, origin: 'null' }, QUERY);
    expect(res.status).toBe(200);
    expect(corsOf(res.headers)).toEqual({});
    expect(corsOf((await preflight(stack.gateway.url, 'null')).headers)).toEqual({});
  });

  it('/metrics, /health and /ready never carry CORS headers', async () => {
    for (const path of ['/metrics', '/health', '/ready']) {
      const url = `${stack.gateway.origin}${path}`;
      const res = await raw(url, 'GET', { origin: 'https://a.example' });
      expect(res.status).toBe(200);
      expect(corsOf(res.headers)).toEqual({});
      expect(corsOf((await preflight(url, 'https://a.example')).headers)).toEqual({});
    }
  });

  it('CORS_ORIGINS lists exact origins: only those are allowed, each answered as itself', async () => {
    const listed = await startStack({
      gateway: { corsOrigins: ['https://app.example', 'http://localhost:5173'] },
    });
    const url = listed.gateway.url;
    for (const origin of ['https://app.example', 'http://localhost:5173']) {
      const res = await raw(url, 'POST', { ...JSON_POST, origin }, QUERY);
      expect(res.headers['access-control-allow-origin']).toBe(origin);
      expect(res.headers.vary).toContain('Origin');
      const pre = await preflight(url, origin);
      expect(pre.status).toBe(204);
      expect(pre.headers['access-control-allow-origin']).toBe(origin);
      expect(pre.headers['access-control-allow-credentials']).toBeUndefined();
    }
    for (const origin of ['https://evil.example', 'https://app.example.evil', 'null']) {
      const res = await raw(url, 'POST', { ...JSON_POST, origin }, QUERY);
      expect(res.status).toBe(200);
      expect(corsOf(res.headers)).toEqual({});
      expect(res.headers.vary).toContain('Origin');
      const pre = await preflight(url, origin);
      expect(pre.status).toBe(204);
      expect(corsOf(pre.headers)).toEqual({});
    }
    await listed.close();
  });

  it('CORS_ORIGINS=none sends no CORS header at all', async () => {
    const none = await startStack({ gateway: { corsOrigins: 'none' } });
    const res = await raw(
      none.gateway.url,
      'POST',
      { ...JSON_POST, origin: 'https://a.example' },
      QUERY,
    );
    expect(res.status).toBe(200);
    expect(corsOf(res.headers)).toEqual({});
    const pre = await preflight(none.gateway.url, 'https://a.example');
    expect(pre.status).toBe(204);
    expect(corsOf(pre.headers)).toEqual({});
    await none.close();
  });

  it('CORS_ORIGINS is validated', () => {
    expect(loadConfig({}).corsOrigins).toBe('*');
    expect(loadConfig({ CORS_ORIGINS: 'none' }).corsOrigins).toBe('none');
    expect(
      loadConfig({ CORS_ORIGINS: 'https://app.example, http://localhost:5173' }).corsOrigins,
    ).toEqual(['https://app.example', 'http://localhost:5173']);
    for (const bad of [
      'null',
      'https://app.example/',
      'app.example',
      'https://a.example,*',
      'ftp://x.example',
      'https://a.example:443',
    ]) {
      expect(() => loadConfig({ CORS_ORIGINS: bad })).toThrow(/CORS_ORIGINS: .*exact origin/);
    }
  });
});

describe('methods on /graphql', () => {
  it.each(['PUT', 'DELETE', 'PATCH'])(
    '%s: 405, Allow: GET, POST, a JSON error, nothing runs',
    async (method) => {
      stack.sandbox.resetCalls();
      const res = await raw(
        stack.gateway.url,
        method,
        { ...JSON_POST, authorization: `Bearer ${DEMO_TOKENS.alice}` },
        JSON.stringify({ query: 'mutation { markAllChatMessagesRead }' }),
      );
      expect(res.status).toBe(405);
      expect(res.headers.allow).toBe('GET, POST');
      expect(res.headers['content-type']).toMatch(/^application\/json/);
      expect(JSON.parse(res.body)).toEqual({
        errors: [
          {
            message: 'Only GET and POST are allowed on /graphql.',
            extensions: { code: 'BAD_REQUEST' },
          },
        ],
      });
      expect(stack.sandbox.callCount()).toBe(0);
    },
  );
});

/** A raw TCP connection to the gateway from `localAddress` (127.0.0.x: a distinct client). */
interface Conn {
  socket: Socket;
  received: () => string;
  /** Ms from connect to close. */
  closed: Promise<number>;
}

function open(origin: string, localAddress = '127.0.0.1'): Promise<Conn> {
  const { hostname, port } = new URL(origin);
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const socket = connect({ host: hostname, port: Number(port), localAddress });
    let text = '';
    socket.on('data', (chunk) => {
      text += chunk.toString();
    });
    socket.on('error', () => {});
    const closed = new Promise<number>((done) =>
      socket.once('close', () => done(Date.now() - started)),
    );
    socket.once('connect', () => resolve({ socket, received: () => text, closed }));
    socket.once('error', reject);
  });
}

const GET_HEALTH = 'GET /health HTTP/1.1\r\nHost: x\r\n\r\n';

/** Sends `text` one byte every `everyMs` until it is sent or the socket closes. */
function dribble(socket: Socket, text: string, everyMs: number): void {
  let sent = 0;
  const timer = setInterval(() => {
    if (sent >= text.length || socket.destroyed) {
      clearInterval(timer);
      return;
    }
    socket.write(text[sent++] ?? '');
  }, everyMs);
}

describe('slow clients (headers 500 ms, request 1 s)', () => {
  let slow: Stack;
  beforeAll(async () => {
    slow = await startStack({
      gateway: { httpHeadersTimeoutMs: 500, httpRequestTimeoutMs: 1_000 },
    });
  });
  afterAll(() => slow.close());

  it('a byte-by-byte header sender is cut with 408', async () => {
    const conn = await open(slow.gateway.origin);
    // 200 bytes at one per 40 ms would take 8 s.
    dribble(
      conn.socket,
      `GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ${'a'.repeat(160)}\r\n\r\n`,
      40,
    );
    const lived = await conn.closed;
    expect(lived).toBeGreaterThanOrEqual(450);
    expect(lived).toBeLessThan(1_500);
    expect(conn.received()).toMatch(/^HTTP\/1\.1 408/);
  });

  it('a silent connection is cut, and so is a body sent byte by byte', async () => {
    const silent = await open(slow.gateway.origin);
    expect(await silent.closed).toBeLessThan(1_500);
    const body = await open(slow.gateway.origin);
    body.socket.write(
      'POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n',
    );
    dribble(body.socket, ' '.repeat(200), 40);
    const lived = await body.closed;
    expect(lived).toBeGreaterThanOrEqual(950);
    expect(lived).toBeLessThan(2_000);
  });

  it('a response may outlive the request timeout: an SSE subscription still delivers after 2.5 s', async () => {
    const controller = new AbortController();
    const res = await fetch(slow.gateway.url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'text/event-stream',
        authorization: `Bearer ${DEMO_TOKENS.bob}`,
      },
      body: JSON.stringify({ query: 'subscription { chatMessageReceived { text } }' }),
      signal: controller.signal,
    });
    expect(res.headers.get('content-type')).toContain('text/event-stream');
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    const bob = slow.sandbox.demo?.users.bob.id;
    await slow.sandbox.call(
      'chat/messages/create-to-user',
      { toUserId: bob, text: 'late but alive' },
      DEMO_TOKENS.alice,
    );
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    let text = '';
    while (!text.includes('late but alive')) {
      const { value, done } = await reader.read();
      if (done) {
        break;
      }
      text += new TextDecoder().decode(value);
    }
    expect(text).toContain('late but alive');
    controller.abort();
  });
});

describe('connections per client address (cap 3)', () => {
  it('the 4th connection from one address is refused at once; other addresses are served', async () => {
    const capped = await startStack({ gateway: { maxConnectionsPerIp: 3 } });
    const origin = capped.gateway.origin;
    // Two idle keep-alive connections and a websocket (an upgraded HTTP connection counts too).
    const held = [await open(origin), await open(origin)];
    for (const conn of held) {
      conn.socket.write(GET_HEALTH);
    }
    const ws = new WsClient(capped.gateway.url);
    await ws.open();
    const refused = await open(origin);
    refused.socket.write(GET_HEALTH);
    expect(await refused.closed).toBeLessThan(500);
    expect(refused.received()).toBe('');
    // Another address has its own count.
    const other = await open(origin, '127.0.0.2');
    other.socket.write(GET_HEALTH);
    await until(() => other.received().includes('200 OK'));
    expect(held.every((conn) => conn.received().includes('200 OK'))).toBe(true);
    // A closed connection frees its place.
    ws.close();
    await ws.closed;
    const again = await open(origin);
    again.socket.write(GET_HEALTH);
    await until(() => again.received().includes('200 OK'));
    // The refusal is counted (asked from the other address: this one is full again).
    other.socket.write('GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n');
    await until(() => other.received().includes('gateway_connections_refused_total 1'));
    for (const conn of [...held, other, again]) {
      conn.socket.destroy();
    }
    await capped.close();
  });

  it('with TRUST_PROXY the cap is off: every connection comes from the proxy', async () => {
    const proxied = await startStack({ gateway: { maxConnectionsPerIp: 3, trustProxy: true } });
    const conns = await Promise.all(Array.from({ length: 6 }, () => open(proxied.gateway.origin)));
    for (const conn of conns) {
      conn.socket.write(GET_HEALTH);
    }
    await until(() => conns.every((conn) => conn.received().includes('200 OK')));
    for (const conn of conns) {
      conn.socket.destroy();
    }
    await proxied.close();
  });
});

describe('HTTP front configuration', () => {
  it('reads and validates the timeouts and the connection cap', () => {
    expect(loadConfig({})).toMatchObject({
      httpHeadersTimeoutMs: 10_000,
      httpRequestTimeoutMs: 30_000,
      maxConnectionsPerIp: 256,
    });
    expect(
      loadConfig({
        HTTP_HEADERS_TIMEOUT_MS: '2000',
        HTTP_REQUEST_TIMEOUT_MS: '5000',
        MAX_CONNECTIONS_PER_IP: '0',
      }),
    ).toMatchObject({
      httpHeadersTimeoutMs: 2_000,
      httpRequestTimeoutMs: 5_000,
      maxConnectionsPerIp: 0,
    });
    expect(() => loadConfig({ HTTP_HEADERS_TIMEOUT_MS: '20' })).toThrow(/HTTP_HEADERS_TIMEOUT_MS/);
    expect(() => loadConfig({ HTTP_REQUEST_TIMEOUT_MS: 'soon' })).toThrow(
      /HTTP_REQUEST_TIMEOUT_MS/,
    );
    expect(() => loadConfig({ MAX_CONNECTIONS_PER_IP: '-1' })).toThrow(/MAX_CONNECTIONS_PER_IP/);
    expect(() =>
      loadConfig({ HTTP_HEADERS_TIMEOUT_MS: '40000', HTTP_REQUEST_TIMEOUT_MS: '30000' }),
    ).toThrow(/HTTP_HEADERS_TIMEOUT_MS: must not exceed HTTP_REQUEST_TIMEOUT_MS/);
  });
});

describe('introspection cache', () => {
  let own: Stack;
  beforeAll(async () => {
    own = await startStack();
  });
  afterAll(() => own.close());
  const counters = async () => {
    const text = await (await fetch(`${own.gateway.origin}/metrics`)).text();
    const value = (pattern: RegExp) => Number(pattern.exec(text)?.[1] ?? 0);
    return {
      hit: value(/^gateway_introspection_cache_total\{outcome="hit"\} (\d+)/m),
      miss: value(/^gateway_introspection_cache_total\{outcome="miss"\} (\d+)/m),
      entries: value(/^gateway_introspection_cache_entries (\d+)/m),
    };
  };

  it('a repeated full introspection is answered from the cache, identically', async () => {
    const query = getIntrospectionQuery();
    const first = await post(own.gateway.url, { query, operationName: 'IntrospectionQuery' });
    expect(await counters()).toMatchObject({ hit: 0, miss: 1, entries: 1 });
    const second = await post(own.gateway.url, { query, operationName: 'IntrospectionQuery' });
    expect(await counters()).toMatchObject({ hit: 1, miss: 1, entries: 1 });
    expect(first.status).toBe(200);
    expect(second.text).toBe(first.text);
    expect(first.text.startsWith('{"data":{"__schema":{"queryType":{"name":"Query"')).toBe(true);
  });

  it('variables are part of the key; operations that read anything else are never cached', async () => {
    const before = await counters();
    const byName = 'query T($n: String!) { __type(name: $n) { name } }';
    const query = await post(own.gateway.url, { query: byName, variables: { n: 'Query' } });
    const mutation = await post(own.gateway.url, { query: byName, variables: { n: 'Mutation' } });
    expect(query.json).toEqual({ data: { __type: { name: 'Query' } } });
    expect(mutation.json).toEqual({ data: { __type: { name: 'Mutation' } } });
    const mixed = await own.gql('{ __typename me { username } }');
    expect(mixed.data).toEqual({ __typename: 'Query', me: { username: 'alice' } });
    const after = await counters();
    expect(after.miss - before.miss).toBe(2);
    expect(after.hit - before.hit).toBe(0);
  });

  it('distinct introspection documents never hold more than 64 entries', async () => {
    for (let i = 0; i < 100; i += 10) {
      await Promise.all(
        Array.from({ length: 10 }, (_, k) =>
          post(own.gateway.url, { query: `{ t${i + k}: __typename }` }),
        ),
      );
    }
    expect((await counters()).entries).toBe(64);
    // The newest stay: the last document is a hit.
    const before = await counters();
    await post(own.gateway.url, { query: '{ t99: __typename }' });
    expect((await counters()).hit - before.hit).toBe(1);
  });
});

describe('/ready has its own deadline', () => {
  let upstream: ReturnType<typeof createServer>;
  let gateway: Gateway;
  const hanging = new AbortController();
  beforeAll(async () => {
    // Accepts every request and never answers.
    upstream = createServer(() => {});
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    const { port } = upstream.address() as { port: number };
    gateway = await createGateway({
      misskeyUrl: `http://127.0.0.1:${port}`,
      port: 0,
      upstreamConnections: 1,
      upstreamTimeoutMs: 30_000,
      operationTimeoutMs: 30_000,
      upstreamRetries: 0,
      breakerFailures: 0,
      shutdownTimeoutMs: 500,
    });
  });
  afterAll(async () => {
    hanging.abort();
    await gateway.close();
    upstream.closeAllConnections();
    await new Promise((resolve) => upstream.close(resolve));
  });

  const timed = async (path: string) => {
    const started = Date.now();
    const res = await fetch(`${gateway.origin}${path}`, { signal: AbortSignal.timeout(5_000) });
    return { status: res.status, body: await res.json(), ms: Date.now() - started };
  };

  it('an upstream that never answers: /ready is 503 within 2.5 s, stuck calls reported; /health at once', async () => {
    // Two operations that hang: one holds the only upstream socket, one waits for it.
    for (let i = 0; i < 2; i++) {
      void fetch(gateway.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          authorization: `Bearer ${DEMO_TOKENS.alice}`,
        },
        body: JSON.stringify({ query: '{ me { id } }' }),
        signal: hanging.signal,
      }).catch(() => {});
    }
    await until(() => gateway.client.sockets().pending > 0);
    const [ready, health] = await Promise.all([timed('/ready'), timed('/health')]);
    expect(health).toMatchObject({ status: 200, body: { status: 'ok' } });
    expect(health.ms).toBeLessThan(300);
    expect(ready.status).toBe(503);
    expect(ready.body).toMatchObject({ status: 'upstream not ready', reason: 'timeout' });
    expect(ready.body.queued).toBeGreaterThanOrEqual(1);
    expect(ready.ms).toBeGreaterThanOrEqual(1_900);
    expect(ready.ms).toBeLessThan(2_500);
  });

  it('a pool so wedged that the probe never settles: /ready still answers 503 in time', async () => {
    const client = gateway.client as unknown as { call: () => Promise<never> };
    const call = client.call;
    client.call = () => new Promise<never>(() => {});
    try {
      const ready = await timed('/ready');
      expect(ready.status).toBe(503);
      expect(ready.body).toMatchObject({ status: 'upstream not ready', reason: 'timeout' });
      expect(ready.ms).toBeLessThan(2_500);
    } finally {
      client.call = call;
    }
  });
});
