import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import { createGateway, type Gateway } from '../src/app/gateway.js';
import { MAX_BODY_BYTES } from '../src/upstream/response.js';
import { errorCode, type GraphQLResponse } from './harness.js';
import { until } from './support/until.js';

/**
 * A hostile upstream, faked on 127.0.0.1 (REST on /api/*, a websocket on /streaming), in front
 * of a real gateway: whatever it sends, clients get typed errors with stable codes, other
 * requests are answered meanwhile, and the process's memory stays bounded.
 */

const TOKEN = 'hostileUpstreamTest0123';
const ME = { id: 'u1', username: 'alice', host: null, name: null };
const MB = 1024 * 1024;

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/** Answers of the fake upstream per endpoint; `i` answers normally unless a test replaces it. */
const handlers = new Map<string, Handler>();
/** What the /streaming socket does with each new connection (by order of arrival). */
let onStreamingSocket: (ws: WebSocket, socket: Socket, nth: number) => void = () => {};
let streamingSockets = 0;

let upstream: Server;
let wss: WebSocketServer;
let gateway: Gateway;

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

beforeAll(async () => {
  upstream = createServer((req, res) => {
    req.resume();
    const endpoint = (req.url ?? '').replace(/^\/api\//, '');
    const handler = handlers.get(endpoint) ?? ((_q, r) => json(r, 200, endpoint === 'i' ? ME : {}));
    req.on('end', () => handler(req, res));
  });
  wss = new WebSocketServer({ noServer: true });
  upstream.on('upgrade', (req, socket, head) => {
    wss.handleUpgrade(req, socket as Socket, head, (ws) => {
      onStreamingSocket(ws, socket as Socket, ++streamingSockets);
    });
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  const { port } = upstream.address() as { port: number };
  gateway = await createGateway({
    misskeyUrl: `http://127.0.0.1:${port}`,
    port: 0,
    upstreamTimeoutMs: 1_500,
    operationTimeoutMs: 5_000,
    upstreamRetries: 0,
    breakerFailures: 0,
    stream: { backoff: { initialMs: 20, maxMs: 100 } },
  });
});
afterAll(async () => {
  await gateway.close();
  wss.close();
  upstream.closeAllConnections();
  await new Promise((resolve) => upstream.close(resolve));
});
beforeEach(() => {
  handlers.clear();
});

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json' }).end(text);
}

async function gql(query: string): Promise<GraphQLResponse> {
  const res = await fetch(gateway.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
    body: JSON.stringify({ query }),
  });
  return (await res.json()) as GraphQLResponse;
}

/** Streams `total` bytes of `piece`s lazily, as fast as the reader takes them, until the reader
 *  goes away; resolves with the bytes written. */
function streamLazily(res: ServerResponse, piece: Buffer, total: number): Promise<number> {
  return new Promise((resolve) => {
    let sent = 0;
    const pump = () => {
      while (sent < total && !res.destroyed) {
        sent += piece.length;
        if (!res.write(piece)) {
          res.once('drain', pump);
          return;
        }
      }
      if (!res.destroyed) {
        res.end();
      }
    };
    res.on('close', () => resolve(sent));
    pump();
  });
}

/**
 * Runs a hostile case: the query `hostile` must fail with `code` while `{ me { id } }` is
 * answered in time, and the process's resident memory must not grow by 100 MB at any moment.
 */
async function contained(hostile: string, code: string, maxMs: number): Promise<GraphQLResponse> {
  gc();
  const baseline = process.memoryUsage().rss;
  let peak = baseline;
  const sampler = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss);
  }, 10);
  try {
    const started = performance.now();
    const pending = gql(hostile);
    await new Promise((resolve) => setTimeout(resolve, 50));
    const meStarted = performance.now();
    const me = await gql('{ me { id } }');
    expect(me.errors).toBeUndefined();
    expect(performance.now() - meStarted).toBeLessThan(500);
    const res = await pending;
    expect(performance.now() - started).toBeLessThan(maxMs);
    expect(errorCode(res)).toBe(code);
    expect(JSON.stringify(res).length).toBeLessThan(10_000);
    return res;
  } finally {
    clearInterval(sampler);
    peak = Math.max(peak, process.memoryUsage().rss);
    console.info(`${hostile}: peak RSS +${Math.round((peak - baseline) / MB)} MB`);
    expect(peak - baseline).toBeLessThan(100 * MB);
  }
}

const HASHTAG = (tag: string) => `{ hashtag(tag: "${tag}") { tag } }`;

