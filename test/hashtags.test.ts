import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { errorCode as code, DEMO_TOKENS, type Stack, startStack } from './harness.js';
import { type Recording, recordedDir as recorded, shapeProblems } from './support/recordings.js';

/**
 * Hashtags end to end: `hashtags`, `hashtagSuggestions`, `hashtag`, `trendingHashtags` and
 * `Hashtag.users` over real HTTP, without a token, against the demo data (profiles of seed.ts,
 * notes of seeds/public.ts); the sandbox's statistics from notes and profiles; and the sandbox's
 * hashtag endpoints and `notes/create` against every recording of them.
 *
 * Demo statistics: misskey (mentioned by alice and bob, in both profiles), graphql (alice and
 * carol, both), typescript (alice and carol, in no profile), chat (bob, his profile).
 */

let stack: Stack;

beforeAll(async () => {
  stack = await startStack({ sandbox: { rateLimits: false } });
});
beforeEach(() => {
  stack.sandbox.resetCalls();
});

interface Tag {
  tag: string;
  mentionedUsersCount: number;
  attachedUsersCount: number;
}

describe('Query.hashtags', () => {
  it('lists tags with their counts without a token, in the sort asked', async () => {
    const res = await stack.gql<{ hashtags: Tag[] }>(
      '{ hashtags(sort: MENTIONED_USERS_ASC) { tag mentionedUsersCount attachedUsersCount mentionedLocalUsersCount attachedRemoteUsersCount } }',
      {},
      null,
    );
    expect(res.errors).toBeUndefined();
    expect(res.data?.hashtags[0]).toEqual({
      tag: 'chat',
      mentionedUsersCount: 1,
      attachedUsersCount: 1,
      mentionedLocalUsersCount: 1,
      attachedRemoteUsersCount: 0,
    });
    expect(res.data?.hashtags.map((h) => h.tag).sort()).toEqual([
      'chat',
      'graphql',
      'misskey',
      'typescript',
    ]);
    expect(stack.sandbox.callCount('hashtags/list')).toBe(1);
  });

  it('filters on profile tags and takes first', async () => {
    const res = await stack.gql<{ hashtags: Tag[] }>(
      '{ hashtags(sort: ATTACHED_USERS_DESC, attachedToUserOnly: true, first: 2) { tag attachedUsersCount } }',
      {},
      null,
    );
    expect(res.data?.hashtags).toHaveLength(2);
    expect(res.data?.hashtags.every((h) => h.attachedUsersCount === 2)).toBe(true);
    const all = await stack.gql<{ hashtags: Tag[] }>(
      '{ hashtags(sort: ATTACHED_USERS_ASC, attachedToUserOnly: true) { tag } }',
      {},
      null,
    );
    expect(all.data?.hashtags.map((h) => h.tag)).not.toContain('typescript');
  });

  it('refuses first outside 1..100 before any upstream call', async () => {
    for (const first of [0, 101]) {
      const res = await stack.gql(`{ hashtags(first: ${first}) { tag } }`, {}, null);
      expect(code(res)).toBe('BAD_USER_INPUT');
    }
    expect(stack.sandbox.callCount()).toBe(0);
  });

  it('with a token Misskey does not know is UNAUTHENTICATED, even on a public field', async () => {
    const res = await stack.gql('{ hashtags { tag } }', {}, 'notARealToken123');
    expect(code(res)).toBe('UNAUTHENTICATED');
    expect(res.errors?.[0]?.extensions?.misskey).toMatchObject({ code: 'AUTHENTICATION_FAILED' });
  });
});

describe('Query.hashtagSuggestions', () => {
  it('matches a case-insensitive prefix, with first and offset', async () => {
    const res = await stack.gql<{ a: string[]; b: string[]; c: string[]; d: string[] }>(
      `{ a: hashtagSuggestions(query: "G") b: hashtagSuggestions(query: "#mis")
         c: hashtagSuggestions(query: "", first: 2) d: hashtagSuggestions(query: "", offset: 3) }`,
      {},
      null,
    );
    expect(res.errors).toBeUndefined();
    expect(res.data?.a).toEqual(['graphql']);
    expect(res.data?.b).toEqual(['misskey']);
    expect(res.data?.c).toHaveLength(2);
    expect(res.data?.d).toHaveLength(1);
  });
});

