import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { answer, post, WsClient } from './hardening-helpers.js';
import { DEMO_TOKENS, type GraphQLResponse, type Stack, startStack } from './harness.js';

/**
 * Every operation limit refuses before execution: a clear OPERATION_LIMIT_EXCEEDED error naming
 * the limit, and not a single upstream call. One gateway with small limits (so the documents stay
 * readable) and one with the defaults.
 */

const LIMITS = {
  maxDepth: 5,
  maxAliases: 3,
  maxDirectives: 2,
  maxTokens: 200,
  maxFields: 50,
  maxDocumentBytes: 2_000,
  maxBatch: 3,
  maxBodyBytes: 4_096,
  wsMaxPayloadBytes: 4_096,
  wsMaxSubscriptions: 2,
  wsInitTimeoutMs: 300,
};

const AUTH = { authorization: `Bearer ${DEMO_TOKENS.alice}` };

let small: Stack;
let defaults: Stack;
beforeAll(async () => {
  [small, defaults] = await Promise.all([
    startStack({ gateway: { limits: LIMITS } }),
    startStack(),
  ]);
});
beforeEach(() => {
  small.sandbox.resetCalls();
  defaults.sandbox.resetCalls();
  small.sandbox.latencyMs = 0;
});

function limitOf(res: GraphQLResponse): { code?: unknown; name?: unknown } {
  const error = res.errors?.[0];
  return {
    code: error?.extensions?.code,
    name: (error?.extensions?.limit as { name?: string } | undefined)?.name,
  };
}

describe('operation limits (small limits)', () => {
  it.each([
    [
      'depth',
      '{ me { badgeRoles { name } avatarDecorations { id } } ownedChatRooms { edges { node { owner { emojis { name } } } } } }',
    ],
    ['aliases', '{ a: me { id } b: me { id } c: me { id } d: me { id } }'],
    ['directives', '{ me @include(if: true) { id @include(if: true) username @skip(if: false) } }'],
    ['tokens', `{ me { ${'id '.repeat(250)} } }`],
    ['fields', `{ me { ${'id '.repeat(60)} } }`],
    ['documentBytes', `{ me { id } } # ${'x'.repeat(2_100)}`],
  ])('%s over the limit: OPERATION_LIMIT_EXCEEDED and zero upstream calls', async (name, query) => {
    const res = await small.gql(query);
    expect(res.data).toBeUndefined();
    expect(limitOf(res)).toEqual({ code: 'OPERATION_LIMIT_EXCEEDED', name });
    expect(res.errors?.[0]?.message).toMatch(/limit/);
    expect(small.sandbox.callCount()).toBe(0);
  });

  it('operations just inside every limit run', async () => {
    const res = await small.gql(
      '{ a: me { id } b: me { username @include(if: true) } c: ownedChatRooms(first: 1) { edges { node { id } } } }',
    );
    expect(res.errors).toBeUndefined();
    expect(res.data?.a).toEqual({ id: small.sandbox.demo?.users.alice.id });
  });

  it('limits hold for the application/graphql-response+json media type with HTTP 400', async () => {
    const res = await post(
      small.gateway.url,
      { query: '{ a: me { id } b: me { id } c: me { id } d: me { id } }' },
      { ...AUTH, accept: 'application/graphql-response+json' },
    );
    expect(res.status).toBe(400);
    expect(limitOf(res.json as GraphQLResponse).code).toBe('OPERATION_LIMIT_EXCEEDED');
    expect(small.sandbox.callCount()).toBe(0);
  });

  it('a batch over MAX_BATCH is refused whole with 413; a batch within it runs', async () => {
    const op = { query: '{ me { id } }' };
    const over = await post(small.gateway.url, [op, op, op, op], AUTH);
    expect(over.status).toBe(413);
    expect(limitOf(over.json as GraphQLResponse)).toEqual({
      code: 'OPERATION_LIMIT_EXCEEDED',
      name: 'batch',
    });
    expect(small.sandbox.callCount()).toBe(0);

    const within = await post(small.gateway.url, [op, op, op], AUTH);
    expect(within.status).toBe(200);
    expect(within.json).toHaveLength(3);
  });

  it('a body over MAX_BODY_BYTES is 413 with content-length and when streamed chunked', async () => {
    const body = JSON.stringify({ query: '{ me { id } }', variables: { pad: 'x'.repeat(5_000) } });
    const sized = await post(small.gateway.url, body, AUTH);
    expect(sized.status).toBe(413);
    expect((sized.json as GraphQLResponse).errors?.[0]?.extensions?.code).toBe(
      'REQUEST_ENTITY_TOO_LARGE',
    );

    const bytes = new TextEncoder().encode(body);
    const chunked = await answer(
      await fetch(small.gateway.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...AUTH },
        body: new ReadableStream({
          start(controller) {
            for (let i = 0; i < bytes.length; i += 512) {
              controller.enqueue(bytes.slice(i, i + 512));
            }
            controller.close();
          },
        }),
        duplex: 'half',
      } as RequestInit),
    );
    expect(chunked.status).toBe(413);
    expect(small.sandbox.callCount()).toBe(0);
  });
});

