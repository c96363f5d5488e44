import type { CallOptions, MisskeyClient } from '../upstream/client.js';
import type { UserDetailed } from '../upstream/entities.js';

/**
 * `users/show` takes any number of ids (Misskey sets no maximum, only a 1 MiB body), keeps the
 * request order but silently drops unknown and suspended users, and refuses duplicates. Batches
 * are chunked so one request body stays small; results are re-aligned by id, unknown → null.
 */
export const USERS_SHOW_CHUNK = 100;

export async function loadUsers(
  client: MisskeyClient,
  token: string | null,
  ids: readonly string[],
  options: CallOptions = {},
): Promise<(UserDetailed | null)[]> {
  const unique = [...new Set(ids)];
  const chunks: string[][] = [];
  for (let i = 0; i < unique.length; i += USERS_SHOW_CHUNK) {
    chunks.push(unique.slice(i, i + USERS_SHOW_CHUNK));
  }
  const results = await Promise.all(
    chunks.map(
      (userIds) =>
        client.call('users/show', { userIds }, token, options) as unknown as Promise<
          UserDetailed[]
        >,
    ),
  );
  const byId = new Map<string, UserDetailed>();
  for (const users of results) {
    if (!Array.isArray(users)) {
      continue;
    }
    for (const user of users) {
      byId.set(user.id, user);
    }
  }
  return ids.map((id) => byId.get(id) ?? null);
}