describe('Query.hashtag', () => {
  it('shows every count, case-insensitively and without the #; null when unused', async () => {
    const res = await stack.gql<{ tag: Record<string, unknown>; none: null }>(
      `{ tag: hashtag(tag: "#MissKey") { tag mentionedUsersCount mentionedLocalUsersCount
           mentionedRemoteUsersCount attachedUsersCount attachedLocalUsersCount attachedRemoteUsersCount }
         none: hashtag(tag: "nobodyusesthis") { tag } }`,
      {},
      null,
    );
    expect(res.errors).toBeUndefined();
    expect(res.data?.tag).toEqual({
      tag: 'misskey',
      mentionedUsersCount: 2,
      mentionedLocalUsersCount: 2,
      mentionedRemoteUsersCount: 0,
      attachedUsersCount: 2,
      attachedLocalUsersCount: 2,
      attachedRemoteUsersCount: 0,
    });
    expect(res.data?.none).toBeNull();
  });
});

describe('Hashtag.users', () => {
  it('lists users of the graph with no users/show call, one hashtags/users per tag', async () => {
    const res = await stack.gql<{
      a: { users: { username: string; description: string; followersCount: number }[] };
      b: { users: { username: string }[] };
    }>(
      `{ a: hashtag(tag: "graphql") { users(sort: CREATED_ASC) { username description followersCount } }
         b: hashtag(tag: "graphql") { users(sort: CREATED_ASC) { username } } }`,
      {},
      null,
    );
    expect(res.errors).toBeUndefined();
    expect(res.data?.a.users.map((u) => u.username)).toEqual(['alice', 'carol']);
    expect(res.data?.a.users[0]?.description).toBe('Builds things. #misskey #graphql');
    expect(res.data?.b.users.map((u) => u.username)).toEqual(['alice', 'carol']);
    expect(stack.sandbox.callCount('hashtags/show')).toBe(1);
    expect(stack.sandbox.callCount('hashtags/users')).toBe(1);
    expect(stack.sandbox.callCount('users/show')).toBe(0);
  });

  it('passes sort, origin, state and first to Misskey', async () => {
    const res = await stack.gql<{ hashtags: { tag: string; users: { username: string }[] }[] }>(
      `{ hashtags(sort: MENTIONED_USERS_DESC, first: 4) {
           tag users(sort: CREATED_DESC, origin: COMBINED, state: ALIVE, first: 1) { username } } }`,
      {},
      null,
    );
    expect(res.errors).toBeUndefined();
    const users = Object.fromEntries(
      (res.data?.hashtags ?? []).map((h) => [h.tag, h.users.map((u) => u.username)]),
    );
    expect(users).toEqual({
      misskey: ['bob'],
      graphql: ['carol'],
      chat: ['bob'],
      typescript: [],
    });
    expect(stack.sandbox.callCount('hashtags/users')).toBe(4);
    const remote = await stack.gql<{ hashtag: { users: unknown[] } }>(
      '{ hashtag(tag: "misskey") { users(origin: REMOTE) { username } } }',
      {},
      null,
    );
    expect(remote.data?.hashtag.users).toEqual([]);
  });
});

describe('Query.trendingHashtags', () => {
  it('lists the trend with a 20-number chart without a token', async () => {
    const res = await stack.gql<{
      trendingHashtags: { tag: string; chart: number[]; usersCount: number }[];
    }>('{ trendingHashtags { tag chart usersCount } }', {}, null);
    expect(res.errors).toBeUndefined();
    const trend = res.data?.trendingHashtags ?? [];
    expect(trend.map((t) => t.tag)).toEqual(['typescript', 'misskey', 'graphql', 'chat']);
    for (const item of trend) {
      expect(item.chart).toHaveLength(20);
      expect(item.chart[0]).toBe(item.chart[1]);
      expect(item.usersCount).toBe(Math.max(...item.chart));
    }
    expect(trend[0]?.usersCount).toBe(2);
  });

  it('follows new public notes (read with a token, which is never cached)', async () => {
    await stack.rest('notes/create', { text: 'Fresh #sandboxtag' }, DEMO_TOKENS.bob);
    await stack.rest('notes/create', { text: 'Me too #SandboxTag' }, DEMO_TOKENS.carol);
    await stack.rest('notes/create', { text: 'And me #sandboxtag #sandboxtag' });
    await stack.rest('notes/create', { text: 'Hidden #secrettag', visibility: 'followers' });
    const res = await stack.gql<{ trendingHashtags: { tag: string; usersCount: number }[] }>(
      '{ trendingHashtags { tag usersCount } }',
    );
    expect(res.data?.trendingHashtags[0]).toEqual({ tag: 'sandboxtag', usersCount: 3 });
    expect(res.data?.trendingHashtags.map((t) => t.tag)).not.toContain('secrettag');
  });
});

