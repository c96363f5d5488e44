import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createGateway, type Gateway, type GatewayOptions } from '../src/app/gateway.js';
import { checkedLogger, DEMO_TOKENS, demoUserIds, type Stack, startStack } from './harness.js';

/**
 * A JSON POST of one operation with a token is answered without Yoga's HTTP layer
 * (src/http/direct-post.ts). Every request here goes to two gateways over the same sandbox, one
 * with that path and one without it (`directPost: false`), and must get the same status, media
 * type, headers that matter and body, byte for byte; /metrics says which requests took the path.
 */
let stack: Stack;
let direct: Gateway;
let yoga: Gateway;

/** A second gateway over the stack's sandbox. */
function beside(base: Stack, options: Partial<GatewayOptions>): Promise<Gateway> {
  return createGateway({
    misskeyUrl: base.sandbox.origin,
    port: 0,
    logger: checkedLogger(),
    ...options,
  });
}

beforeAll(async () => {
  stack = await startStack({ sandbox: { seed: 'demo', rateLimits: false } });
  direct = stack.gateway;
  yoga = await beside(stack, { directPost: false });
});
afterAll(async () => {
  await yoga.close();
  await stack.close();
});

interface Sent {
  body: string;
  headers?: Record<string, string>;
}

interface Answer {
  status: number;
  type: string | null;
  retryAfter: string | null;
  body: string;
}

async function post(gateway: Gateway, sent: Sent): Promise<Answer> {
  const res = await fetch(gateway.url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      authorization: `Bearer ${DEMO_TOKENS.alice}`,
      ...sent.headers,
    },
    body: sent.body,
  });
  return {
    status: res.status,
    type: res.headers.get('content-type'),
    retryAfter: res.headers.get('retry-after'),
    body: await res.text(),
  };
}

async function taken(gateway: Gateway): Promise<number> {
  const text = await (await fetch(`${gateway.origin}/metrics`)).text();
  return Number(/^gateway_direct_requests_total (\d+)/m.exec(text)?.[1] ?? Number.NaN);
}

/** Sends `sent` to both gateways: the same answer, and whether the direct path took it. */
async function same(sent: Sent): Promise<{ answer: Answer; direct: boolean }> {
  const before = await taken(direct);
  const [a, b] = [await post(direct, sent), await post(yoga, sent)];
  expect(a).toEqual(b);
  return { answer: a, direct: (await taken(direct)) > before };
}

const json = (value: unknown) => JSON.stringify(value);

describe('the direct JSON POST path', () => {
  it('answers data exactly as Yoga does, in either JSON media type', async () => {
    const ids = demoUserIds(stack);
    const cases: Sent[] = [
      { body: json({ query: '{ me { id username name } }' }) },
      {
        body: json({
          query:
            'query C($userId: ID!) { chatConversation(userId: $userId, first: 5) { edges { node { id text fromUser { username } } } } }',
          variables: { userId: ids.bob },
          operationName: 'C',
          extensions: {},
        }),
      },
      {
        body: json({ query: '{ me { id } }' }),
        headers: { accept: 'application/graphql-response+json' },
      },
      {
        body: json({ query: '{ me { id } }' }),
        headers: { accept: 'application/graphql-response+json, application/json' },
      },
      { body: json({ query: '{ me { id } }' }), headers: { accept: 'application/*' } },
      {
        body: json({ query: '{ me { id } }' }),
        headers: { 'content-type': 'application/json; charset=utf-8' },
      },
    ];
    for (const sent of cases) {
      const { answer, direct: tookIt } = await same(sent);
      expect(answer.status).toBe(200);
      expect(JSON.parse(answer.body).data).toBeTruthy();
      expect(tookIt).toBe(true);
    }
  });

  it('answers errors as Yoga does: validation (200 or 400 by media type), upstream refusals, variables', async () => {
    const cases: [Sent, number][] = [
      [{ body: json({ query: '{ me { idx } }' }) }, 200],
      [
        {
          body: json({ query: '{ me { idx } }' }),
          headers: { accept: 'application/graphql-response+json' },
        },
        400,
      ],
      [{ body: json({ query: '{ me { id ' }) }, 200],
      [{ body: json({ query: 'query($n: Int!) { me { id } }', variables: { n: 'x' } }) }, 200],
      // Misskey refuses the token: UNAUTHENTICATED with Misskey's code and id.
      [
        {
          body: json({ query: '{ me { id } }' }),
          headers: { authorization: 'Bearer notARealToken123' },
        },
        200,
      ],
      // Which operation to run is not said: Yoga's 400, in either media type.
      [{ body: json({ query: 'query A { me { id } } query B { me { id } }' }) }, 400],
      [
        {
          body: json({
            query: `{ ownedChatRooms(first: 100) { edges { node { messages(first: 100) { edges { node { id } } } } } } }`,
          }),
        },
        200,
      ],
    ];
    for (const [sent, status] of cases) {
      const { answer, direct: tookIt } = await same(sent);
      expect(answer.status, sent.body).toBe(status);
      expect(JSON.parse(answer.body).errors?.length, sent.body).toBeGreaterThan(0);
      expect(tookIt).toBe(true);
    }
  });

  it('leaves a subscription to Yoga, which refuses it as JSON (406)', async () => {
    const { answer, direct: tookIt } = await same({
      body: json({ query: 'subscription { chatUnreadChanged { hasUnreadChatMessages } }' }),
      headers: { accept: 'application/json' },
    });
    expect(answer.status).toBe(406);
    // Read here (the body had to be), then answered by Yoga.
    expect(tookIt).toBe(true);
  });

  it('leaves to Yoga what it does not take, with the same answers', async () => {
    const cases: Sent[] = [
      { body: '{"query": "{ me { id } }"' }, // not JSON
      { body: json([{ query: '{ me { id } }' }]) }, // a batch
      { body: json({ query: '{ me { id } }', extra: 1 }) }, // an unknown parameter
      { body: json({ query: 1 }) },
      { body: json({ query: '{ me { id } }', variables: [1] }) },
      { body: json({ query: '{ me { id } }' }), headers: { accept: 'text/event-stream' } },
      { body: json({ query: '{ me { id } }' }), headers: { authorization: 'Bearer a\u00ffb' } },
      { body: json({ query: '{ me { id } }' }), headers: { authorization: '' } },
      { body: json({ query: '{ me { id } }' }), headers: { 'content-type': 'text/plain' } },
    ];
    for (const sent of cases) {
      const { direct: tookIt } = await same(sent);
      // A body that is not one plain operation is read here first, then handed to Yoga.
      const read = sent.headers === undefined;
      expect(tookIt).toBe(read);
    }
  });
});

describe('the direct path with the gateway rate limit', () => {
  it('refuses over the budget with the same 429 and Retry-After as Yoga', async () => {
    const limited = async (directPost: boolean) =>
      beside(stack, { directPost, rateLimit: { perToken: 2, perIp: 0, windowMs: 60_000 } });
    const [a, b] = [await limited(true), await limited(false)];
    try {
      for (let i = 0; i < 3; i++) {
        const sent = { body: json({ query: '{ me { id } }' }) };
        expect(await post(a, sent)).toEqual(await post(b, sent));
      }
      const over = await post(a, { body: json({ query: '{ me { id } }' }) });
      expect(over.status).toBe(429);
      expect(over.retryAfter).toMatch(/^\d+$/);
      expect(JSON.parse(over.body).errors[0].extensions.code).toBe('RATE_LIMITED');
    } finally {
      await a.close();
      await b.close();
    }
  });
});
