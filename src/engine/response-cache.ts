import { createHash } from 'node:crypto';
import { createRedisCache } from '@envelop/response-cache-redis';
import {
  type Cache,
  createInMemoryCache,
  hashSHA256,
  useResponseCache,
} from '@graphql-yoga/plugin-response-cache';
import { printSchema } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import type { Context } from '../schema/context.js';
import { schema } from '../schema/index.js';
import type { SharedRedis } from '../state/redis.js';

/**
 * How long an anonymous result of each public root field may be served again, in ms. The trend
 * follows Misskey's own `cacheSec: 60` for `hashtags/trend`; the rest changes more often.
 */
export const PUBLIC_FIELD_TTL_MS: Readonly<Record<string, number>> = {
  trendingHashtags: 60_000,
  hashtags: 30_000,
  hashtag: 30_000,
  hashtagSuggestions: 30_000,
  announcements: 30_000,
  announcement: 30_000,
};

export interface ResponseCacheOptions {
  /** Overrides of `PUBLIC_FIELD_TTL_MS` (0 turns a field's caching off). */
  ttlMs?: Readonly<Record<string, number>>;
  /** Entries kept at most (least recently used go first; in memory only). */
  maxEntries?: number;
  /** Keep entries in Redis, shared by every replica (none: in this process's memory). */
  redis?: SharedRedis | null;
  /** What the answers depend on besides the schema (the upstream origin): part of each key. */
  namespace?: string;
}

/**
 * A short-lived shared response cache for credential-free public reads.
 *
 * - Only HTTP operations sent without an `Authorization` header are looked up or stored; anything
 *   sent with a token (and every websocket operation) bypasses the cache both ways, so nothing
 *   fetched with one user's token is ever served to another caller.
 * - An operation is stored only when every root field it selects is listed in
 *   `PUBLIC_FIELD_TTL_MS` (any other root field has TTL 0), for the smallest TTL among them.
 * - Results with errors are never stored; mutations and subscriptions are never cached.
 * The cache is per gateway process (in memory), or shared by the replicas in Redis: see
 * `redisResponseCache`.
 */
export function responseCache(
  options: ResponseCacheOptions = {},
): Plugin<Record<string, unknown> & Context> {
  const ttls = { ...PUBLIC_FIELD_TTL_MS, ...options.ttlMs };
  const ttlPerSchemaCoordinate: Record<string, number> = {};
  for (const field of Object.keys(schema.getQueryType()?.getFields() ?? {})) {
    ttlPerSchemaCoordinate[`Query.${field}`] = ttls[field] ?? 0;
  }
  const plugin = useResponseCache({
    // Every cached entry is anonymous, hence shared: there is no per-user session.
    session: () => null,
    enabled: (request) => isAnonymousHttp(request),
    // Only anonymous operations get here (see onParams below); one whose variables cannot be
    // keyed gets a unique key, so it is never found again.
    buildResponseCacheKey: (params) => anonymousKey(params),
    cache: options.redis
      ? redisResponseCache(options.redis, options.namespace ?? '')
      : createInMemoryCache({ max: options.maxEntries ?? 1000 }),
    ttl: 0,
    ttlPerSchemaCoordinate,
    // Mutations need a token, so they never reach this plugin; nothing to invalidate.
    invalidateViaMutation: false,
    includeExtensionMetadata: false,
  }) as Plugin<Record<string, unknown> & Context>;
  // The plugin would build (and remember) a key for every operation, cached or not: an operation
  // with a token, never looked up or stored, skips it and costs nothing here.
  const onParams = plugin.onParams;
  return {
    ...plugin,
    onParams: (payload) => (isAnonymousHttp(payload.request) ? onParams?.(payload) : undefined),
  };
}

let privateOperations = 0;

/** Variables nested deeper than this are not worth a cache entry (and must not cost a deep
 *  recursion): such an operation runs uncached. */
const MAX_VARIABLE_DEPTH = 32;

/** The cache key of an anonymous operation, or a unique (never stored) key when its variables
 *  are nested too deeply to be keyed. */
function anonymousKey(params: {
  documentString: string;
  operationName?: string | null;
  variableValues?: Record<string, unknown> | null;
  sessionId?: string | null;
}): ReturnType<typeof hashSHA256> {
  const variables = stableJson(params.variableValues ?? {}, 0);
  if (variables === undefined) {
    return `private:${++privateOperations}`;
  }
  return hashSHA256(
    [params.documentString, params.operationName ?? '', variables, params.sessionId ?? ''].join(
      '|',
    ),
  );
}

/** JSON with sorted object keys: equal variables give equal keys whatever their order.
 *  Undefined when nested deeper than `MAX_VARIABLE_DEPTH`. */
function stableJson(value: unknown, depth: number): string | undefined {
  if (value === null || typeof value !== 'object') {
    return JSON.stringify(value) ?? 'null';
  }
  if (depth >= MAX_VARIABLE_DEPTH) {
    return undefined;
  }
  const parts: string[] = [];
  if (Array.isArray(value)) {
    for (const item of value) {
      const json = stableJson(item, depth + 1);
      if (json === undefined) {
        return undefined;
      }
      parts.push(json);
    }
    return `[${parts.join(',')}]`;
  }
  const record = value as Record<string, unknown>;
  for (const key of Object.keys(record).sort()) {
    if (record[key] === undefined) {
      continue;
    }
    const json = stableJson(record[key], depth + 1);
    if (json === undefined) {
      return undefined;
    }
    parts.push(`${JSON.stringify(key)}:${json}`);
  }
  return `{${parts.join(',')}}`;
}

/** An HTTP request without any `Authorization` header (websocket operations have no `request`). */
function isAnonymousHttp(request: Request | undefined): boolean {
  return request?.headers !== undefined && !request.headers.has('authorization');
}

/**
 * The response cache in Redis (the envelop Redis store), for entries shared by the replicas.
 * - Keys are `misskey-graphql:rc:<hash of schema and upstream>:<operation hash>`: a replica with
 *   another schema or upstream never reads them, and a client's `If-None-Match` can only name
 *   an entry of this cache. Only anonymous results get here, so no key or value holds a token.
 * - Each entry is one string with its own TTL (`SET … PX`); the store's entity index sets are not
 *   written (nothing is invalidated by mutation, and those sets would never expire).
 * - Redis down or slow: `get` misses and `set` is skipped (the operation runs upstream as if there
 *   were no cache); `SharedRedis` logs the outage once and reconnects.
 */
export function redisResponseCache(redis: SharedRedis, namespace: string): Cache {
  const version = createHash('sha256')
    .update(printSchema(schema))
    .update('\0')
    .update(namespace)
    .digest('base64url')
    .slice(0, 12);
  const prefix = `rc:${version}:`;
  const store = createRedisCache({ redis: redis.client });
  return {
    get: async (key) =>
      (await redis.run(async () => (await store.get(prefix + key)) ?? undefined)) ?? undefined,
    set: async (key, result, _entities, ttl) => {
      if (Number.isFinite(ttl) && ttl > 0) {
        await redis.run(async () => store.set(prefix + key, result, [], ttl));
      }
    },
    invalidate: () => undefined,
  };
}