describe('sandbox statistics', () => {
  it('counts profile tags as attached, and drops them when the profile does', async () => {
    const show = async (tag: string) =>
      (await stack.rest('hashtags/show', { tag }, null)) as Record<string, number>;
    await stack.rest('i/update', { description: 'Now into #knitting' }, DEMO_TOKENS.carol);
    expect((await show('knitting')).attachedUsersCount).toBe(1);
    expect((await show('graphql')).attachedUsersCount).toBe(1);
    await stack.rest('i/update', { description: '#graphql enjoyer' }, DEMO_TOKENS.carol);
    expect((await show('knitting')).attachedUsersCount).toBe(0);
    expect((await show('graphql')).attachedUsersCount).toBe(2);
    expect((await show('graphql')).mentionedUsersCount).toBe(2);
  });
});

// --- The sandbox against the recordings -------------------------------------------------------

describe('contract: recorded hashtags', () => {
  let contract: Stack;
  beforeAll(async () => {
    contract = await startStack({ sandbox: { rateLimits: false } });
  });

  const files = [
    'setup/notes.create.json',
    'hashtags.list.json',
    'hashtags.list.ascending.json',
    'hashtags.list.attached.json',
    'hashtags.list.i-null.json',
    'hashtags.search.json',
    'hashtags.search.empty.json',
    'hashtags.search.empty-query.json',
    'hashtags.search.offset.json',
    'hashtags.search.uppercase.json',
    'hashtags.show.json',
    'hashtags.show.case.json',
    'hashtags.trend.json',
    'hashtags.trend.get.json',
    'hashtags.trend.get.authenticated.json',
    'hashtags.users.json',
    'hashtags.users.graphql.json',
    'hashtags.users.offset.json',
    'hashtags.users.unknown-tag.json',
    'errors/hashtags.list.bad-sort.json',
    'errors/hashtags.list.missing-sort.json',
    'errors/hashtags.list.invalid-token.json',
    'errors/hashtags.show.no-such-hashtag.json',
  ];

  it.each(files)('%s', async (file) => {
    const rec = JSON.parse(readFileSync(join(recorded, file), 'utf8')) as Recording;
    const token =
      rec.auth === 'i (invalid token)'
        ? 'notARealToken123'
        : rec.as === null
          ? null
          : DEMO_TOKENS[rec.as as keyof typeof DEMO_TOKENS];
    let res: Response;
    if (rec.method === 'GET') {
      const query = token ? `?i=${token}` : '';
      res = await fetch(`${contract.sandbox.origin}/api/${rec.endpoint}${query}`);
    } else {
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if (token) {
        headers.authorization = `Bearer ${token}`;
      }
      res = await fetch(`${contract.sandbox.origin}/api/${rec.endpoint}`, {
        method: 'POST',
        headers,
        body: JSON.stringify(rec.request),
      });
    }
    const text = await res.text();
    const body = text === '' ? null : (JSON.parse(text) as unknown);
    expect(res.status).toBe(rec.status);
    const error = (rec.response as { error?: { code: string; id: string } } | null)?.error;
    if (error) {
      expect((body as { error: unknown }).error).toMatchObject({ code: error.code, id: error.id });
    } else {
      expect(shapeProblems(body, rec.response)).toEqual([]);
      // Same data as the recording's server where the demo has it (four tags, 20-number charts).
      if (Array.isArray(rec.response) && rec.endpoint === 'hashtags/trend') {
        expect((body as unknown[]).length).toBeGreaterThanOrEqual(rec.response.length);
      }
    }
  });
});
