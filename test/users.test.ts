import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DEMO_TOKENS, type Stack, startStack } from './harness.js';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack();
});
beforeEach(() => {
  stack.sandbox.resetCalls();
});

describe('Query.me', () => {
  it('returns the user the token belongs to', async () => {
    const res = await stack.gql<{ me: { id: string; username: string; name: string } }>(
      '{ me { id username name } }',
    );
    expect(res.errors).toBeUndefined();
    expect(res.data?.me).toEqual({
      id: stack.sandbox.demo?.users.alice.id,
      username: 'alice',
      name: 'Alice',
    });
    expect(stack.sandbox.callCount('i')).toBe(1);
  });

  it('without a token is UNAUTHENTICATED and makes no upstream call', async () => {
    const res = await stack.gql('{ me { id } }', {}, null);
    expect(res.data).toBeNull();
    expect(res.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    expect(stack.sandbox.callCount()).toBe(0);
  });

  it('with a token Misskey does not know is UNAUTHENTICATED, and the token is not echoed', async () => {
    const token = 'notARealToken123';
    const res = await stack.gql('{ me { id } }', {}, token);
    expect(res.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    expect(res.errors?.[0]?.extensions?.misskey).toMatchObject({
      code: 'AUTHENTICATION_FAILED',
      status: 401,
    });
    expect(JSON.stringify(res)).not.toContain(token);
  });
});

describe('User batching', () => {
  it('resolves 20 different users with exactly one users/show call', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) {
      const created = (await stack.rest(
        'admin/accounts/create',
        { username: `batch${i}`, password: 'pw' },
        DEMO_TOKENS.admin,
      )) as { id: string };
      ids.push(created.id);
    }
    stack.sandbox.resetCalls();
    // Twenty aliases, each asking for one user: the loader must batch them all.
    const fields = ids
      .map((id, i) => `u${i}: user(id: "${id}") { id username description }`)
      .join('\n');
    const res = await stack.gql<Record<string, { id: string; username: string }>>(`{ ${fields} }`);
    expect(res.errors).toBeUndefined();
    expect(Object.values(res.data ?? {}).map((u) => u.id)).toEqual(ids);
    expect(stack.sandbox.callCount('users/show')).toBe(1);
    expect(stack.sandbox.callCount()).toBe(1);
  });

  it('keeps the order asked, returns null for unknown ids, and asks for a repeated id once', async () => {
    const { alice, bob, carol } = stack.sandbox.demo?.users ?? ({} as never);
    const res = await stack.gql<{ users: ({ username: string } | null)[] }>(
      'query ($ids: [ID!]!) { users(ids: $ids) { username } }',
      { ids: [carol.id, 'au0000000000zzzz', alice.id, bob.id, carol.id] },
    );
    expect(res.errors).toBeUndefined();
    expect(res.data?.users).toEqual([
      { username: 'carol' },
      null,
      { username: 'alice' },
      { username: 'bob' },
      { username: 'carol' },
    ]);
    expect(stack.sandbox.callCount('users/show')).toBe(1);
  });

  it('user(id) of an unknown id is null, and a malformed id is BAD_USER_INPUT with no call', async () => {
    const unknown = await stack.gql('{ user(id: "au0000000000zzzz") { id } }');
    expect(unknown.errors).toBeUndefined();
    expect(unknown.data).toEqual({ user: null });
    stack.sandbox.resetCalls();
    const bad = await stack.gql('{ user(id: "not an id!") { id } }');
    expect(bad.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(stack.sandbox.callCount()).toBe(0);
  });

  it('finds a local user by username, null when unknown', async () => {
    const res = await stack.gql<{ a: { id: string } | null; b: null }>(
      '{ a: user(username: "bob") { id name } b: user(username: "nobody") { id } }',
    );
    expect(res.errors).toBeUndefined();
    expect(res.data?.a?.id).toBe(stack.sandbox.demo?.users.bob.id);
    expect(res.data?.b).toBeNull();
  });

  it('detail fields of the viewer come from `i` without another call', async () => {
    const res = await stack.gql<{
      me: { followersCount: number; chatScope: string; canChat: boolean };
    }>('{ me { followersCount followingCount chatScope canChat createdAt } }');
    expect(res.errors).toBeUndefined();
    expect(res.data?.me).toMatchObject({ followersCount: 2, chatScope: 'MUTUAL', canChat: true });
    expect(stack.sandbox.callCount()).toBe(1);
  });
});
