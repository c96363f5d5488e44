import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { errorCode as code, DEMO_TOKENS, type Stack, startStack } from './harness.js';
import { type Recording, recordedDir as recorded, shapeProblems } from './support/recordings.js';

/**
 * Announcements end to end: `Query.announcements` / `announcement` / `markAnnouncementRead` over
 * real HTTP against the sandbox's demo data (src/sandbox/seeds/public.ts), and the sandbox's
 * announcement endpoints against every recording of them in ../shared/misskey/recorded.
 */

let stack: Stack;
let ids: Record<string, string>;

beforeAll(async () => {
  stack = await startStack({ sandbox: { rateLimits: false } });
  ids = stack.sandbox.demo?.ids ?? {};
});
beforeEach(() => {
  stack.sandbox.resetCalls();
});

interface Node {
  id: string;
  title: string;
  forYou: boolean;
  isRead: boolean | null;
}
interface Page {
  announcements: {
    edges: { cursor: string; node: Node }[];
    pageInfo: { hasNextPage: boolean; hasPreviousPage: boolean; endCursor: string | null };
  };
}

const PAGE = `edges { cursor node { id title forYou isRead } }
  pageInfo { hasNextPage hasPreviousPage endCursor }`;

const titles = (res: { data?: Page | null }) =>
  res.data?.announcements.edges.map((edge) => edge.node.title);

/** A new global announcement by the admin (setup through the sandbox, not under test). */
async function announce(title: string, extra: Record<string, unknown> = {}): Promise<string> {
  const created = (await stack.rest(
    'admin/announcements/create',
    { title, text: `${title}.`, imageUrl: null, ...extra },
    DEMO_TOKENS.admin,
  )) as { id: string };
  return created.id;
}

describe('Query.announcements', () => {
  it('without a token lists the active global ones, newest first, with isRead null', async () => {
    const res = await stack.gql<Page>(`{ announcements { ${PAGE} } }`, {}, null);
    expect(res.errors).toBeUndefined();
    expect(titles(res)).toEqual(['Maintenance window', 'Welcome to the sandbox']);
    expect(res.data?.announcements.edges.every((e) => e.node.isRead === null)).toBe(true);
    expect(res.data?.announcements.edges[0]?.cursor).toBe(ids.announcementMaintenance);
    expect(stack.sandbox.callCount('announcements')).toBe(1);
  });

  it('with a token adds those addressed to the viewer, with read state', async () => {
    const alice = await stack.gql<Page>(`{ announcements { ${PAGE} } }`);
    expect(alice.data?.announcements.edges.map((e) => e.node)).toEqual([
      { id: ids.announcementForAlice, title: 'For Alice only', forYou: true, isRead: false },
      {
        id: ids.announcementMaintenance,
        title: 'Maintenance window',
        forYou: false,
        isRead: false,
      },
      {
        id: ids.announcementWelcome,
        title: 'Welcome to the sandbox',
        forYou: false,
        isRead: false,
      },
    ]);
    const bob = await stack.gql<Page>(`{ announcements { ${PAGE} } }`, {}, DEMO_TOKENS.bob);
    expect(titles(bob)).toEqual(['Maintenance window', 'Welcome to the sandbox']);
  });

  it('ARCHIVED lists only archived ones, ALL merges both (two upstream calls)', async () => {
    const archived = await stack.gql<Page>(`{ announcements(active: ARCHIVED) { ${PAGE} } }`);
    expect(titles(archived)).toEqual(['Old news']);
    stack.sandbox.resetCalls();
    const all = await stack.gql<Page>(`{ announcements(active: ALL) { ${PAGE} } }`);
    expect(titles(all)).toEqual([
      'Old news',
      'For Alice only',
      'Maintenance window',
      'Welcome to the sandbox',
    ]);
    expect(stack.sandbox.callCount('announcements')).toBe(2);
  });

  it('pages with first/after and last/before over announcement ids', async () => {
    const first = await stack.gql<Page>(`{ announcements(first: 2) { ${PAGE} } }`);
    expect(titles(first)).toEqual(['For Alice only', 'Maintenance window']);
    expect(first.data?.announcements.pageInfo).toMatchObject({
      hasNextPage: true,
      hasPreviousPage: false,
    });
    const after = first.data?.announcements.pageInfo.endCursor;
    const next = await stack.gql<Page>(
      `query ($after: String) { announcements(first: 2, after: $after) { ${PAGE} } }`,
      { after },
    );
    expect(titles(next)).toEqual(['Welcome to the sandbox']);
    expect(next.data?.announcements.pageInfo).toMatchObject({
      hasNextPage: false,
      hasPreviousPage: true,
    });
    const back = await stack.gql<Page>(
      `query ($before: String) { announcements(last: 1, before: $before) { ${PAGE} } }`,
      { before: ids.announcementWelcome },
    );
    expect(titles(back)).toEqual(['Maintenance window']);
    expect(back.data?.announcements.pageInfo.hasPreviousPage).toBe(true);
  });

  it('bounds by creation time with since/until, also across pages', async () => {
    const a = await announce('Dated A');
    await new Promise((r) => setTimeout(r, 15));
    const b = await announce('Dated B');
    await new Promise((r) => setTimeout(r, 15));
    const c = await announce('Dated C');
    const at = async (id: string) =>
      (
        (await stack.rest('announcements/show', { announcementId: id }, DEMO_TOKENS.bob)) as {
          createdAt: string;
        }
      ).createdAt;
    const [timeA, timeC] = [await at(a), await at(c)];
    const range = await stack.gql<Page>(
      `query ($since: DateTime, $until: DateTime) { announcements(since: $since, until: $until) { ${PAGE} } }`,
      { since: timeA, until: timeC },
      DEMO_TOKENS.bob,
    );
    expect(titles(range)).toEqual(['Dated B']);
    const since = await stack.gql<Page>(
      `query ($since: DateTime) { announcements(first: 1, since: $since) { ${PAGE} } }`,
      { since: timeA },
      DEMO_TOKENS.bob,
    );
    expect(titles(since)).toEqual(['Dated C']);
    const more = await stack.gql<Page>(
      `query ($since: DateTime, $after: String) { announcements(first: 5, since: $since, after: $after) { ${PAGE} } }`,
      { since: timeA, after: since.data?.announcements.pageInfo.endCursor },
      DEMO_TOKENS.bob,
    );
    expect(titles(more)).toEqual(['Dated B']);
    expect(more.data?.announcements.pageInfo.hasNextPage).toBe(false);
    const oldest = await stack.gql<Page>(
      `query ($since: DateTime) { announcements(last: 1, since: $since) { ${PAGE} } }`,
      { since: timeA },
      DEMO_TOKENS.bob,
    );
    expect(titles(oldest)).toEqual(['Dated B']);
    for (const id of [a, b, c]) {
      await stack.rest(
        'admin/announcements/update',
        { id, title: 'x', text: 'x', isActive: false },
        DEMO_TOKENS.admin,
      );
    }
  });

  it('refuses a bad page size or id before any upstream call', async () => {
    const big = await stack.gql(`{ announcements(first: 101) { ${PAGE} } }`);
    expect(code(big)).toBe('BAD_USER_INPUT');
    const bad = await stack.gql(`{ announcements(after: "not an id!") { ${PAGE} } }`);
    expect(code(bad)).toBe('BAD_USER_INPUT');
    expect(stack.sandbox.callCount()).toBe(0);
  });
});

