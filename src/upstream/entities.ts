import type { entities } from 'misskey-js';

/**
 * The Misskey entities the gateway reads, from misskey-js (pinned to the targeted Misskey version).
 * Hand-written types only where misskey-js differs from the real server, each with the recording
 * that shows it.
 */
export type UserLite = entities.UserLite;
export type UserDetailed = entities.UserDetailed;
export type MeDetailed = entities.MeDetailed;
export type DriveFile = entities.DriveFile;

/** A user as the graph passes it around: an embedded `UserLite`, or a `UserDetailed` from
 *  `users/show`. Detail fields load the detailed form when they meet a lite one. */
export type AnyUser = UserLite | UserDetailed;

export function isDetailed(user: AnyUser): user is UserDetailed {
  return 'createdAt' in user && 'followersCount' in user;
}
