import type { SharedRedis } from '../state/redis.js';
import type { AnyUser, UserLite } from '../upstream/entities.js';

/**
 * The lite part of Misskey users, shared by every request and every viewer: Misskey packs
 * `UserLite` the same for whoever asks, so a sender's name and avatar need not cost a
 * `users/show` per page. Entries are refreshed by every upstream answer that embeds the user and
 * live at most `ttlMs` (the staleness bound). Detail fields (counts, relations such as
 * isFollowing) never come from here.
 *
 * Caveat: a user suspended or deleted upstream may still be served from here for up to `ttlMs`.
 */
export interface UserCache {
  /** Cached lite users, aligned with `ids` (undefined = not cached or expired). */
  getMany(ids: readonly string[]): Promise<(UserLite | undefined)[]>;
  /** Stores (or refreshes) the lite part of users an upstream answer carried. */
  put(user: AnyUser): void;
}

/** The keys of Misskey's `UserLite`: the part that does not depend on the viewer. */
const LITE_KEYS = [
  'id',
  'name',
  'username',
  'host',
  'avatarUrl',
  'avatarBlurhash',
  'avatarDecorations',
  'isBot',
  'isCat',
  'requireSigninToViewContents',
  'makeNotesFollowersOnlyBefore',
  'makeNotesHiddenBefore',
  'instance',
  'emojis',
  'onlineStatus',
  'badgeRoles',
] as const;

/** The viewer-independent part of a user (a lite user, or the lite keys of a detailed one). */
export function liteOf(user: AnyUser): UserLite {
  const lite: Record<string, unknown> = {};
  const source = user as unknown as Record<string, unknown>;
  for (const key of LITE_KEYS) {
    if (key in source) {
      lite[key] = source[key];
    }
  }
  return lite as unknown as UserLite;
}

/** A user id as Misskey makes them (aidx and friends): anything else is never a cache key. */
const USER_ID = /^[0-9a-z]{1,32}$/;

/** In this process: a bounded map, least recently stored first out. */
export class MemoryUserCache implements UserCache {
  readonly #entries = new Map<string, { user: UserLite; expires: number }>();

  constructor(
    readonly ttlMs: number,
    readonly maxEntries = 10_000,
  ) {}

  get size(): number {
    return this.#entries.size;
  }

  async getMany(ids: readonly string[]): Promise<(UserLite | undefined)[]> {
    const now = Date.now();
    return ids.map((id) => {
      const entry = this.#entries.get(id);
      if (entry && entry.expires > now) {
        return entry.user;
      }
      if (entry) {
        this.#entries.delete(id);
      }
      return undefined;
    });
  }

  put(user: AnyUser): void {
    if (!USER_ID.test(user.id)) {
      return;
    }
    this.#entries.delete(user.id);
    if (this.#entries.size >= this.maxEntries) {
      this.#entries.delete(this.#entries.keys().next().value as string);
    }
    this.#entries.set(user.id, { user: liteOf(user), expires: Date.now() + this.ttlMs });
  }
}

/**
 * In Redis, shared by the replicas: one string per user with its own expiry. Writes of one user
 * are skipped while this process wrote it less than a quarter of the TTL ago (every page embeds
 * the same senders again). Redis down: reads miss and writes are dropped.
 */
export class RedisUserCache implements UserCache {
  readonly #written = new Map<string, number>();

  constructor(
    readonly redis: SharedRedis,
    readonly ttlMs: number,
    readonly prefix: string,
  ) {}

  async getMany(ids: readonly string[]): Promise<(UserLite | undefined)[]> {
    const keys = ids.map((id) => this.prefix + id);
    const values = (await this.redis.run((client) => client.mget(...keys))) ?? [];
    return ids.map((_, i) => parseLite(values[i] ?? null));
  }

  put(user: AnyUser): void {
    if (!USER_ID.test(user.id)) {
      return;
    }
    const now = Date.now();
    if ((this.#written.get(user.id) ?? 0) > now - this.ttlMs / 4) {
      return;
    }
    if (this.#written.size >= 10_000) {
      this.#written.clear();
    }
    this.#written.set(user.id, now);
    const value = JSON.stringify(liteOf(user));
    void this.redis.run((client) => client.set(this.prefix + user.id, value, 'PX', this.ttlMs));
  }
}

function parseLite(value: string | null): UserLite | undefined {
  if (value === null) {
    return undefined;
  }
  try {
    const parsed = JSON.parse(value) as UserLite;
    return typeof parsed?.id === 'string' ? parsed : undefined;
  } catch {
    return undefined;
  }
}

export interface UserCacheOptions {
  /** Staleness bound in ms; 0 turns the cache off. */
  ttlMs: number;
  redis?: SharedRedis | null;
  /** What the entries depend on (the upstream origin): part of each Redis key. */
  namespace?: string;
}

export function createUserCache(options: UserCacheOptions): UserCache | null {
  if (options.ttlMs <= 0) {
    return null;
  }
  if (options.redis) {
    const space = Buffer.from(options.namespace ?? '').toString('base64url');
    return new RedisUserCache(options.redis, options.ttlMs, `uc:${space}:`);
  }
  return new MemoryUserCache(options.ttlMs);
}
