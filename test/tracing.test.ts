import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createClient } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { loadConfig } from '../src/config.js';
import { DEMO_TOKENS, type Stack, startStack } from './harness.js';

/** OpenTelemetry tracing (OTEL_EXPORTER_OTLP_ENDPOINT), exported to a small OTLP/HTTP receiver. */

interface ReceivedSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes: Record<string, unknown>;
}

type AnyValue = { stringValue?: string; intValue?: number | string; boolValue?: boolean };

/** An OTLP/HTTP JSON receiver on 127.0.0.1: every span POSTed to /v1/traces. */
function startReceiver(): Promise<{ server: Server; url: string; spans: ReceivedSpan[] }> {
  const spans: ReceivedSpan[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      if (req.url === '/v1/traces' && req.headers['content-type'] === 'application/json') {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        for (const resource of body.resourceSpans ?? []) {
          for (const scope of resource.scopeSpans ?? []) {
            for (const span of scope.spans ?? []) {
              const attributes: Record<string, unknown> = {};
              for (const { key, value } of span.attributes ?? []) {
                const v = value as AnyValue;
                attributes[key] =
                  v.stringValue ?? (v.intValue !== undefined ? Number(v.intValue) : v.boolValue);
              }
              spans.push({ ...span, parentSpanId: span.parentSpanId || undefined, attributes });
            }
          }
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      resolve({ server, url: `http://127.0.0.1:${port}`, spans });
    });
  });
}

let receiver: Awaited<ReturnType<typeof startReceiver>>;
let stack: Stack;
beforeAll(async () => {
  receiver = await startReceiver();
  stack = await startStack({
    gateway: { otlpEndpoint: receiver.url, otlpExportDelayMs: 50, upstreamRetryDelayMs: 1 },
  });
});
afterAll(async () => {
  await stack.close();
  await new Promise((resolve) => receiver.server.close(resolve));
});

const hex = (bytes: number) => randomBytes(bytes).toString('hex');

async function post(query: string, traceparent?: string) {
  const res = await fetch(stack.gateway.url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      authorization: `Bearer ${DEMO_TOKENS.alice}`,
      ...(traceparent ? { traceparent } : {}),
    },
    body: JSON.stringify({ query }),
  });
  return (await res.json()) as { data?: unknown; errors?: unknown[] };
}

