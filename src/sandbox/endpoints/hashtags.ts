import { apiError, internalError } from '../errors.js';
import { createdAtOf } from '../ids.js';
import { packDriveFile, packUserDetailed, packUserLite, profileHooks } from '../pack.js';
import type { EndpointContext, EndpointDef } from '../registry.js';
import type { Store, UserRow } from '../store.js';
import { extractHashtags, me } from './core.js';

/**
 * Hashtags (API.md §1.7, recordings `hashtags.*.json`) and the `notes/create` that feeds them.
 * Statistics follow Misskey's HashtagService: a tag in a public/home note counts its author once
 * as "mentioned"; a tag in a profile counts the user as "attached" (and is removed again when the
 * profile drops it). Every use also feeds the trend (FeaturedService, Redis in Misskey): each user
 * counts once per tag per hour, ranked in 1-hour windows, charted in 10-minute buckets.
 */

interface HashtagRow {
  name: string;
  mentioned: Set<string>;
  attached: Set<string>;
  /** Heap order of the last write: ties in `hashtags/list` sorts come out in this order. */
  writeSeq: number;
}

interface NoteRow {
  id: string;
  userId: string;
  text: string | null;
  cw: string | null;
  visibility: 'public' | 'home' | 'followers' | 'specified';
  localOnly: boolean;
  reactionAcceptance: string | null;
  tags: string[];
  fileIds: string[];
  replyId: string | null;
  renoteId: string | null;
}

interface HashtagTables {
  rows: Map<string, HashtagRow>;
  seq: number;
  notes: Map<string, NoteRow>;
  /** Trend, as Misskey keeps it in Redis. */
  trend: {
    /** `hashtagUsers:<tag>`: users already counted for the tag, expiring 1 h after the first. */
    counted: Map<string, { users: Set<string>; expiresAt: number }>;
    /** `hashtagsRanking:<hour window>`: tag → score. */
    ranking: Map<number, Map<string, number>>;
    /** `hashtagUsers:<tag>:<10-minute bucket start>`: distinct users in the bucket. */
    buckets: Map<string, Set<string>>;
  };
}

const HOUR = 3_600_000;
const TEN_MINUTES = 600_000;

function tables(store: Store): HashtagTables {
  return store.ext<HashtagTables>('hashtags', () => ({
    rows: new Map(),
    seq: 0,
    notes: new Map(),
    trend: { counted: new Map(), ranking: new Map(), buckets: new Map() },
  }));
}

/** Misskey's `normalizeForSearch`: NFKC, then lower case. */
export function normalizeTag(tag: string): string {
  return tag.normalize('NFKC').toLowerCase();
}

/** `HashtagService.updateHashtagsRanking`: a user counts once per tag per hour. */
function rank(store: Store, tag: string, userId: string, now = Date.now()): void {
  const { trend } = tables(store);
  let counted = trend.counted.get(tag);
  if (!counted || counted.expiresAt <= now) {
    counted = { users: new Set(), expiresAt: now + HOUR };
    trend.counted.set(tag, counted);
  }
  if (counted.users.has(userId)) {
    return;
  }
  counted.users.add(userId);
  const window = Math.floor(now / HOUR);
  let ranking = trend.ranking.get(window);
  if (!ranking) {
    ranking = new Map();
    trend.ranking.set(window, ranking);
    trend.ranking.delete(window - 3);
  }
  ranking.set(tag, (ranking.get(tag) ?? 0) + 1);
  const bucket = `${tag}:${Math.floor(now / TEN_MINUTES) * TEN_MINUTES}`;
  let users = trend.buckets.get(bucket);
  if (!users) {
    users = new Set();
    trend.buckets.set(bucket, users);
  }
  users.add(userId);
}

/** `HashtagService.updateHashtag`. */
function updateHashtag(
  store: Store,
  user: UserRow,
  rawTag: string,
  kind: 'mentioned' | 'attached',
  inc = true,
): void {
  const tag = normalizeTag(rawTag);
  const t = tables(store);
  rank(store, tag, user.id);
  let row = t.rows.get(tag);
  if (!row) {
    if (!inc) {
      return;
    }
    row = { name: tag, mentioned: new Set(), attached: new Set(), writeSeq: 0 };
    t.rows.set(tag, row);
  }
  const set = row[kind];
  const changed = inc ? !set.has(user.id) : set.has(user.id);
  if (inc) {
    set.add(user.id);
  } else {
    set.delete(user.id);
  }
  if (changed) {
    row.writeSeq = ++t.seq;
  }
}

