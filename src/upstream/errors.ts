/**
 * Typed failures of an upstream call. None of them ever carries the caller's token: messages are
 * built from the endpoint name, the HTTP status and Misskey's own error fields only.
 */

export abstract class UpstreamError extends Error {
  abstract readonly kind:
    | 'api'
    | 'unavailable'
    | 'timeout'
    | 'bad-response'
    | 'invalid-credential'
    | 'refused';
  constructor(
    readonly endpoint: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** Longest Misskey error `message`, `code`, `id` or `kind` kept (a hostile upstream may send
 *  megabytes); longer strings are cut and end with an ellipsis. */
export const MAX_ERROR_FIELD_CHARS = 1_000;
/** Largest serialized `info` of a Misskey error kept; a larger one is dropped. */
export const MAX_ERROR_INFO_CHARS = 10_000;

/** The body Misskey sends with every refused call: `{ error: { code, id, message, kind, info } }`. */
export interface MisskeyErrorBody {
  code: string;
  id: string;
  message: string;
  kind?: string;
  info?: unknown;
}

/** Misskey answered with an error envelope (any 4xx/5xx with `{ error: {...} }`). */
export class MisskeyApiError extends UpstreamError {
  readonly kind = 'api';
  readonly code: string;
  readonly id: string;
  readonly misskeyKind: string | undefined;
  readonly info: unknown;
  /** Seconds to wait, from `Retry-After` on a 429. */
  readonly retryAfter: number | undefined;

  constructor(
    endpoint: string,
    readonly status: number,
    body: MisskeyErrorBody,
    retryAfter?: number,
  ) {
    const code = bounded(body.code);
    super(endpoint, `${endpoint}: ${code} (${status}): ${bounded(body.message)}`);
    this.name = 'MisskeyApiError';
    this.code = code;
    this.id = bounded(body.id);
    this.misskeyKind = typeof body.kind === 'string' ? bounded(body.kind) : undefined;
    this.info = boundedInfo(body.info);
    this.retryAfter = retryAfter;
  }

  /**
   * Misskey reports many domain failures as `500 INTERNAL_ERROR` with the real reason in
   * `info.e.message` (e.g. "blocked", "room is full"). Returns that reason, if any.
   */
  get internalReason(): string | undefined {
    if (this.code !== 'INTERNAL_ERROR') {
      return undefined;
    }
    const e = (this.info as { e?: { message?: unknown } } | undefined)?.e;
    return typeof e?.message === 'string' ? bounded(e.message) : undefined;
  }
}

/** The upstream could not be reached, or the connection broke before a complete answer. */
export class UpstreamUnavailableError extends UpstreamError {
  readonly kind = 'unavailable';
  constructor(endpoint: string, reason: string, options?: ErrorOptions) {
    super(endpoint, `${endpoint}: upstream unavailable (${reason})`, options);
    this.name = 'UpstreamUnavailableError';
  }
}

/** The upstream did not answer within the deadline. */
export class UpstreamTimeoutError extends UpstreamError {
  readonly kind = 'timeout';
  constructor(
    endpoint: string,
    readonly timeoutMs: number,
  ) {
    super(endpoint, `${endpoint}: upstream did not answer within ${timeoutMs} ms`);
    this.name = 'UpstreamTimeoutError';
  }
}

/** The upstream answered with something that is not a Misskey response (non-JSON, wrong shape). */
export class UpstreamBadResponseError extends UpstreamError {
  readonly kind = 'bad-response';
  constructor(
    endpoint: string,
    readonly status: number,
    reason: string,
  ) {
    super(endpoint, `${endpoint}: bad upstream response (${status}): ${reason}`);
    this.name = 'UpstreamBadResponseError';
  }
}

/** The caller's token is not a token (see `isValidToken`): refused before any request. */
export class InvalidCredentialError extends UpstreamError {
  readonly kind = 'invalid-credential';
  constructor(endpoint: string) {
    super(endpoint, `${endpoint}: the access token is malformed`);
    this.name = 'InvalidCredentialError';
  }
}

/**
 * undici refused to send the request (an invalid header, path or body): a fault of what the
 * caller passed, never of the upstream, which was not contacted.
 */
export class UpstreamRequestRefusedError extends UpstreamError {
  readonly kind = 'refused';
  constructor(endpoint: string, reason: string) {
    super(endpoint, `${endpoint}: request not sent (${reason})`);
    this.name = 'UpstreamRequestRefusedError';
  }
}

function bounded(value: unknown): string {
  const text = typeof value === 'string' ? value : String(value ?? '');
  return text.length > MAX_ERROR_FIELD_CHARS ? `${text.slice(0, MAX_ERROR_FIELD_CHARS)}…` : text;
}

function boundedInfo(info: unknown): unknown {
  if (info === undefined || info === null || typeof info !== 'object') {
    return typeof info === 'string' ? bounded(info) : info;
  }
  try {
    return JSON.stringify(info).length <= MAX_ERROR_INFO_CHARS ? info : undefined;
  } catch {
    return undefined;
  }
}

export function isMisskeyErrorBody(value: unknown): value is { error: MisskeyErrorBody } {
  if (typeof value !== 'object' || value === null || !('error' in value)) {
    return false;
  }
  const error = (value as { error: unknown }).error;
  return (
    typeof error === 'object' &&
    error !== null &&
    typeof (error as MisskeyErrorBody).code === 'string' &&
    typeof (error as MisskeyErrorBody).id === 'string'
  );
}
