import type { DestinationStream } from 'pino';
import { beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../src/observability/index.js';
import { post, WsClient } from './hardening-helpers.js';
import { DEMO_TOKENS, type GraphQLResponse, type Stack, startStack } from './harness.js';

/**
 * Logs (pino JSON with request ids, no credential ever), Prometheus metrics, and the optional
 * gateway rate limit.
 */

const BOGUS = 'notARealTokenButSecret42';
const ALL_TOKENS = [...Object.values(DEMO_TOKENS), BOGUS];

function capture(): { lines: string[]; destination: DestinationStream } {
  const lines: string[] = [];
  return { lines, destination: { write: (line: string) => lines.push(line) } };
}

type LogLine = Record<string, unknown> & { msg?: string; reqId?: string; level: number };

describe('structured logs', () => {
  const { lines, destination } = capture();
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ gateway: { logger: createLogger('trace', destination) } });
  });
  const parsed = () => lines.map((line) => JSON.parse(line) as LogLine);

  it('every request has an id: echoed as X-Request-Id, on its access line and its upstream calls', async () => {
    const given = await post(
      stack.gateway.url,
      { query: '{ me { username } }' },
      { authorization: `Bearer ${DEMO_TOKENS.alice}`, 'x-request-id': 'client-chosen-id-1' },
    );
    expect(given.headers.get('x-request-id')).toBe('client-chosen-id-1');
    const minted = await post(
      stack.gateway.url,
      { query: '{ me { username } }' },
      {
        authorization: `Bearer ${DEMO_TOKENS.bob}`,
        'x-request-id': 'not a valid id: spaces and "quotes"',
      },
    );
    const id = minted.headers.get('x-request-id') ?? '';
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    await new Promise((resolve) => setTimeout(resolve, 20));

    for (const reqId of ['client-chosen-id-1', id]) {
      const mine = parsed().filter((line) => line.reqId === reqId);
      expect(mine.find((l) => l.msg === 'request')).toMatchObject({
        method: 'POST',
        path: '/graphql',
        status: 200,
        service: 'misskey-graphql',
      });
      expect(mine.find((l) => l.msg === 'upstream call')).toMatchObject({
        endpoint: 'i',
        status: 200,
        attempt: 0,
      });
    }
  });

  it('an unexpected error is masked for the client and logged in full with the request id', async () => {
    // Misskey answers with a shape the schema cannot serve: a bug-class failure.
    stack.sandbox.fail('i', { status: 200, body: { id: 'x', secret: 'shape-secret-7' }, times: 1 });
    const res = await post(
      stack.gateway.url,
      { query: '{ me { username } }' },
      { authorization: `Bearer ${DEMO_TOKENS.alice}`, 'x-request-id': 'masked-1' },
    );
    const body = res.json as GraphQLResponse;
    expect(res.status).toBe(200);
    expect(body.errors?.[0]).toMatchObject({
      message: 'Unexpected error.',
      extensions: { code: 'INTERNAL_SERVER_ERROR' },
    });
    expect(res.text).not.toContain('shape-secret-7');
    expect(res.text).not.toContain('stack');
    await new Promise((resolve) => setTimeout(resolve, 20));
    const logged = parsed().find((l) => l.reqId === 'masked-1' && l.level >= 50);
    expect(JSON.stringify(logged)).toContain('Cannot return null for non-nullable field');
  });

  it('no token ever reaches the logs, whatever the request', async () => {
    const auth = (token: string) => ({ authorization: `Bearer ${token}` });
    await post(stack.gateway.url, { query: '{ me { id } }' }, auth(BOGUS));
    await post(stack.gateway.url, { query: '{ me { id } }', variables: { i: BOGUS } }, auth(BOGUS));
    await post(
      stack.gateway.url,
      [{ query: '{ me { id } }' }, { query: '{ me { name } }' }],
      auth(DEMO_TOKENS.carol),
    );
    await fetch(`${stack.gateway.url}?query=${encodeURIComponent('{ me { id } }')}`, {
      headers: { ...auth(DEMO_TOKENS.admin), 'x-graphql-yoga-csrf': '1' },
    });
    await fetch(`${stack.gateway.url}?query=${encodeURIComponent('{ me { id } }')}`, {
      headers: auth(DEMO_TOKENS.bob),
    });
    stack.sandbox.fail('i', { reset: true, times: 3 });
    await post(stack.gateway.url, { query: '{ me { id } }' }, auth(DEMO_TOKENS.alice));
    stack.sandbox.fail('i', { status: 500, raw: `upstream said Bearer ${DEMO_TOKENS.alice}` });
    await post(stack.gateway.url, { query: '{ me { id } }' }, auth(DEMO_TOKENS.alice));
    stack.sandbox.clearFailures();
    const ws = new WsClient(stack.gateway.url);
    await ws.init({ authorization: `Bearer ${DEMO_TOKENS.bob}` });
    ws.subscribe('1', '{ me { username } }');
    await ws.result('1');
    ws.close();
    const bare = new WsClient(stack.gateway.url);
    await bare.init({ token: DEMO_TOKENS.carol });
    bare.subscribe('1', '{ me { username } }');
    await bare.result('1');
    bare.close();
    await new Promise((resolve) => setTimeout(resolve, 50));

    expect(lines.length).toBeGreaterThan(30);
    const all = lines.join('\n');
    for (const token of ALL_TOKENS) {
      expect(all).not.toContain(token);
    }
    for (const line of lines) {
      expect(() => JSON.parse(line)).not.toThrow();
    }
  });

  it('credential-shaped fields and text are redacted by the logger itself', () => {
    const own = capture();
    const logger = createLogger('info', own.destination);
    logger.info({ req: { headers: { authorization: `Bearer ${BOGUS}` } }, token: BOGUS }, 'x');
    logger.info({ connectionParams: { authorization: BOGUS } }, 'y');
    logger.error({ err: new Error(`failed with Bearer ${BOGUS}`) }, 'z');
    expect(own.lines).toHaveLength(3);
    expect(own.lines.join('\n')).not.toContain(BOGUS);
    expect(own.lines.join('\n')).toContain('[redacted]');
  });
});