/** `HashtagService.updateUsertags`: the profile's tags are attached, dropped ones detached. */
function updateUsertags(store: Store, user: UserRow, tags: string[]): void {
  for (const tag of tags) {
    updateHashtag(store, user, tag, 'attached', true);
  }
  const kept = new Set(tags.map(normalizeTag));
  for (const row of [...tables(store).rows.values()]) {
    if (row.attached.has(user.id) && !kept.has(row.name)) {
      updateHashtag(store, user, row.name, 'attached', false);
    }
  }
}

/** Profile tags feed the `attached` statistics: core's i/update reports every new set of tags. */
export function setupHashtags(store: Store): void {
  profileHooks(store).tagsChanged = (user) => updateUsertags(store, user, user.tags);
}

function countsOf(row: HashtagRow, users: Map<string, UserRow>) {
  const local = (ids: Set<string>) => [...ids].filter((id) => users.get(id)?.host === null).length;
  return {
    mentionedUsersCount: row.mentioned.size,
    mentionedLocalUsersCount: local(row.mentioned),
    mentionedRemoteUsersCount: row.mentioned.size - local(row.mentioned),
    attachedUsersCount: row.attached.size,
    attachedLocalUsersCount: local(row.attached),
    attachedRemoteUsersCount: row.attached.size - local(row.attached),
  };
}

function packHashtag(store: Store, row: HashtagRow): Record<string, unknown> {
  return { tag: row.name, ...countsOf(row, store.users) };
}

type ListSort = `${'+' | '-'}${'mentioned' | 'attached'}${'' | 'Local' | 'Remote'}Users`;

/** The 20-number chart: distinct users per 10-minute bucket, newest first. Misskey steps back
 *  0, 0, 10, 30, 60, 100 … minutes (it subtracts i × 10 minutes on step i), hence the repeated
 *  first bucket (API.md §1.7). */
function chartOf(store: Store, tag: string, now: number): number[] {
  const { buckets } = tables(store).trend;
  const chart: number[] = [];
  let at = Math.floor(now / TEN_MINUTES) * TEN_MINUTES;
  for (let i = 0; i < 20; i++) {
    chart.push(buckets.get(`${tag}:${at}`)?.size ?? 0);
    at -= i * TEN_MINUTES;
  }
  return chart;
}

/** `FeaturedService.getRankingOf(…, 10)`: ZRANGE 0..10 REV of the current and previous hour
 *  (ties in reverse name order, as Redis does), current-hour tags first. */
function trendRanking(store: Store, now: number): string[] {
  const { ranking } = tables(store).trend;
  const window = Math.floor(now / HOUR);
  const top = (scores: Map<string, number> | undefined) =>
    [...(scores ?? new Map<string, number>()).entries()]
      .sort(([a, x], [b, y]) => y - x || (a < b ? 1 : a > b ? -1 : 0))
      .slice(0, 11)
      .map(([tag]) => tag);
  return [...new Set([...top(ranking.get(window)), ...top(ranking.get(window - 1))])];
}

function compare<T extends string | number>(a: T, b: T): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Characters Misskey's `safeForSql` refuses in `hashtags/users` (a plain Error → 500). */
const UNSAFE_FOR_SQL = ['\0', '\b', '\t', '\x1a', '\n', '\r', '"', "'", '\\', '%'];

type NoteParams = {
  text?: string | null;
  cw?: string | null;
  visibility: NoteRow['visibility'];
  localOnly: boolean;
  reactionAcceptance: string | null;
  noExtractHashtags: boolean;
  fileIds?: string[];
  mediaIds?: string[];
  replyId?: string | null;
  renoteId?: string | null;
};

