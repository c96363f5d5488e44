import { createYoga } from 'graphql-yoga';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { responseCache } from '../src/engine/response-cache.js';
import { type Context, createContextFactory } from '../src/schema/context.js';
import { schema } from '../src/schema/index.js';
import { MisskeyClient } from '../src/upstream/client.js';
import { DEMO_TOKENS, type Stack, startStack } from './harness.js';

/**
 * The response cache for anonymous public reads (src/engine/response-cache.ts): what is cached, for whom, and
 * that nothing fetched with a token is ever served from or stored into it. Each test uses its own
 * query text, so entries of one test cannot answer another.
 */

let stack: Stack;

beforeAll(async () => {
  stack = await startStack({ sandbox: { rateLimits: false } });
});
beforeEach(() => {
  stack.sandbox.resetCalls();
});

describe('anonymous public reads', () => {
  it('an anonymous trend query twice makes one upstream call', async () => {
    const query = '{ trendingHashtags { tag chart usersCount } }';
    const first = await stack.gql(query, {}, null);
    const second = await stack.gql(query, {}, null);
    expect(first.errors).toBeUndefined();
    expect(second).toEqual(first);
    expect(stack.sandbox.callCount('hashtags/trend')).toBe(1);
  });

  it('serves hashtags and announcements from the cache until the TTL, even after a change', async () => {
    const query = `{ h: hashtag(tag: "misskey") { mentionedUsersCount }
      a: announcements { edges { node { title } } } }`;
    const before = await stack.gql<{ h: { mentionedUsersCount: number } }>(query, {}, null);
    await stack.rest('notes/create', { text: 'Joining in #misskey' }, DEMO_TOKENS.carol);
    const cached = await stack.gql<{ h: { mentionedUsersCount: number } }>(query, {}, null);
    expect(cached).toEqual(before);
    expect(stack.sandbox.callCount('hashtags/show')).toBe(1);
    expect(stack.sandbox.callCount('announcements')).toBe(1);
    // With a token the same query goes upstream and sees the change.
    const fresh = await stack.gql<{ h: { mentionedUsersCount: number } }>(query);
    expect(fresh.data?.h.mentionedUsersCount).toBe((before.data?.h.mentionedUsersCount ?? 0) + 1);
  });

  it('does not cache other fields, mixed queries, or results with errors', async () => {
    const alice = stack.sandbox.demo?.users.alice.id;
    // followersCount is a detail field: the shared cache of lite users cannot answer it.
    const user = `{ user(id: "${alice}") { username followersCount } }`;
    await stack.gql(user, {}, null);
    await stack.gql(user, {}, null);
    expect(stack.sandbox.callCount('users/show')).toBe(2);

    const mixed = `{ trendingHashtags { tag } user(id: "${alice}") { id followersCount } }`;
    await stack.gql(mixed, {}, null);
    await stack.gql(mixed, {}, null);
    expect(stack.sandbox.callCount('hashtags/trend')).toBe(2);

    stack.sandbox.resetCalls();
    stack.sandbox.fail('hashtags/list', { status: 500, body: { error: 'boom' }, times: 1 });
    const query = '{ hashtags(first: 3) { tag } }';
    const failed = await stack.gql(query, {}, null);
    expect(failed.errors).toBeDefined();
    const retried = await stack.gql(query, {}, null);
    expect(retried.errors).toBeUndefined();
    expect(stack.sandbox.callCount('hashtags/list')).toBe(2);
  });
});

describe('token-bearing operations', () => {
  it('are never served from the cache', async () => {
    const query = '{ trendingHashtags { tag usersCount } }';
    await stack.gql(query, {}, null);
    await stack.gql(query);
    await stack.gql(query, {}, DEMO_TOKENS.bob);
    await stack.gql(query);
    expect(stack.sandbox.callCount('hashtags/trend')).toBe(4);
  });

  it('are never stored into it: a viewer’s data does not reach anonymous callers', async () => {
    const query = '{ announcements(first: 5) { edges { node { title forYou isRead } } } }';
    const alice = await stack.gql<{
      announcements: { edges: { node: { title: string; isRead: boolean | null } }[] };
    }>(query);
    expect(alice.data?.announcements.edges.map((e) => e.node.title)).toContain('For Alice only');
    const anonymous = await stack.gql<{
      announcements: { edges: { node: { title: string; isRead: boolean | null } }[] };
    }>(query, {}, null);
    const titles = anonymous.data?.announcements.edges.map((e) => e.node.title);
    expect(titles).not.toContain('For Alice only');
    expect(anonymous.data?.announcements.edges.every((e) => e.node.isRead === null)).toBe(true);
    expect(stack.sandbox.callCount('announcements')).toBe(2);
    // Once cached for anonymous callers, alice still gets her own answer.
    const again = await stack.gql<{
      announcements: { edges: { node: { title: string } }[] };
    }>(query);
    expect(again.data?.announcements.edges.map((e) => e.node.title)).toContain('For Alice only');
    expect(stack.sandbox.callCount('announcements')).toBe(3);
  });

  it('an unknown token is refused by Misskey even where an anonymous answer is cached', async () => {
    const query = '{ hashtagSuggestions(query: "gr") }';
    await stack.gql(query, {}, null);
    const res = await stack.gql(query, {}, 'notARealToken123');
    expect(res.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
  });
});

describe('time to live', () => {
  let client: MisskeyClient;
  let yoga: ReturnType<typeof createYoga<Record<string, unknown>, Context>>;

  beforeAll(() => {
    client = new MisskeyClient(stack.sandbox.origin);
    yoga = createYoga<Record<string, unknown>, Context>({
      schema,
      context: createContextFactory(client),
      plugins: [responseCache({ ttlMs: { trendingHashtags: 150 } })],
      logging: false,
    });
  });
  afterAll(async () => {
    await client.close();
  });

  it('expires an entry after its TTL', async () => {
    const ask = () =>
      yoga.fetch('http://gateway/graphql', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query: '{ trendingHashtags { tag } }' }),
      });
    await ask();
    await ask();
    expect(stack.sandbox.callCount('hashtags/trend')).toBe(1);
    await new Promise((resolve) => setTimeout(resolve, 200));
    await ask();
    expect(stack.sandbox.callCount('hashtags/trend')).toBe(2);
  });
});