describe('Prometheus /metrics', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ gateway: { breakerFailures: 0, upstreamRetries: 0 } });
  });
  const scrape = async () => (await fetch(`${stack.gateway.origin}/metrics`)).text();

  it('exposes operation, upstream, breaker, socket and websocket metrics', async () => {
    await stack.gql('{ me { id } }');
    stack.sandbox.fail('i', { status: 503, raw: 'down', times: 1 });
    await stack.gql('{ me { id } }');
    const text = await scrape();
    expect(text).toMatch(
      /^misskey_upstream_calls_total\{endpoint="i",outcome="ok",status="200"\} \d+/m,
    );
    expect(text).toMatch(
      /^misskey_upstream_calls_total\{endpoint="i",outcome="UpstreamBadResponseError",status="503"\} 1/m,
    );
    expect(text).toMatch(/^misskey_upstream_call_duration_seconds_count\{endpoint="i"\} \d+/m);
    expect(text).toMatch(/^misskey_upstream_breaker_state 0/m);
    expect(text).toMatch(/^misskey_upstream_open_sockets [1-9]/m);
    expect(text).toMatch(/^misskey_upstream_queued_requests 0/m);
    expect(text).toMatch(/^graphql_ws_active_subscriptions 0/m);
    expect(text).toMatch(/^graphql_ws_open_connections 0/m);
    expect(text).toMatch(
      /^gateway_http_request_duration_seconds_count\{route="\/graphql",status="200"\} \d+/m,
    );
    expect(text).toMatch(/^graphql_envelop_request\{operationType="query"\} \d+/m);
    // Every phase of Yoga's prometheus plugin, with the operation type as the only label.
    for (const histogram of [
      'graphql_envelop_phase_parse',
      'graphql_envelop_phase_validate',
      'graphql_envelop_phase_context',
      'graphql_envelop_phase_execute',
      'graphql_envelop_request_duration',
    ]) {
      expect(text).toContain(`# TYPE ${histogram} histogram`);
      expect(text).toMatch(new RegExp(`^${histogram}_count\\{operationType="query"\\} [1-9]`, 'm'));
    }
    expect(text).toMatch(
      /^graphql_envelop_request_time_summary_count\{operationType="query"\} [1-9]/m,
    );
    expect(text).toContain('# TYPE graphql_envelop_phase_subscribe histogram');
    expect(text).toContain('# TYPE graphql_envelop_error_result counter');
    expect(text).toContain('# TYPE misskey_upstream_refused_total counter');
    // Client-chosen names never become labels.
    expect(text).not.toContain('operationName');
  });

  it('counts running subscriptions and open websockets', async () => {
    const ws = new WsClient(stack.gateway.url);
    await ws.init({ authorization: `Bearer ${DEMO_TOKENS.alice}` });
    ws.subscribe('a', 'subscription { chatMessageReceived { id } }');
    ws.subscribe('b', 'subscription { chatMessageReceived { text } }');
    const gauge = async (name: string) =>
      Number(new RegExp(`^${name} (\\d+)`, 'm').exec(await scrape())?.[1]);
    const until = async (name: string, value: number) => {
      const deadline = Date.now() + 3_000;
      while ((await gauge(name)) !== value && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      return gauge(name);
    };
    expect(await until('graphql_ws_active_subscriptions', 2)).toBe(2);
    expect(await gauge('graphql_ws_open_connections')).toBe(1);
    ws.send({ id: 'a', type: 'complete' });
    expect(await until('graphql_ws_active_subscriptions', 1)).toBe(1);
    ws.close();
    await ws.closed;
    expect(await until('graphql_ws_active_subscriptions', 0)).toBe(0);
    expect(await until('graphql_ws_open_connections', 0)).toBe(0);
  });
});

