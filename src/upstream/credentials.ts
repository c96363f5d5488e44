import { createHash } from 'node:crypto';

/**
 * What the gateway accepts as a Misskey access token, at the edge and in the upstream client
 * alike: an RFC 6750 `b64token` of at most `MAX_TOKEN_LENGTH` characters. Anything else (CR/LF,
 * NUL, spaces, characters above U+00FF, megabyte strings) would either be refused by undici or
 * smuggle bytes into the `Authorization` header, so it never leaves the process.
 */
export const MAX_TOKEN_LENGTH = 512;

const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;

export function isValidToken(token: unknown): token is string {
  return (
    typeof token === 'string' &&
    token.length > 0 &&
    token.length <= MAX_TOKEN_LENGTH &&
    B64TOKEN.test(token)
  );
}

/**
 * A short, stable, non-reversible name for the holder of a token: tokens are never kept as map
 * or Redis keys (rate-limit buckets, websocket shares, the breaker's callers); this is.
 */
export function tokenKey(token: string): string {
  return createHash('sha256').update(token).digest('base64url').slice(0, 22);
}
