import type { Endpoints } from 'misskey-js';
import { Pool, errors as undiciErrors } from 'undici';
import {
  isMisskeyErrorBody,
  MisskeyApiError,
  UpstreamBadResponseError,
  UpstreamTimeoutError,
  UpstreamUnavailableError,
} from './errors.js';
import {
  type BreakerOptions,
  type BreakerState,
  backoffDelay,
  CallerAbortedError,
  CircuitBreaker,
  isRetryable,
  READ_ENDPOINTS,
  type RetryOptions,
} from './policy.js';

export type EndpointName = keyof Endpoints;
export type EndpointParams<E extends EndpointName> = Endpoints[E]['req'];
export type EndpointResult<E extends EndpointName> = Endpoints[E]['res'];

export interface MisskeyClientOptions {
  /** Whole-call deadline in ms: connecting, waiting for headers and reading the body. */
  timeoutMs?: number;
  /** Upper bound of sockets kept to the upstream. */
  connections?: number;
  /** How long an idle keep-alive socket is kept, in ms. */
  keepAliveTimeoutMs?: number;
  /** Called after every request sent upstream, retries included (for metrics and tests). */
  onCall?: (event: UpstreamCallEvent) => void;
  /** Called when a call is refused without a request: breaker open, or deadline already spent. */
  onRefused?: (event: { endpoint: string; reason: 'circuit-open' | 'deadline' }) => void;
  /** Retries of read endpoints (`READ_ENDPOINTS`) after connection errors and 502/503/504.
   *  Off unless given. */
  retry?: RetryOptions;
  /** Circuit breaker over every call of this client. Off unless given. */
  breaker?: BreakerOptions;
  /**
   * The deadline (epoch ms) of the operation the current call belongs to, if any: calls are cut
   * to end by then and refused once it has passed. Read at each call (e.g. from an
   * AsyncLocalStorage scope).
   */
  deadline?: () => number | undefined;
}

export interface UpstreamCallEvent {
  endpoint: string;
  status: number | null;
  durationMs: number;
  error?: string;
  /** 0 for the first attempt, 1… for retries. */
  attempt: number;
}

export interface CallOptions {
  signal?: AbortSignal;
  /** Overrides the client's timeout for this call. */
  timeoutMs?: number;
  /** Absolute deadline (epoch ms), overriding the `deadline` provider. */
  deadline?: number;
}

/** Sockets of the pool (undici `PoolStats`). */
export interface UpstreamSocketStats {
  /** Open sockets. */
  connected: number;
  /** Requests being processed. */
  running: number;
  /** Requests waiting for a socket. */
  pending: number;
}

const MAX_BODY_BYTES = 16 * 1024 * 1024;

/**
 * The one way this process talks to Misskey's REST API: `POST /api/<endpoint>` with a JSON body on
 * a bounded keep-alive pool. It knows nothing of GraphQL.
 *
 * Throws:
 * - `MisskeyApiError` when Misskey refuses the call (`{ error: {...} }` with its HTTP status);
 * - `UpstreamUnavailableError` when the connection is refused, reset or closed early;
 * - `UpstreamTimeoutError` when the deadline passes (the request is aborted);
 * - `UpstreamBadResponseError` when the answer is not Misskey JSON;
 * - `CircuitOpenError` (an `UpstreamUnavailableError`) while the breaker is open.
 * The token is sent only in the `Authorization` header and never appears in any error.
 *
 * With `retry`, read endpoints are tried again after a connection error or a 502/503/504, with
 * jittered backoff, within the operation's deadline; writes are sent exactly once.
 */
export class MisskeyClient {
  readonly origin: string;
  readonly #pool: Pool;
  readonly #timeoutMs: number;
  readonly #onCall: ((event: UpstreamCallEvent) => void) | undefined;
  readonly #onRefused: MisskeyClientOptions['onRefused'];
  readonly #retry: RetryOptions | undefined;
  readonly #breaker: CircuitBreaker | undefined;
  readonly #deadline: (() => number | undefined) | undefined;