describe('operation cost estimates upstream calls (default limits)', () => {
  const nested = (outer: number, inner: number) =>
    `{ ownedChatRooms(first: ${outer}) { edges { node { id messages(first: ${inner}) { edges { node { id text } } } } } } }`;

  it('a first: 100 connection inside a first: 100 connection is refused before any call', async () => {
    const res = await defaults.gql(nested(100, 100));
    expect(limitOf(res)).toEqual({ code: 'OPERATION_LIMIT_EXCEEDED', name: 'cost' });
    const limit = res.errors?.[0]?.extensions?.limit as { actual: number; max: number };
    expect(limit.actual).toBeGreaterThan(10_000);
    expect(limit.max).toBe(5_000);
    expect(defaults.sandbox.callCount()).toBe(0);
  });

  it('the cost follows variables, not only the document text', async () => {
    const query =
      'query($n: Int) { ownedChatRooms(first: $n) { edges { node { messages(first: $n) { edges { node { id } } } } } } }';
    const big = await defaults.gql(query, { n: 100 });
    expect(limitOf(big).name).toBe('cost');
    const fine = await defaults.gql(query, { n: 10 });
    expect(fine.errors).toBeUndefined();
    expect(fine.data?.ownedChatRooms).toBeDefined();
    expect(defaults.sandbox.callCount('chat/rooms/owned')).toBe(1);
  });

  it('a cost kept for one value of a variable is not reused for another', async () => {
    const query =
      'query($n: Int, $user: ID) { ownedChatRooms(first: $n) { edges { node { id messages(first: $n) { edges { node { id } } } } } } me { id } u: user(id: $user) { id } }';
    const me = (await defaults.gql('{ me { id } }')).data?.me as { id: string };
    for (const n of [10, 100, 10, 100]) {
      const res = await defaults.gql(query, { n, user: me.id });
      if (n === 100) {
        expect(limitOf(res).name).toBe('cost');
      } else {
        expect(res.errors).toBeUndefined();
      }
    }
    // An ID variable does not change the cost: another user, the same answer to the limits.
    const other = await defaults.gql(query, { n: 10, user: 'someoneelse0001' });
    expect(other.errors?.some((e) => e.extensions?.code === 'OPERATION_LIMIT_EXCEEDED')).not.toBe(
      true,
    );
  });

  it('a single first: 100 page and 20 aliases (the users test) stay allowed', async () => {
    const page = await defaults.gql(nested(10, 10));
    expect(page.errors).toBeUndefined();
    const fields = Array.from({ length: 20 }, (_, i) => `u${i}: me { id }`).join(' ');
    expect((await defaults.gql(`{ ${fields} }`)).errors).toBeUndefined();
  });

  it('introspection (what GraphiQL sends) is within the default limits', async () => {
    const { getIntrospectionQuery } = await import('graphql');
    const res = await defaults.gql(getIntrospectionQuery({ descriptions: true }));
    expect(res.errors).toBeUndefined();
    expect(res.data?.__schema).toBeDefined();
  });
});

describe('GraphQL over HTTP', () => {
  const query = encodeURIComponent('{ me { id } }');

  it('GET needs a CSRF header; with one it runs', async () => {
    const bare = await answer(
      await fetch(`${small.gateway.url}?query=${query}`, { headers: AUTH }),
    );
    expect(bare.status).toBe(403);
    expect((bare.json as GraphQLResponse).errors?.[0]?.extensions?.code).toBe('BAD_REQUEST');
    expect(bare.text).toContain('x-graphql-yoga-csrf');
    expect(small.sandbox.callCount()).toBe(0);

    const ok = await answer(
      await fetch(`${small.gateway.url}?query=${query}`, {
        headers: { ...AUTH, 'x-graphql-yoga-csrf': '1' },
      }),
    );
    expect(ok.status).toBe(200);
    expect((ok.json as GraphQLResponse).data?.me).toBeDefined();
  });

  it('text/plain and form POSTs (no preflight in a browser) are refused without the header', async () => {
    for (const type of ['text/plain', 'application/x-www-form-urlencoded']) {
      const res = await post(small.gateway.url, '{"query":"{ me { id } }"}', {
        ...AUTH,
        'content-type': type,
      });
      expect(res.status).toBe(403);
    }
    expect(small.sandbox.callCount()).toBe(0);
  });

  it('a mutation over GET is 405 and never runs', async () => {
    const res = await answer(
      await fetch(
        `${small.gateway.url}?query=${encodeURIComponent('mutation { markAllChatMessagesRead }')}`,
        { headers: { ...AUTH, 'x-graphql-yoga-csrf': '1' } },
      ),
    );
    expect(res.status).toBe(405);
    expect(res.headers.get('allow')).toBe('POST');
    expect(small.sandbox.callCount()).toBe(0);
  });
});

