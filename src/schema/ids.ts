import { badInput } from './errors.js';

/** Misskey ids are alphanumeric (`misskey:id` = /^[a-zA-Z0-9]+$/); anything else cannot exist. */
const ID = /^[a-zA-Z0-9]{1,64}$/;

/** Returns the id, or throws BAD_USER_INPUT before any upstream call. */
export function assertId(id: string, argument: string): string {
  if (!ID.test(id)) {
    throw badInput(
      `${argument} must be a Misskey id (letters and digits), got "${id.slice(0, 40)}".`,
      {
        argument,
      },
    );
  }
  return id;
}

export function isMisskeyId(id: string): boolean {
  return ID.test(id);
}
