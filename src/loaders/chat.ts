import type { CallOptions, EndpointName, MisskeyClient } from '../upstream/client.js';

/**
 * How many chat read calls one GraphQL request keeps in flight at once. A page of 20 rooms each
 * asking for its members is 20 `chat/rooms/members` calls: they run this many at a time instead of
 * all at once, so one query cannot take the whole upstream pool.
 */
export const CHAT_READ_CONCURRENCY = 6;

/** A read call: endpoint and params. Two equal reads in one request are made once. */
export interface ChatRead {
  endpoint: EndpointName;
  params: Record<string, unknown>;
}

/** The cache key of a read: the endpoint and its params with sorted keys. */
export function chatReadKey(read: ChatRead): string {
  const params = Object.keys(read.params)
    .sort()
    .filter((key) => read.params[key] !== undefined)
    .map((key) => [key, read.params[key]]);
  return `${read.endpoint} ${JSON.stringify(params)}`;
}

/** Runs `fn` over `items` with at most `concurrency` calls pending; results keep input order. */
export async function mapLimit<T, R>(
  items: readonly T[],
  concurrency: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await fn(items[index] as T, index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
  return results;
}

/**
 * Batch function of the per-request chat read loader: runs every read of the batch with bounded
 * concurrency and answers each key with its result or its error (the caller converts errors; this
 * module knows nothing of GraphQL).
 */
export async function loadChatReads(
  client: MisskeyClient,
  token: string | null,
  reads: readonly ChatRead[],
  options: CallOptions = {},
  concurrency = CHAT_READ_CONCURRENCY,
): Promise<(unknown | Error)[]> {
  return mapLimit(reads, concurrency, async (read) => {
    try {
      return await client.call(read.endpoint, read.params as never, token, options);
    } catch (error) {
      return error instanceof Error ? error : new Error(String(error));
    }
  });
}
