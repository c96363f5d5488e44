import {
  MisskeyApiError,
  UpstreamBadResponseError,
  UpstreamError,
  UpstreamTimeoutError,
  UpstreamUnavailableError,
} from './errors.js';

/**
 * When the gateway calls Misskey again, and when it stops calling: retries with jittered backoff
 * for read endpoints only, and a circuit breaker shared by every call to one upstream.
 */

/**
 * Endpoints that only read. Only these are ever retried: a write that failed half-way (socket
 * reset after Misskey committed) must not run twice. Misskey's own `kind` cannot be used:
 * `chat/rooms/members` is `write:chat` and `sw/*` have none. An endpoint missing here is simply
 * not retried.
 */
export const READ_ENDPOINTS: ReadonlySet<string> = new Set([
  'meta',
  'i',
  'users/show',
  'drive/files/show',
  'chat/history',
  'chat/messages/user-timeline',
  'chat/messages/room-timeline',
  'chat/messages/search',
  'chat/messages/show',
  'chat/rooms/show',
  'chat/rooms/members',
  'chat/rooms/owned',
  'chat/rooms/joining',
  'chat/rooms/invitations/inbox',
  'chat/rooms/invitations/outbox',
  'announcements',
  'announcements/show',
  'hashtags/list',
  'hashtags/search',
  'hashtags/show',
  'hashtags/trend',
  'hashtags/users',
  'invite/limit',
  'invite/list',
  'sw/show-registration',
]);

/** Statuses of a proxy or load balancer in front of Misskey saying "not now". */
const GATEWAY_STATUSES = new Set([502, 503, 504]);

function statusOf(error: unknown): number | null {
  if (error instanceof MisskeyApiError || error instanceof UpstreamBadResponseError) {
    return error.status;
  }
  return null;
}

/**
 * Worth another attempt: the connection failed (refused, reset, closed early) or a proxy said
 * 502/503/504. Never a timeout (the deadline is spent), never a 429 (Misskey asked us to wait),
 * never Misskey's own answer.
 */
export function isRetryable(error: unknown): boolean {
  if (error instanceof CircuitOpenError || error instanceof CallerAbortedError) {
    return false;
  }
  if (error instanceof UpstreamUnavailableError) {
    return true;
  }
  const status = statusOf(error);
  return status !== null && GATEWAY_STATUSES.has(status);
}

/**
 * Counts against the breaker: only what says the upstream itself is unhealthy. That is, it is
 * unreachable or broke the connection, it did not answer within the call's own timeout, it
 * answered 5xx without a Misskey error body (or a proxy said 502/503/504), or it answered 2xx
 * with something that is not Misskey JSON. Never what a caller can cause at will on a healthy
 * upstream: a 4xx of any kind (a 431 for a huge header, a 413, Misskey's own refusals), a
 * Misskey error body, a request undici refused to send, a malformed token.
 */
export function isUpstreamFailure(error: unknown): boolean {
  if (
    error instanceof CircuitOpenError ||
    error instanceof CallerAbortedError ||
    !(error instanceof UpstreamError)
  ) {
    return false;
  }
  if (error instanceof UpstreamUnavailableError || error instanceof UpstreamTimeoutError) {
    return true;
  }
  if (error instanceof UpstreamBadResponseError) {
    return error.status < 400 || error.status >= 500;
  }
  const status = statusOf(error);
  return status !== null && GATEWAY_STATUSES.has(status);
}

export interface RetryOptions {
  /** Extra attempts after the first (0 = none). */
  retries: number;
  /** Base delay in ms; attempt n waits a random time in [0, base * 2^n], at most `maxDelayMs`. */
  baseDelayMs: number;
  maxDelayMs?: number;
}

/** "Full jitter" backoff (AWS architecture blog): spreads retries of many callers apart. */
export function backoffDelay(attempt: number, options: RetryOptions, random = Math.random): number {
  const ceiling = Math.min(options.maxDelayMs ?? 2_000, options.baseDelayMs * 2 ** attempt);
  return Math.round(random() * ceiling);
}