describe('Query.announcement', () => {
  const ONE = 'query ($id: ID!) { announcement(id: $id) { id title forYou isRead } }';

  it('reads one without a token (isRead null), and is null for a user-targeted one', async () => {
    const welcome = await stack.gql<{ announcement: Node }>(
      ONE,
      { id: ids.announcementWelcome },
      null,
    );
    expect(welcome.data?.announcement).toMatchObject({ title: 'Welcome to the sandbox' });
    expect(welcome.data?.announcement.isRead).toBeNull();
    const targeted = await stack.gql(ONE, { id: ids.announcementForAlice }, null);
    expect(targeted.errors).toBeUndefined();
    expect(targeted.data).toEqual({ announcement: null });
  });

  it('shows a user-targeted one to its addressee only, and archived ones too', async () => {
    const alice = await stack.gql<{ announcement: Node }>(ONE, { id: ids.announcementForAlice });
    expect(alice.data?.announcement).toMatchObject({ forYou: true, isRead: false });
    const bob = await stack.gql(ONE, { id: ids.announcementForAlice }, DEMO_TOKENS.bob);
    expect(bob.data).toEqual({ announcement: null });
    const archived = await stack.gql<{ announcement: Node }>(ONE, {
      id: ids.announcementArchived,
    });
    expect(archived.data?.announcement.title).toBe('Old news');
  });

  it('is null for an unknown id; a malformed id is BAD_USER_INPUT with no call', async () => {
    const unknown = await stack.gql(ONE, { id: 'au0000000000zzzz' });
    expect(unknown.data).toEqual({ announcement: null });
    stack.sandbox.resetCalls();
    const bad = await stack.gql(ONE, { id: 'x-y' });
    expect(code(bad)).toBe('BAD_USER_INPUT');
    expect(stack.sandbox.callCount()).toBe(0);
  });
});

