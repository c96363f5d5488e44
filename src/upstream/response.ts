/**
 * Bounds on what the upstream sends back, so a broken or hostile upstream costs a bounded amount
 * of memory and CPU per call, whatever its headers claim.
 */

/** Largest body read, counted on the bytes received (a `content-length` may lie or be absent). */
export const MAX_BODY_BYTES = 16 * 1024 * 1024;
/** Deepest JSON accepted: Misskey's answers nest a dozen levels; 100,000 would exhaust stacks
 *  further down (parsing, GraphQL's completion, logging). */
export const MAX_JSON_DEPTH = 64;
/** Most items kept of a list answer that no `limit` bounds. */
export const MAX_UNBOUNDED_LIST_ITEMS = 1_000;

/**
 * True when `value` (parsed JSON) nests arrays/objects more than `maxDepth` deep. Checked after
 * `JSON.parse`, which is not recursive and takes any depth; what is recursive further down
 * (GraphQL's completion, serialisation, logging) only ever sees a value that passed. An explicit
 * stack and an early exit: a hostile value costs at most one pass, and a normal answer a walk of
 * its objects (a tenth of the time of a scan of its characters, or of `JSON.parse` itself).
 */
export function nestsDeeperThan(value: unknown, maxDepth: number): boolean {
  if (value === null || typeof value !== 'object') {
    return false;
  }
  const stack: unknown[] = [value];
  const depths: number[] = [1];
  const pushIfNested = (child: unknown, depth: number) => {
    if (child !== null && typeof child === 'object') {
      stack.push(child);
      depths.push(depth);
    }
  };
  while (stack.length > 0) {
    const node = stack.pop() as Record<string, unknown> | unknown[];
    const depth = depths.pop() as number;
    if (depth > maxDepth) {
      return true;
    }
    if (Array.isArray(node)) {
      for (let i = 0; i < node.length; i++) {
        pushIfNested(node[i], depth + 1);
      }
      continue;
    }
    // `for…in` over a parsed object visits its own keys without building an array of values.
    for (const key in node) {
      pushIfNested(node[key], depth + 1);
    }
  }
  return false;
}

/**
 * A list answer cut to what was asked: `limit` items when the call had a numeric `limit`,
 * `userIds.length` for `users/show` by ids, else `MAX_UNBOUNDED_LIST_ITEMS`. Misskey never sends
 * more than asked; an upstream that does cannot make a `first: 10` field return a million items.
 */
export function boundList(endpoint: string, params: unknown, payload: unknown): unknown {
  if (!Array.isArray(payload)) {
    return payload;
  }
  const asked = (params ?? {}) as { limit?: unknown; userIds?: unknown };
  let max = MAX_UNBOUNDED_LIST_ITEMS;
  if (typeof asked.limit === 'number' && Number.isFinite(asked.limit)) {
    max = Math.max(0, Math.floor(asked.limit));
  }
  if (endpoint === 'users/show' && Array.isArray(asked.userIds)) {
    max = asked.userIds.length;
  }
  return payload.length > max ? payload.slice(0, max) : payload;
}
