import { beforeAll, describe, expect, it } from 'vitest';
import { MemoryUserCache } from '../src/loaders/user-cache.js';
import { DEMO_TOKENS, demoUserIds, type Stack, startStack } from './harness.js';

/**
 * The shared cache of lite users (USER_CACHE_TTL_MS): a warm conversation page costs one upstream
 * call, detail fields still go upstream, entries are refreshed by every answer that embeds a user
 * and never outlive the TTL.
 */

const PAGE = `query ($u: ID!) { chatConversation(userId: $u, first: 50) {
  edges { node { id text fromUser { id username name } toUser { id username name } } }
} }`;

type Page = {
  chatConversation: { edges: { node: { fromUser: { name: string | null } } }[] };
};

async function seedConversation(stack: Stack, count: number): Promise<void> {
  const { alice, bob } = demoUserIds(stack);
  for (let i = 0; i < count; i++) {
    const [token, to] = i % 2 === 0 ? [DEMO_TOKENS.alice, bob] : [DEMO_TOKENS.bob, alice];
    await stack.rest('chat/messages/create-to-user', { toUserId: to, text: `m ${i}` }, token);
  }
}

describe('with the cache on (the default)', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack();
    await seedConversation(stack, 60);
  });

  it('a cold 50-message page costs 2 calls, a warm one exactly 1', async () => {
    const { bob } = demoUserIds(stack);
    stack.sandbox.resetCalls();
    const cold = await stack.gql<Page>(PAGE, { u: bob });
    expect(cold.errors).toBeUndefined();
    expect(cold.data?.chatConversation.edges).toHaveLength(50);
    expect(stack.sandbox.callCount()).toBe(2);
    stack.sandbox.resetCalls();
    // Another viewer, same users: the lite part does not depend on who asks.
    const warm = await stack.gql<Page>(
      PAGE,
      { u: stack.sandbox.demo?.users.alice.id },
      DEMO_TOKENS.bob,
    );
    expect(warm.errors).toBeUndefined();
    expect(warm.data?.chatConversation.edges).toHaveLength(50);
    expect(stack.sandbox.callCount('chat/messages/user-timeline')).toBe(1);
    expect(stack.sandbox.callCount()).toBe(1);
  });

  it('fields only a detailed user has still go upstream', async () => {
    const { bob } = demoUserIds(stack);
    await stack.gql(PAGE, { u: bob });
    stack.sandbox.resetCalls();
    const res = await stack.gql<{
      chatConversation: { edges: { node: { fromUser: { followersCount: number } } }[] };
    }>(
      `query ($u: ID!) { chatConversation(userId: $u, first: 5) {
        edges { node { fromUser { name followersCount isFollowing } } } } }`,
      { u: bob },
    );
    expect(res.errors).toBeUndefined();
    expect(stack.sandbox.callCount('users/show')).toBe(1);
  });

  it('an answer that embeds a user refreshes its entry', async () => {
    const { bob } = demoUserIds(stack);
    await stack.gql(PAGE, { u: bob });
    await stack.rest('i/update', { name: 'Bobby' }, DEMO_TOKENS.bob);
    // `user(username:)` answers bob's detailed form: the cache takes its lite part.
    await stack.gql('{ user(username: "bob") { id } }');
    stack.sandbox.resetCalls();
    const page = await stack.gql<Page>(PAGE, { u: bob });
    const names = new Set(page.data?.chatConversation.edges.map((e) => e.node.fromUser.name));
    expect(names.has('Bobby')).toBe(true);
    expect(stack.sandbox.callCount()).toBe(1);
    await stack.rest('i/update', { name: 'Bob' }, DEMO_TOKENS.bob);
  });
});

describe('staleness bound', () => {
  it('an entry is never served past USER_CACHE_TTL_MS', async () => {
    const stack = await startStack({ gateway: { userCacheTtlMs: 300 } });
    await seedConversation(stack, 4);
    const { bob } = demoUserIds(stack);
    await stack.gql(PAGE, { u: bob });
    await stack.rest('i/update', { name: 'Renamed' }, DEMO_TOKENS.bob);
    await new Promise((resolve) => setTimeout(resolve, 400));
    stack.sandbox.resetCalls();
    const page = await stack.gql<Page>(PAGE, { u: bob });
    const names = page.data?.chatConversation.edges.map((e) => e.node.fromUser.name) ?? [];
    expect(names).toContain('Renamed');
    expect(stack.sandbox.callCount('users/show')).toBe(1);
    await stack.close();
  });

  it('USER_CACHE_TTL_MS=0 turns it off: every page asks users/show', async () => {
    const stack = await startStack({ gateway: { userCacheTtlMs: 0 } });
    await seedConversation(stack, 4);
    const { bob } = demoUserIds(stack);
    for (let i = 0; i < 2; i++) {
      stack.sandbox.resetCalls();
      await stack.gql(PAGE, { u: bob });
      expect(stack.sandbox.callCount()).toBe(2);
    }
    await stack.close();
  });
});

describe('bounds', () => {
  it('keeps at most maxEntries users and never keys an id that is not Misskey-shaped', async () => {
    const cache = new MemoryUserCache(60_000, 100);
    const user = (id: string) =>
      ({ id, username: id, name: null, host: null, avatarUrl: '', emojis: {} }) as never;
    for (let i = 0; i < 5_000; i++) {
      cache.put(user(`u${i}`));
    }
    expect(cache.size).toBe(100);
    cache.put(user('../../etc'));
    cache.put(user('x'.repeat(200)));
    expect(cache.size).toBe(100);
    const [newest, oldest] = await cache.getMany(['u4999', 'u0']);
    expect(newest?.id).toBe('u4999');
    expect(oldest).toBeUndefined();
  });
});