describe('Mutation.markAnnouncementRead', () => {
  const READ = 'mutation ($id: ID!) { markAnnouncementRead(id: $id) { id isRead } }';

  it('without a token is UNAUTHENTICATED before any upstream call', async () => {
    const res = await stack.gql(READ, { id: ids.announcementWelcome }, null);
    expect(code(res)).toBe('UNAUTHENTICATED');
    expect(stack.sandbox.callCount()).toBe(0);
  });

  it('marks read for the viewer only, and clears the unread state of `i`', async () => {
    const id = await announce('Read me');
    const before = (await stack.rest('i', {}, DEMO_TOKENS.carol)) as {
      unreadAnnouncements: { id: string }[];
    };
    expect(before.unreadAnnouncements.map((a) => a.id)).toContain(id);
    const res = await stack.gql(READ, { id }, DEMO_TOKENS.carol);
    expect(res.data).toEqual({ markAnnouncementRead: { id, isRead: true } });
    const after = (await stack.rest('i', {}, DEMO_TOKENS.carol)) as {
      unreadAnnouncements: { id: string }[];
    };
    expect(after.unreadAnnouncements.map((a) => a.id)).not.toContain(id);
    const bob = await stack.gql<{ announcement: Node }>(
      'query ($id: ID!) { announcement(id: $id) { isRead } }',
      { id },
      DEMO_TOKENS.bob,
    );
    expect(bob.data?.announcement.isRead).toBe(false);
  });

  it('archives a user-targeted announcement once its addressee read it', async () => {
    const id = await announce('Only for bob', { userId: stack.sandbox.demo?.users.bob.id });
    const res = await stack.gql(READ, { id }, DEMO_TOKENS.bob);
    expect(res.data).toEqual({ markAnnouncementRead: { id, isRead: true } });
    const active = await stack.gql<Page>(`{ announcements { ${PAGE} } }`, {}, DEMO_TOKENS.bob);
    expect(titles(active)).not.toContain('Only for bob');
    const archived = await stack.gql<Page>(
      `{ announcements(active: ARCHIVED) { ${PAGE} } }`,
      {},
      DEMO_TOKENS.bob,
    );
    expect(titles(archived)).toContain('Only for bob');
  });

  it('is null for an unknown id (Misskey accepts it silently)', async () => {
    const res = await stack.gql(READ, { id: 'au0000000000zzzz' });
    expect(res.errors).toBeUndefined();
    expect(res.data).toEqual({ markAnnouncementRead: null });
  });
});

// --- The sandbox against the recordings -------------------------------------------------------

describe('contract: recorded announcements', () => {
  let contract: Stack;
  const byRecordedId = new Map<string, string>();
  const token = (as: string | null) =>
    as === null ? null : DEMO_TOKENS[as as keyof typeof DEMO_TOKENS];

  beforeAll(async () => {
    contract = await startStack({ sandbox: { rateLimits: false } });
    const demo = contract.sandbox.demo?.ids ?? {};
    // The recordings' four announcements, and their counterparts in the demo data.
    byRecordedId.set('au31i7gc4oz40011', demo.announcementWelcome as string);
    byRecordedId.set('au31i7go4oz40013', demo.announcementMaintenance as string);
    byRecordedId.set('au31i7gw4oz40015', demo.announcementForAlice as string);
    byRecordedId.set('au31i7hc4oz40017', demo.announcementArchived as string);
  });

  // In recording order: reads after the reads' own recordings.
  const files = [
    'announcements.json',
    'announcements.anonymous.json',
    'announcements.inactive.json',
    'announcements.limit-1.json',
    'announcements.since-id.json',
    'announcements.until-id.json',
    'announcements.show.json',
    'announcements.show.anonymous.json',
    'announcements.show.for-you.json',
    'errors/announcements.limit-zero.json',
    'errors/announcements.show.no-such-announcement.json',
    'errors/announcements.show.other-users-announcement.json',
    'errors/announcements.show.user-targeted.anonymous.json',
    'errors/admin.announcements.create.not-admin.json',
    'setup/admin.announcements.create.json',
    'setup/admin.announcements.update.json',
    'i.read-announcement.json',
    'i.read-announcement.again.json',
    'errors/i.read-announcement.no-such-announcement.json',
    'announcements.after-read.json',
    'i.read-announcement.user-targeted.json',
    'announcements.after-reading-user-targeted.json',
    'announcements.inactive.after-reading-user-targeted.json',
  ];

  it.each(files)('%s', async (file) => {
    const rec = JSON.parse(readFileSync(join(recorded, file), 'utf8')) as Recording;
    const request = JSON.parse(
      JSON.stringify(rec.request).replace(/"(au[0-9a-z]{14})"/g, (m, id: string) =>
        byRecordedId.has(id) ? `"${byRecordedId.get(id)}"` : m,
      ),
    ) as Record<string, unknown>;
    if (file === 'setup/admin.announcements.update.json') {
      // Archive a fresh one rather than the demo's.
      request.id = (
        (await contract.rest(
          'admin/announcements/create',
          { title: 'To archive', text: 'x', imageUrl: null },
          DEMO_TOKENS.admin,
        )) as { id: string }
      ).id;
    }
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    const bearer = token(rec.as);
    if (bearer) {
      headers.authorization = `Bearer ${bearer}`;
    }
    const res = await fetch(`${contract.sandbox.origin}/api/${rec.endpoint}`, {
      method: 'POST',
      headers,
      body: JSON.stringify(request),
    });
    const text = await res.text();
    const body = text === '' ? null : (JSON.parse(text) as unknown);
    expect(res.status).toBe(rec.status);
    const error = (rec.response as { error?: { code: string; id: string } } | null)?.error;
    if (error) {
      expect((body as { error: unknown }).error).toMatchObject({ code: error.code, id: error.id });
    } else {
      expect(shapeProblems(body, rec.response)).toEqual([]);
      if (rec.response === null) {
        expect(body).toBeNull();
      }
    }
  });
});