  constructor(origin: string, options: MisskeyClientOptions = {}) {
    this.origin = new URL(origin).origin;
    this.#timeoutMs = options.timeoutMs ?? 10_000;
    this.#onCall = options.onCall;
    this.#onRefused = options.onRefused;
    this.#retry = options.retry;
    this.#breaker = options.breaker ? new CircuitBreaker(options.breaker) : undefined;
    this.#deadline = options.deadline;
    this.#pool = new Pool(this.origin, {
      connections: options.connections ?? 32,
      pipelining: 1,
      keepAliveTimeout: options.keepAliveTimeoutMs ?? 4_000,
      keepAliveMaxTimeout: 60_000,
      connectTimeout: Math.min(this.#timeoutMs, 5_000),
      headersTimeout: this.#timeoutMs,
      bodyTimeout: this.#timeoutMs,
    });
  }

  /** State of the circuit breaker (`closed` when there is none). */
  get breakerState(): BreakerState {
    return this.#breaker?.state ?? 'closed';
  }

  /** Open sockets and queued requests of the pool. */
  sockets(): UpstreamSocketStats {
    const stats = this.#pool.stats;
    return { connected: stats.connected, running: stats.running, pending: stats.pending };
  }

  async call<E extends EndpointName>(
    endpoint: E,
    params: EndpointParams<E>,
    token: string | null,
    options: CallOptions = {},
  ): Promise<EndpointResult<E>> {
    const deadline = options.deadline ?? this.#deadline?.();
    const retries = this.#retry && READ_ENDPOINTS.has(endpoint) ? this.#retry.retries : 0;
    for (let attempt = 0; ; attempt++) {
      let timeoutMs = options.timeoutMs ?? this.#timeoutMs;
      if (deadline !== undefined) {
        const left = Math.floor(deadline - Date.now());
        if (left <= 0) {
          this.#onRefused?.({ endpoint, reason: 'deadline' });
          throw new UpstreamTimeoutError(endpoint, timeoutMs);
        }
        timeoutMs = Math.min(timeoutMs, left);
      }
      try {
        this.#breaker?.admit(endpoint);
      } catch (error) {
        this.#onRefused?.({ endpoint, reason: 'circuit-open' });
        throw error;
      }
      try {
        const result = await this.#attempt(
          endpoint,
          params,
          token,
          { ...options, timeoutMs },
          attempt,
        );
        this.#breaker?.record(null);
        return result as EndpointResult<E>;
      } catch (error) {
        // A call cut by the operation's deadline, or abandoned by the caller, is no verdict on
        // the upstream's health.
        const cutShort =
          error instanceof CallerAbortedError ||
          (error instanceof UpstreamTimeoutError &&
            timeoutMs < (options.timeoutMs ?? this.#timeoutMs));
        if (cutShort) {
          this.#breaker?.release();
        } else {
          this.#breaker?.record(error);
        }
        if (attempt >= retries || !isRetryable(error) || !this.#retry) {
          throw error;
        }
        const delay = backoffDelay(attempt, this.#retry);
        if (deadline !== undefined && Date.now() + delay >= deadline) {
          throw error;
        }
        await sleep(delay, options.signal);
        if (options.signal?.aborted) {
          throw new CallerAbortedError(endpoint);
        }
      }
    }
  }

  async #attempt(
    endpoint: string,
    params: unknown,
    token: string | null,
    options: CallOptions,
    attempt: number,
  ): Promise<unknown> {
    const started = performance.now();
    let status: number | null = null;
    try {
      const result = await this.#request(endpoint, params, token, options, (s) => {
        status = s;
      });
      this.#onCall?.({ endpoint, status, durationMs: performance.now() - started, attempt });
      return result;
    } catch (error) {
      this.#onCall?.({
        endpoint,
        status,
        durationMs: performance.now() - started,
        error: (error as Error).name,
        attempt,
      });
      throw error;
    }
  }

  async #request(
    endpoint: string,
    params: unknown,
    token: string | null,
    options: CallOptions,
    onStatus: (status: number) => void,
  ): Promise<unknown> {
    const timeoutMs = options.timeoutMs ?? this.#timeoutMs;
    const deadline = AbortSignal.timeout(timeoutMs);
    const signal = options.signal ? AbortSignal.any([options.signal, deadline]) : deadline;
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (token) {
      headers.authorization = `Bearer ${token}`;
    }
    // Never forward a credential in the body: Misskey hangs on a non-string `i` (API.md §0.1.3).
    const body = JSON.stringify(stripCredential(params));
    let text: string;
    let statusCode: number;
    let retryAfter: string | string[] | undefined;
    try {
      const res = await this.#pool.request({
        method: 'POST',
        path: `/api/${endpoint}`,
        headers,
        body,
        signal,
      });
      statusCode = res.statusCode;
      onStatus(statusCode);
      retryAfter = res.headers['retry-after'];
      if (statusCode === 204) {
        await res.body.dump();
        return null;
      }
      const length = Number(res.headers['content-length'] ?? 0);
      if (length > MAX_BODY_BYTES) {
        await res.body.dump();
        throw new UpstreamBadResponseError(
          endpoint,
          statusCode,
          `body of ${length} bytes is too large`,
        );
      }
      text = await res.body.text();
    } catch (error) {
      throw this.#transportError(endpoint, error, deadline, timeoutMs, options.signal);
    }
    let payload: unknown;
    try {
      payload = text === '' ? null : JSON.parse(text);
    } catch {
      throw new UpstreamBadResponseError(endpoint, statusCode, 'body is not JSON');
    }
    if (statusCode >= 200 && statusCode < 300) {
      if (payload === null) {
        throw new UpstreamBadResponseError(endpoint, statusCode, 'empty body');
      }
      return payload;
    }
    if (isMisskeyErrorBody(payload)) {
      throw new MisskeyApiError(endpoint, statusCode, payload.error, parseRetryAfter(retryAfter));
    }
    throw new UpstreamBadResponseError(endpoint, statusCode, 'error without a Misskey error body');
  }

  #transportError(
    endpoint: string,
    error: unknown,
    deadline: AbortSignal,
    timeoutMs: number,
    callerSignal: AbortSignal | undefined,
  ): Error {
    if (error instanceof UpstreamBadResponseError) {
      return error;
    }
    if (deadline.aborted && !callerSignal?.aborted) {
      return new UpstreamTimeoutError(endpoint, timeoutMs);
    }
    const code = (error as { code?: unknown }).code;
    if (
      code === 'UND_ERR_HEADERS_TIMEOUT' ||
      code === 'UND_ERR_BODY_TIMEOUT' ||
      code === 'UND_ERR_CONNECT_TIMEOUT'
    ) {
      return new UpstreamTimeoutError(endpoint, timeoutMs);
    }
    if (callerSignal?.aborted) {
      return new CallerAbortedError(endpoint);
    }
    const reason =
      typeof code === 'string'
        ? code
        : error instanceof undiciErrors.UndiciError
          ? error.name
          : 'connection failed';
    return new UpstreamUnavailableError(endpoint, reason);
  }

  /** Closes the pool: waits for running calls, then closes every socket. */
  async close(): Promise<void> {
    await this.#pool.close();
  }

  /** Aborts every running call and closes every socket at once. */
  async destroy(): Promise<void> {
    await this.#pool.destroy();
  }
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (ms <= 0 || signal?.aborted) {
      resolve();
      return;
    }
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}

function stripCredential(params: unknown): unknown {
  if (typeof params !== 'object' || params === null || !('i' in params)) {
    return params ?? {};
  }
  const { i: _ignored, ...rest } = params as Record<string, unknown>;
  return rest;
}

function parseRetryAfter(value: string | string[] | undefined): number | undefined {
  const raw = Array.isArray(value) ? value[0] : value;
  if (raw === undefined) {
    return undefined;
  }
  const seconds = Number(raw);
  return Number.isFinite(seconds) && seconds >= 0 ? seconds : undefined;
}
