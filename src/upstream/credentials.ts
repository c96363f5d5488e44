/**
 * What a Misskey access token may look like, checked before a token goes anywhere (an HTTP
 * header, a map key, the stream hub). RFC 6750's `b64token` is the widest a Bearer credential may
 * be; Misskey's own tokens are alphanumeric and far shorter than the bound.
 */

/** Longest token accepted (Misskey's are 16 or 32 characters). */
export const MAX_TOKEN_LENGTH = 512;

const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;

/** True when `token` can be sent as `Authorization: Bearer <token>` and could be a Misskey token. */
export function isValidToken(token: string): boolean {
  return token.length > 0 && token.length <= MAX_TOKEN_LENGTH && B64TOKEN.test(token);
}