describe('METRICS=false', () => {
  it('serves no /metrics', async () => {
    const stack = await startStack({ gateway: { metrics: false } });
    expect((await fetch(`${stack.gateway.origin}/metrics`)).status).toBe(404);
    expect((await stack.gql('{ me { id } }')).errors).toBeUndefined();
    expect(stack.gateway.metrics).toBeNull();
    await stack.close();
  });
});

describe('gateway rate limit (off by default)', () => {
  it('per token: over the budget → 429, Retry-After, RATE_LIMITED, no upstream call', async () => {
    const stack = await startStack({
      // A window long enough for a loaded machine to spend the budget inside it.
      gateway: { rateLimit: { perToken: 3, perIp: 0, windowMs: 3_000 } },
    });
    for (let i = 0; i < 3; i++) {
      expect((await stack.gql('{ me { id } }')).errors).toBeUndefined();
    }
    stack.sandbox.resetCalls();
    const refused = await post(
      stack.gateway.url,
      { query: '{ me { id } }' },
      { authorization: `Bearer ${DEMO_TOKENS.alice}` },
    );
    expect(refused.status).toBe(429);
    // Whole seconds until the window ends, at least 1.
    const wait = Number(refused.headers.get('retry-after'));
    expect(wait).toBeGreaterThanOrEqual(1);
    expect(wait).toBeLessThanOrEqual(3);
    expect((refused.json as GraphQLResponse).errors?.[0]?.extensions).toEqual({
      code: 'RATE_LIMITED',
      retryAfter: wait,
    });
    expect(stack.sandbox.callCount()).toBe(0);
    // Another token has its own budget; a batch counts every operation in it.
    const op = { query: '{ me { id } }' };
    const bob = { authorization: `Bearer ${DEMO_TOKENS.bob}` };
    expect((await post(stack.gateway.url, [op, op, op], bob)).status).toBe(200);
    expect((await post(stack.gateway.url, op, bob)).status).toBe(429);
    // Websocket operations share the token's budget.
    const ws = new WsClient(stack.gateway.url);
    await ws.init({ authorization: `Bearer ${DEMO_TOKENS.bob}` });
    ws.subscribe('1', '{ me { id } }');
    expect((await ws.result('1')).error).toMatchObject([{ extensions: { code: 'RATE_LIMITED' } }]);
    ws.close();
    // The window passes.
    await new Promise((resolve) => setTimeout(resolve, 3_050));
    expect((await stack.gql('{ me { id } }')).errors).toBeUndefined();
    const metrics = await (await fetch(`${stack.gateway.origin}/metrics`)).text();
    expect(metrics).toMatch(/^gateway_rate_limited_total 3/m);
    await stack.close();
  });

  it('per address: anonymous and authenticated callers from one address share its budget', async () => {
    const stack = await startStack({
      gateway: { rateLimit: { perToken: 0, perIp: 2, windowMs: 60_000 } },
    });
    expect((await post(stack.gateway.url, { query: '{ __typename }' })).status).toBe(200);
    expect((await stack.gql('{ me { id } }')).errors).toBeUndefined();
    const third = await post(stack.gateway.url, { query: '{ __typename }' });
    expect(third.status).toBe(429);
    expect(third.text).toContain('address');
    await stack.close();
  });

  it('is off by default', async () => {
    const stack = await startStack();
    const results = await Promise.all(
      Array.from({ length: 50 }, () => post(stack.gateway.url, { query: '{ __typename }' })),
    );
    expect(results.every((r) => r.status === 200)).toBe(true);
    await stack.close();
  });
});