describe('hostile REST answers', () => {
  it('a content-length of 10 GB is refused on the header', async () => {
    let sent = 0;
    handlers.set('hashtags/show', (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': 10 * 1024 ** 3 });
      void streamLazily(res, Buffer.alloc(64 * 1024, 0x20), 10 * 1024 ** 3).then((n) => {
        sent = n;
      });
    });
    await contained(HASHTAG('huge-length'), 'UPSTREAM_BAD_RESPONSE', 2_000);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(sent).toBeLessThan(64 * MB);
  });

  it('a 500 MB chunked body is cut past 16 MB and the reading stops', async () => {
    let sent: Promise<number> = Promise.resolve(0);
    handlers.set('hashtags/show', (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      sent = streamLazily(res, Buffer.alloc(64 * 1024, 0x20), 500 * MB);
    });
    await contained(HASHTAG('chunked'), 'UPSTREAM_BAD_RESPONSE', 5_000);
    const written = await sent;
    expect(written).toBeGreaterThan(MAX_BODY_BYTES);
    expect(written).toBeLessThan(MAX_BODY_BYTES + 32 * MB);
  });

  it('an endless slow body ends at the call deadline', async () => {
    handlers.set('hashtags/show', (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"tag":"');
      const drip = setInterval(() => res.write('a'), 20);
      res.on('close', () => clearInterval(drip));
    });
    const started = performance.now();
    await contained(HASHTAG('slow'), 'UPSTREAM_TIMEOUT', 3_000);
    expect(performance.now() - started).toBeGreaterThan(1_400);
  });

  it('invalid JSON', async () => {
    handlers.set('hashtags/show', (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"tag": "x", nope');
    });
    await contained(HASHTAG('invalid'), 'UPSTREAM_BAD_RESPONSE', 2_000);
  });

  it('JSON nested 100,000 levels deep', async () => {
    handlers.set('hashtags/show', (_req, res) => {
      res
        .writeHead(200, { 'content-type': 'application/json' })
        .end(`{"tag":${'['.repeat(100_000)}${']'.repeat(100_000)}}`);
    });
    await contained(HASHTAG('deep'), 'UPSTREAM_BAD_RESPONSE', 2_000);
  });

  it('a 10 MB Misskey error message is not relayed', async () => {
    handlers.set('hashtags/show', (_req, res) => {
      json(res, 400, {
        error: {
          code: 'INVALID_PARAM',
          id: '3d81ceae-475f-4600-b2a8-2bc116157532',
          message: 'm'.repeat(10 * MB),
          kind: 'client',
          info: { param: 'i'.repeat(3 * MB) },
        },
      });
    });
    const res = await contained(HASHTAG('long-error'), 'BAD_USER_INPUT', 3_000);
    expect(res.errors?.[0]?.extensions?.misskey).toMatchObject({ code: 'INVALID_PARAM' });
  });

  it('a 1,000,000-item list is cut to what was asked', async () => {
    handlers.set('hashtags/search', (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(`[${Array.from({ length: 1_000_000 }, () => '"t"').join(',')}]`);
    });
    const res = await gql('{ hashtagSuggestions(query: "t", first: 10) }');
    expect(res.errors).toBeUndefined();
    expect(res.data).toEqual({ hashtagSuggestions: Array(10).fill('t') });

    const item = (n: number) =>
      JSON.stringify({
        tag: `t${n}`,
        mentionedUsersCount: 1,
        mentionedLocalUsersCount: 1,
        mentionedRemoteUsersCount: 0,
        attachedUsersCount: 0,
        attachedLocalUsersCount: 0,
        attachedRemoteUsersCount: 0,
      });
    handlers.set('hashtags/list', (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(`[${Array.from({ length: 50_000 }, (_, n) => item(n)).join(',')}]`);
    });
    const list = await gql('{ hashtags(first: 10) { tag } }');
    expect(list.errors).toBeUndefined();
    expect(list.data).toEqual({
      hashtags: Array.from({ length: 10 }, (_, n) => ({ tag: `t${n}` })),
    });
  });

  it('an object where a list belongs → UPSTREAM_BAD_RESPONSE', async () => {
    handlers.set('hashtags/trend', (_req, res) => json(res, 200, { not: 'a list' }));
    const res = await gql('{ trendingHashtags { tag } }');
    expect(errorCode(res)).toBe('UPSTREAM_BAD_RESPONSE');
    expect(res.errors?.[0]?.path).toEqual(['trendingHashtags']);
  });
});

describe('hostile streaming frames', () => {
  it('a 50 MB frame closes that upstream socket, which is reconnected', async () => {
    const closeCodes: number[] = [];
    let connectsSeen = 0;
    let sentBytes = () => 0;
    onStreamingSocket = (ws, socket, nth) => {
      ws.on('close', (code) => closeCodes.push(code));
      if (nth === 1) {
        sentBytes = sendHugeFrame(socket, 50 * MB);
        return;
      }
      ws.on('message', (data) => {
        const frame = JSON.parse(String(data)) as { type: string; body: { id: string } };
        if (frame.type === 'connect') {
          connectsSeen++;
          ws.send(JSON.stringify({ type: 'connected', body: { id: frame.body.id } }));
        }
      });
    };
    gc();
    const baseline = process.memoryUsage().rss;
    const client = new WebSocket(gateway.url.replace('http', 'ws'), 'graphql-transport-ws');
    const received: { type: string }[] = [];
    client.on('message', (data) => received.push(JSON.parse(String(data))));
    await new Promise((resolve) => client.on('open', resolve));
    client.send(JSON.stringify({ type: 'connection_init', payload: { token: TOKEN } }));
    await until(() => received.some((m) => m.type === 'connection_ack'));
    client.send(
      JSON.stringify({
        id: '1',
        type: 'subscribe',
        payload: { query: 'subscription { chatMessageReceived { id } }' },
      }),
    );
    await until(() => connectsSeen > 0);
    expect(closeCodes[0]).toBe(1009);
    expect(sentBytes()).toBeLessThan(8 * MB);
    expect(received.filter((m) => m.type === 'error' || m.type === 'complete')).toEqual([]);
    expect(process.memoryUsage().rss - baseline).toBeLessThan(100 * MB);
    client.close();
  });
});

/** Writes the header of an unmasked text frame of `size` bytes, then its payload lazily until
 *  the peer closes; returns how many payload bytes were written so far. */
function sendHugeFrame(socket: Socket, size: number): () => number {
  const header = Buffer.alloc(10);
  header[0] = 0x81;
  header[1] = 127;
  header.writeBigUInt64BE(BigInt(size), 2);
  let sent = 0;
  const piece = Buffer.alloc(64 * 1024, 0x61);
  socket.write(header);
  const pump = () => {
    while (sent < size && !socket.destroyed) {
      sent += piece.length;
      if (!socket.write(piece)) {
        socket.once('drain', pump);
        return;
      }
    }
  };
  pump();
  return () => sent;
}