function packNote(store: Store, note: NoteRow): Record<string, unknown> {
  const author = store.users.get(note.userId) as UserRow;
  const reply = note.replyId ? tables(store).notes.get(note.replyId) : undefined;
  const renote = note.renoteId ? tables(store).notes.get(note.renoteId) : undefined;
  return {
    id: note.id,
    createdAt: createdAtOf(note.id),
    userId: note.userId,
    user: packUserLite(store, author),
    text: note.text,
    cw: note.cw,
    visibility: note.visibility,
    localOnly: note.localOnly,
    reactionAcceptance: note.reactionAcceptance,
    renoteCount: 0,
    repliesCount: 0,
    reactionCount: 0,
    reactions: {},
    reactionEmojis: {},
    // Misskey leaves `tags` out when there are none.
    ...(note.tags.length > 0 ? { tags: note.tags } : {}),
    fileIds: note.fileIds,
    files: note.fileIds.flatMap((id) => {
      const file = store.driveFiles.get(id);
      return file ? [packDriveFile(store, file, { withUser: true })] : [];
    }),
    replyId: note.replyId,
    renoteId: note.renoteId,
    ...(reply ? { reply: packNote(store, reply) } : {}),
    ...(renote ? { renote: packNote(store, renote) } : {}),
    clippedCount: 0,
  };
}

