/**
 * Typed failures of an upstream call. None of them ever carries the caller's token: messages are
 * built from the endpoint name, the HTTP status and Misskey's own error fields only.
 */

export abstract class UpstreamError extends Error {
  abstract readonly kind: 'api' | 'unavailable' | 'timeout' | 'bad-response';
  constructor(
    readonly endpoint: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

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
    super(endpoint, `${endpoint}: ${body.code} (${status}): ${body.message}`);
    this.name = 'MisskeyApiError';
    this.code = body.code;
    this.id = body.id;
    this.misskeyKind = body.kind;
    this.info = body.info;
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
    return typeof e?.message === 'string' ? e.message : undefined;
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