describe('websocket limits', () => {
  it('limits and parse errors answer like HTTP and leave the socket open', async () => {
    const ws = new WsClient(small.gateway.url);
    await ws.init({ authorization: `Bearer ${DEMO_TOKENS.alice}` });
    small.sandbox.resetCalls();
    // One at a time: this socket may run two operations at once.
    ws.subscribe('1', '{ a: me { id } b: me { id } c: me { id } d: me { id } }');
    const aliases = await ws.result('1');
    ws.subscribe('2', '{ me { ');
    const syntax = await ws.result('2');
    ws.subscribe('3', '{ me { username } }');
    const fine = await ws.result('3');
    const [aliasError] = aliases.error as { extensions: Record<string, unknown> }[];
    expect(aliasError?.extensions).toEqual({
      code: 'OPERATION_LIMIT_EXCEEDED',
      limit: { name: 'aliases', max: 3, actual: 4 },
    });
    const [syntaxError] = syntax.error as { extensions: Record<string, unknown> }[];
    expect(syntaxError?.extensions?.code).toBe('GRAPHQL_PARSE_FAILED');
    expect(fine.next[0]?.data).toEqual({ me: { username: 'alice' } });
    expect(ws.closeCode).toBeNull();
    expect(small.sandbox.callCount('i')).toBe(1);
    ws.close();
  });

  it('the same error model over HTTP and websockets', async () => {
    // (Without a token the websocket side closes the socket with 4403 instead: its own rule.)
    const cases: [string, string | null][] = [
      ['{ a: me { id } b: me { id } c: me { id } d: me { id } }', DEMO_TOKENS.alice],
      ['{ me { ', DEMO_TOKENS.alice],
      ['{ me { noSuchField } }', DEMO_TOKENS.alice],
      ['{ ownedChatRooms(first: 500) { edges { node { id } } } }', DEMO_TOKENS.alice],
      ['{ me { id } }', DEMO_TOKENS.alice],
    ];
    const codes = (errors: unknown) =>
      ((errors ?? []) as { extensions?: Record<string, unknown> }[]).map((e) => e.extensions);
    for (const [i, [query, token]] of cases.entries()) {
      const failure = {
        status: 500,
        body: { error: { message: 'x', code: 'INTERNAL_ERROR', id: 'y', kind: 'server' } },
        times: 1,
      };
      if (i === cases.length - 1) {
        small.sandbox.fail('i', failure);
      }
      const http = await small.gql(query, {}, token);
      const ws = new WsClient(small.gateway.url);
      await ws.init(token ? { authorization: `Bearer ${token}` } : {});
      if (i === cases.length - 1) {
        small.sandbox.fail('i', failure);
      }
      ws.subscribe('1', query);
      const { next, error } = await ws.result('1');
      ws.close();
      const overWs = codes(error ?? next[0]?.errors);
      expect(overWs.length, query).toBeGreaterThan(0);
      expect(overWs, query).toEqual(codes(http.errors));
    }
  });

  it(`at most WS_MAX_SUBSCRIPTIONS operations run on one socket`, async () => {
    small.sandbox.latencyMs = 300;
    const ws = new WsClient(small.gateway.url);
    await ws.init({ authorization: `Bearer ${DEMO_TOKENS.alice}` });
    ws.subscribe('a', '{ me { id } }');
    ws.subscribe('b', '{ me { id } }');
    ws.subscribe('c', '{ me { id } }');
    const third = await ws.result('c');
    expect(third.error).toMatchObject([
      {
        extensions: { code: 'OPERATION_LIMIT_EXCEEDED', limit: { name: 'subscriptions', max: 2 } },
      },
    ]);
    expect((await ws.result('a')).next[0]?.data).toBeDefined();
    expect((await ws.result('b')).next[0]?.data).toBeDefined();
    // The slots are free again.
    small.sandbox.latencyMs = 0;
    ws.subscribe('d', '{ me { id } }');
    expect((await ws.result('d')).next[0]?.data).toBeDefined();
    ws.close();
  });

  it('a socket that never sends connection_init is closed with 4408', async () => {
    const ws = new WsClient(small.gateway.url);
    await ws.open();
    const started = Date.now();
    expect(await ws.closed).toBe(4408);
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it('a message over WS_MAX_PAYLOAD_BYTES closes the socket with 1009 before it is read', async () => {
    const ws = new WsClient(small.gateway.url);
    await ws.init({});
    ws.subscribe('big', `{ me { id } } # ${'x'.repeat(5_000)}`);
    expect(await ws.closed).toBe(1009);
    expect(small.sandbox.callCount()).toBe(0);
  });
});