/** The spans of one trace, once `count` of them (or more) have arrived. */
async function spansOf(traceId: string, count: number): Promise<ReceivedSpan[]> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const found = receiver.spans.filter((span) => span.traceId === traceId);
    if (found.length >= count || Date.now() > deadline) {
      return found;
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** The operation span named `name` that arrived last, waiting for it. */
async function operationSpan(name: string, before: number): Promise<ReceivedSpan> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const found = receiver.spans.slice(before).find((span) => span.name === name);
    if (found || Date.now() > deadline) {
      expect(found, `no span ${name}`).toBeDefined();
      return found as ReceivedSpan;
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** A graphql-ws client of alice whose websocket upgrade carries `traceparent`. */
function tracedClient(traceparent: string) {
  class TracedWebSocket extends WebSocket {
    constructor(address: string, protocols?: string | string[]) {
      super(address, protocols, { headers: { traceparent } });
    }
  }
  return createClient({
    url: stack.gateway.url.replace(/^http/, 'ws'),
    webSocketImpl: TracedWebSocket,
    connectionParams: { authorization: `Bearer ${DEMO_TOKENS.alice}` },
    retryAttempts: 0,
  });
}

describe('tracing over HTTP', () => {
  it("follows the client's traceparent: operation span, upstream child spans, traceparent to Misskey", async () => {
    const traceId = hex(16);
    const parentId = hex(8);
    const callsBefore = stack.sandbox.calls.length;
    const res = await post('query Me { me { username } }', `00-${traceId}-${parentId}-01`);
    expect(res).toEqual({ data: { me: { username: 'alice' } } });

    const spans = await spansOf(traceId, 2);
    const operation = spans.find((span) => span.name === 'query.Me');
    expect(operation).toMatchObject({ parentSpanId: parentId, kind: 2 });
    expect(operation?.attributes).toMatchObject({
      'graphql.execute.operationName': 'Me',
      'graphql.execute.operationType': 'query',
    });
    // The document is not recorded: it may hold what the client would not share.
    expect(operation?.attributes['graphql.execute.document']).toBeUndefined();

    const upstream = spans.filter((span) => span.name.startsWith('misskey '));
    expect(upstream.length).toBeGreaterThanOrEqual(1);
    for (const span of upstream) {
      expect(span.parentSpanId).toBe(operation?.spanId);
      expect(span.kind).toBe(3);
      expect(span.attributes).toMatchObject({
        'misskey.endpoint': expect.any(String),
        'http.response.status_code': 200,
        'misskey.attempt': 0,
      });
    }

    // Misskey (the sandbox) received each call's own span as its parent.
    const received = stack.sandbox.calls.slice(callsBefore).map((call) => call.traceparent);
    expect(received.length).toBe(upstream.length);
    expect(received.sort()).toEqual(
      upstream.map((span) => `00-${traceId}-${span.spanId}-01`).sort(),
    );
  });

  it('a retried upstream call has a span per attempt with its status and attempt number', async () => {
    const traceId = hex(16);
    stack.sandbox.fail('i', { status: 503, body: { error: { message: 'busy' } }, times: 1 });
    const res = await post('query Me { me { username } }', `00-${traceId}-${hex(8)}-01`);
    expect(res).toEqual({ data: { me: { username: 'alice' } } });
    const spans = await spansOf(traceId, 3);
    const attempts = spans
      .filter((span) => span.attributes['misskey.endpoint'] === 'i')
      .map((span) => [
        span.attributes['misskey.attempt'],
        span.attributes['http.response.status_code'],
      ])
      .sort();
    expect(attempts).toEqual([
      [0, 503],
      [1, 200],
    ]);
  });

  it.each([
    'garbage',
    `00-${'0'.repeat(32)}-${'a'.repeat(16)}-01`,
    `00-${'a'.repeat(32)}-${'0'.repeat(16)}-01`,
    `00-${'A'.repeat(32)}`,
  ])('a malformed traceparent (%s) is ignored: a new trace', async (traceparent) => {
    const before = receiver.spans.length;
    const res = await post('query MalformedParent { me { username } }', traceparent);
    expect(res.errors).toBeUndefined();
    const span = await operationSpan('query.MalformedParent', before);
    expect(span.parentSpanId).toBeUndefined();
    expect(span.traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(traceparent).not.toContain(span.traceId);
  });

  it('an unsampled traceparent (flags 00) is followed by no span at all', async () => {
    const unsampled = hex(16);
    const before = receiver.spans.length;
    await post('query Unsampled { me { username } }', `00-${unsampled}-${hex(8)}-00`);
    await post('query AfterUnsampled { me { username } }');
    // Spans are exported in order: once the later operation's span is in, the earlier would be.
    await operationSpan('query.AfterUnsampled', before);
    expect(receiver.spans.filter((span) => span.traceId === unsampled)).toEqual([]);
  });

  it('no traceparent: a new trace per operation', async () => {
    const before = receiver.spans.length;
    await post('query First { me { username } }');
    await post('query Second { me { username } }');
    const first = await operationSpan('query.First', before);
    const second = await operationSpan('query.Second', before);
    expect(first.parentSpanId).toBeUndefined();
    expect(first.traceId).not.toBe(second.traceId);
  });
});

describe('tracing over websockets', () => {
  it("follows the traceparent of the websocket's upgrade request", async () => {
    const traceId = hex(16);
    const parentId = hex(8);
    const client = tracedClient(`00-${traceId}-${parentId}-01`);
    try {
      const results: unknown[] = [];
      for await (const result of client.iterate({ query: 'query WsMe { me { username } }' })) {
        results.push(result);
      }
      expect(results).toEqual([{ data: { me: { username: 'alice' } } }]);
    } finally {
      await client.dispose();
    }
    const spans = await spansOf(traceId, 2);
    const operation = spans.find((span) => span.name === 'query.WsMe');
    expect(operation?.parentSpanId).toBe(parentId);
    expect(
      spans.some(
        (span) => span.name.startsWith('misskey ') && span.parentSpanId === operation?.spanId,
      ),
    ).toBe(true);
  });
});

describe('tracing subscriptions', () => {
  it('a subscription has one span, from subscribe to its end, under the upgrade traceparent', async () => {
    const traceId = hex(16);
    const parentId = hex(8);
    const client = tracedClient(`00-${traceId}-${parentId}-01`);
    const { alice, bob } = stack.sandbox.demo?.users ?? {};
    try {
      const events = client.iterate({
        query: 'subscription WsEvents($u: ID!) { chatEvents(userId: $u) { __typename } }',
        variables: { u: bob?.id },
      });
      const first = events.next();
      // The subscription is live once its upstream channel is connected.
      const deadline = Date.now() + 10_000;
      while (stack.sandbox.streaming.channelCount('chatUser', alice?.id) === 0) {
        expect(Date.now()).toBeLessThan(deadline);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      await stack.rest(
        'chat/messages/create-to-user',
        { toUserId: alice?.id, text: 'traced' },
        DEMO_TOKENS.bob,
      );
      expect((await first).value).toEqual({
        data: { chatEvents: { __typename: 'ChatMessageCreatedEvent' } },
      });
      await events.return?.(undefined);
    } finally {
      await client.dispose();
    }
    const spans = await spansOf(traceId, 1);
    const subscription = spans.find((span) => span.name === 'subscription.WsEvents');
    expect(subscription?.parentSpanId).toBe(parentId);
  });
});

describe('OTEL_EXPORTER_OTLP_ENDPOINT', () => {
  it('is an http(s) URL; unset means no tracing', () => {
    expect(loadConfig({}).otlpEndpoint).toBeNull();
    expect(
      loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://otel-collector:4318/' }).otlpEndpoint,
    ).toBe('http://otel-collector:4318');
    expect(() => loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318' })).toThrow(
      /^OTEL_EXPORTER_OTLP_ENDPOINT: /,
    );
  });

  it('unset, no tracing plugin is installed and no header is sent upstream', async () => {
    const plain = await startStack();
    expect(plain.gateway.tracing).toBeNull();
    const before = plain.sandbox.calls.length;
    await plain.gql('{ me { username } }');
    expect(plain.sandbox.calls.slice(before).every((call) => call.traceparent === undefined)).toBe(
      true,
    );
  });
});