export const hashtagsEndpoints: EndpointDef[] = [
  {
    name: 'notes/create',
    limit: { duration: HOUR, max: 300 },
    handler: (ctx: EndpointContext<NoteParams>) => {
      const author = me(ctx);
      const { store, params } = ctx;
      const t = tables(store);
      const fileIds = params.fileIds ?? params.mediaIds ?? [];
      for (const id of fileIds) {
        if (store.driveFiles.get(id)?.userId !== author.id) {
          throw apiError(
            'NO_SUCH_FILE',
            'b6992544-63e7-67f0-fa7f-32444b1b5306',
            'Some files are not found.',
          );
        }
      }
      if (params.replyId != null && !t.notes.has(params.replyId)) {
        throw apiError(
          'NO_SUCH_REPLY_TARGET',
          '749ee0f6-d3da-459a-bf02-282e2da4292c',
          'No such reply target.',
        );
      }
      if (params.renoteId != null && !t.notes.has(params.renoteId)) {
        throw apiError(
          'NO_SUCH_RENOTE_TARGET',
          'b5c90186-4ab0-49c8-9bba-a1f76c282ba4',
          'No such renote target.',
        );
      }
      const text = params.text ?? null;
      const tags = params.noExtractHashtags
        ? []
        : extractHashtags([params.cw, text].filter(Boolean).join(' '))
            .filter((tag) => [...tag].length <= 128)
            .slice(0, 32);
      const note: NoteRow = {
        id: store.ids.gen(),
        userId: author.id,
        text,
        cw: params.cw ?? null,
        visibility: params.visibility,
        localOnly: params.localOnly,
        reactionAcceptance: params.reactionAcceptance,
        tags,
        fileIds,
        replyId: params.replyId ?? null,
        renoteId: params.renoteId ?? null,
      };
      t.notes.set(note.id, note);
      if (note.visibility === 'public' || note.visibility === 'home') {
        for (const tag of tags) {
          updateHashtag(store, author, tag, 'mentioned');
        }
      }
      // Misskey's incNotesCountOfUser also stamps updatedAt (what `state: alive` looks at).
      author.notesCount++;
      author.updatedAt = new Date().toISOString();
      author.lastActiveAt = Date.now();
      return { createdNote: packNote(store, note) };
    },
  },
  {
    name: 'hashtags/list',
    handler: (
      ctx: EndpointContext<{
        sort: ListSort;
        limit: number;
        attachedToUserOnly: boolean;
        attachedToLocalUserOnly: boolean;
        attachedToRemoteUserOnly: boolean;
      }>,
    ) => {
      const { store, params } = ctx;
      const field = `${params.sort.slice(1)}Count` as keyof ReturnType<typeof countsOf>;
      const rows = [...tables(store).rows.values()]
        .sort((a, b) => a.writeSeq - b.writeSeq)
        .map((row) => ({ row, counts: countsOf(row, store.users) }))
        .filter(
          ({ counts }) =>
            (!params.attachedToUserOnly || counts.attachedUsersCount !== 0) &&
            (!params.attachedToLocalUserOnly || counts.attachedLocalUsersCount !== 0) &&
            (!params.attachedToRemoteUserOnly || counts.attachedRemoteUsersCount !== 0),
        );
      // Ascending with ties in heap order; `+` (largest first) is the exact reverse, which is
      // how the recorded server orders ties (hashtags.list*.json).
      rows.sort((a, b) => a.counts[field] - b.counts[field]);
      if (params.sort.startsWith('+')) {
        rows.reverse();
      }
      return rows.slice(0, params.limit).map(({ row }) => packHashtag(store, row));
    },
  },
  {
    name: 'hashtags/search',
    handler: (ctx: EndpointContext<{ query: string; limit: number; offset: number }>) => {
      const { store, params } = ctx;
      // A prefix match on the lower-cased query (no NFKC), most used by local users first.
      const prefix = params.query.toLowerCase();
      return [...tables(store).rows.values()]
        .sort((a, b) => a.writeSeq - b.writeSeq)
        .filter((row) => row.name.startsWith(prefix))
        .map((row) => ({ row, local: countsOf(row, store.users).mentionedLocalUsersCount }))
        .sort((a, b) => b.local - a.local)
        .slice(params.offset, params.offset + params.limit)
        .map(({ row }) => row.name);
    },
  },
  {
    name: 'hashtags/show',
    handler: (ctx: EndpointContext<{ tag: string }>) => {
      const row = tables(ctx.store).rows.get(normalizeTag(ctx.params.tag));
      if (!row) {
        throw apiError(
          'NO_SUCH_HASHTAG',
          '110ee688-193e-4a3a-9ecf-c167b2e6981e',
          'No such hashtag.',
        );
      }
      return packHashtag(ctx.store, row);
    },
  },
  {
    name: 'hashtags/trend',
    handler: (ctx) => {
      const now = Date.now();
      return trendRanking(ctx.store, now).map((tag) => {
        const chart = chartOf(ctx.store, tag, now);
        return { tag, chart, usersCount: Math.max(...chart) };
      });
    },
  },
  {
    name: 'hashtags/users',
    handler: (
      ctx: EndpointContext<{
        tag: string;
        sort: `${'+' | '-'}${'follower' | 'createdAt' | 'updatedAt'}`;
        limit: number;
        offset: number;
        state: 'all' | 'alive';
        origin: 'combined' | 'local' | 'remote';
      }>,
    ) => {
      const { store, params } = ctx;
      if (UNSAFE_FOR_SQL.some((c) => params.tag.includes(c))) {
        throw internalError('Injection');
      }
      const tag = normalizeTag(params.tag);
      const alive = Date.now() - 5 * 24 * HOUR;
      const followers = new Map<string, number>();
      for (const edge of store.follows) {
        const followee = edge.split('>')[1] as string;
        followers.set(followee, (followers.get(followee) ?? 0) + 1);
      }
      const key = (user: UserRow): number | string => {
        switch (params.sort.slice(1)) {
          case 'follower':
            return followers.get(user.id) ?? 0;
          case 'createdAt':
            return user.id;
          default:
            return user.updatedAt ?? '';
        }
      };
      const descending = params.sort.startsWith('+');
      return (
        [...store.users.values()]
          .filter(
            (user) =>
              user.tags.includes(tag) &&
              !user.isSuspended &&
              (params.state === 'all' ||
                (user.updatedAt !== null && Date.parse(user.updatedAt) > alive)) &&
              (params.origin === 'remote' ? user.host !== null : true) &&
              (params.origin === 'local' ? user.host === null : true),
          )
          // Ties keep heap order (the user written last comes last) in both directions.
          .sort((a, b) => compare(a.updatedAt ?? '', b.updatedAt ?? '') || compare(a.id, b.id))
          .sort((a, b) => {
            return compare(key(a), key(b)) * (descending ? -1 : 1);
          })
          .slice(params.offset, params.offset + params.limit)
          .map((user) => packUserDetailed(store, user, ctx.me))
      );
    },
  },
];