export type BreakerState = 'closed' | 'open' | 'half-open';

export interface BreakerOptions {
  /**
   * Consecutive failures that open the breaker. One caller counts for at most
   * `ceil(failureThreshold / 2)` of them, so (from 2 on) failures of two callers are needed.
   */
  failureThreshold: number;
  /** How long the breaker stays open before a single probe call may go through, in ms. */
  cooldownMs: number;
  onStateChange?: (state: BreakerState) => void;
}

/** The caller gave up (client disconnected): says nothing about the upstream's health. */
export class CallerAbortedError extends UpstreamUnavailableError {
  constructor(endpoint: string) {
    super(endpoint, 'aborted by the caller');
    this.name = 'CallerAbortedError';
  }
}

/** The breaker is open: the call was refused without touching the upstream. */
export class CircuitOpenError extends UpstreamUnavailableError {
  constructor(
    endpoint: string,
    /** Milliseconds until the breaker lets a probe through. */
    readonly retryAfterMs: number,
  ) {
    super(endpoint, 'circuit breaker open');
    this.name = 'CircuitOpenError';
  }
}

/**
 * A consecutive-failure circuit breaker. Closed: calls pass; `failureThreshold` failures in a row
 * open it, of which one caller (see `record`) counts for at most half, rounded up: a single
 * client cannot shut the gateway off for everyone by making its own calls fail. Open: calls fail at once with `CircuitOpenError` for `cooldownMs`. Then half-open:
 * exactly one probe call passes (the others still fail fast); its success closes the breaker, its
 * failure opens it for another cooldown.
 */
export class CircuitBreaker {
  #state: BreakerState = 'closed';
  #failures = 0;
  /** Failures of the current streak per caller. */
  readonly #byCaller = new Map<string, number>();
  #openedAt = 0;
  #probing = false;
  readonly #options: BreakerOptions;

  constructor(options: BreakerOptions) {
    this.#options = options;
  }

  get state(): BreakerState {
    if (this.#state === 'open' && this.#cooldownLeft() <= 0) {
      this.#set('half-open');
    }
    return this.#state;
  }

  /** Asks to make a call: throws `CircuitOpenError` when open or when the probe is already out. */
  admit(endpoint: string): void {
    const state = this.state;
    if (state === 'closed') {
      return;
    }
    if (state === 'half-open' && !this.#probing) {
      this.#probing = true;
      return;
    }
    throw new CircuitOpenError(endpoint, Math.max(this.#cooldownLeft(), 0));
  }

  /** Ends an admitted call that says nothing about the upstream (caller gone, own deadline). */
  release(): void {
    if (this.#state === 'half-open') {
      this.#probing = false;
    }
  }

  /** Reports how an admitted call of `caller` (any stable key) ended. */
  record(error: unknown | null, caller = 'anonymous'): void {
    if (this.#state === 'half-open') {
      this.#probing = false;
    }
    if (error === null || !isUpstreamFailure(error)) {
      this.#failures = 0;
      this.#byCaller.clear();
      if (this.#state !== 'closed') {
        this.#set('closed');
      }
      return;
    }
    const own = this.#byCaller.get(caller) ?? 0;
    if (own < Math.ceil(this.#options.failureThreshold / 2)) {
      this.#byCaller.set(caller, own + 1);
      this.#failures++;
    }
    if (this.#state === 'half-open' || this.#failures >= this.#options.failureThreshold) {
      this.#openedAt = Date.now();
      this.#failures = 0;
      this.#byCaller.clear();
      this.#set('open');
    }
  }

  #cooldownLeft(): number {
    return this.#openedAt + this.#options.cooldownMs - Date.now();
  }

  #set(state: BreakerState): void {
    this.#state = state;
    this.#options.onStateChange?.(state);
  }
}
