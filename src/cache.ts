import { createInMemoryCache, useResponseCache } from '@graphql-yoga/plugin-response-cache';
import type { Plugin } from 'graphql-yoga';
import type { Context } from './context.js';
import { schema } from './schema/index.js';

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
  /** Entries kept at most (least recently used go first). */
  maxEntries?: number;
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
 * The cache is per gateway process (in memory).
 */
export function responseCache(
  options: ResponseCacheOptions = {},
): Plugin<Record<string, unknown> & Context> {
  const ttls = { ...PUBLIC_FIELD_TTL_MS, ...options.ttlMs };
  const ttlPerSchemaCoordinate: Record<string, number> = {};
  for (const field of Object.keys(schema.getQueryType()?.getFields() ?? {})) {
    ttlPerSchemaCoordinate[`Query.${field}`] = ttls[field] ?? 0;
  }
  return useResponseCache({
    // Every cached entry is anonymous, hence shared: there is no per-user session.
    session: () => null,
    enabled: (request) => isAnonymousHttp(request),
    cache: createInMemoryCache({ max: options.maxEntries ?? 1000 }),
    ttl: 0,
    ttlPerSchemaCoordinate,
    // Mutations need a token, so they never reach this plugin; nothing to invalidate.
    invalidateViaMutation: false,
    includeExtensionMetadata: false,
  }) as Plugin<Record<string, unknown> & Context>;
}

/** An HTTP request without any `Authorization` header (websocket operations have no `request`). */
function isAnonymousHttp(request: Request | undefined): boolean {
  return request?.headers !== undefined && !request.headers.has('authorization');
}
