import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import type { Endpoints } from 'misskey-js';
import type { Pool } from 'undici';
import undiciErrors from 'undici/lib/core/errors.js';
import type { UpstreamTracer } from '../observability/tracing.js';
import { AbortHandle, type Answer, exchange } from './answer.js';
import { isValidToken, tokenKey } from './credentials.js';
import {
  InvalidCredentialError,
  isMisskeyErrorBody,
  MisskeyApiError,
  UpstreamBadResponseError,
  UpstreamRequestRefusedError,
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
import { createPool } from './pool.js';
import { boundList, MAX_JSON_DEPTH, nestsDeeperThan } from './response.js';

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
  /** Called when a call is refused without a request: breaker open, deadline already spent, or a
   *  malformed token. */
  onRefused?: (event: { endpoint: string; reason: RefusalReason }) => void;
  /** Retries of read endpoints (`READ_ENDPOINTS`) after connection errors and 502/503/504.
   *  Off unless given. */
  retry?: RetryOptions;
  /** Circuit breaker over every call of this client. Off unless given. */
  breaker?: BreakerOptions;
  /**
   * Who a call without a token and without `CallOptions.caller` is made for: the breaker counts
   * a bounded share of failures per caller. (The gateway passes the client address per call.)
   */
  caller?: () => string | undefined;
  /** Traces each request sent (a span per attempt; its headers go with the request). Off unless
   *  given. */
  trace?: UpstreamTracer;
}

export type RefusalReason = 'circuit-open' | 'deadline' | 'invalid-credential';

export interface UpstreamCallEvent {
  endpoint: string;
  status: number | null;
  durationMs: number;
  error?: string;
  /** 0 for the first attempt, 1… for retries. */
  attempt: number;
  /** The id of the request the call was made for (`CallOptions.requestId`). */
  requestId?: string;
}

export interface CallOptions {
  signal?: AbortSignal;
  /** Overrides the client's timeout for this call. */
  timeoutMs?: number;
  /** The operation's deadline (epoch ms): the call is cut to end by then and refused once it
   *  has passed. */
  deadline?: number;
  /** Who the call is made for (the client address of a call without a token), overriding the
   *  token's hash and the `caller` provider: the breaker counts a bounded share of failures per
   *  caller. */
  caller?: string;
  /** The id of the request the call is made for, passed on to `onCall`. */
  requestId?: string;
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

/** A file sent as the `file` part of a multipart upload: its bytes are streamed, never held. */
export interface UploadPart {
  /** The file name sent in the part's `Content-Disposition`. */
  name: string;
  /** The part's `Content-Type` (Misskey detects the real type from the bytes). */
  type: string;
  body: AsyncIterable<Uint8Array>;
}

/** Misskey endpoint names (`notes/create`, `i`): nothing undici could refuse in a path. */
const ENDPOINT = /^[A-Za-z0-9][A-Za-z0-9/_-]{0,127}$/;

/**
 * The one way this process talks to Misskey's REST API: `POST /api/<endpoint>` with a JSON body on
 * a bounded keep-alive pool. It knows nothing of GraphQL.
 *
 * Throws:
 * - `MisskeyApiError` when Misskey refuses the call (`{ error: {...} }` with its HTTP status);
 * - `UpstreamUnavailableError` when the connection is refused, reset or closed early;
 * - `UpstreamTimeoutError` when the deadline passes (the request is aborted);
 * - `UpstreamBadResponseError` when the answer is not Misskey JSON, is over 16 MB or nests
 *   deeper than 64 levels;
 * - `CircuitOpenError` (an `UpstreamUnavailableError`) while the breaker is open;
 * - `InvalidCredentialError` when the token is not an RFC 6750 token (no request is made);
 * - `UpstreamRequestRefusedError` when undici refuses to send the request.
 * The token is sent only in the `Authorization` header and never appears in any error.
 * Every call ends by its deadline, by a timer of its own, whatever undici does.
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
  readonly #caller: (() => string | undefined) | undefined;
  readonly #trace: UpstreamTracer | undefined;

  constructor(origin: string, options: MisskeyClientOptions = {}) {
    this.origin = new URL(origin).origin;
    this.#timeoutMs = options.timeoutMs ?? 10_000;
    this.#onCall = options.onCall;
    this.#onRefused = options.onRefused;
    this.#retry = options.retry;
    this.#breaker = options.breaker ? new CircuitBreaker(options.breaker) : undefined;
    this.#caller = options.caller;
    this.#trace = options.trace;
    this.#pool = createPool(this.origin, {
      connections: options.connections ?? 32,
      keepAliveTimeoutMs: options.keepAliveTimeoutMs ?? 4_000,
      timeoutMs: this.#timeoutMs,
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
    const credential = this.#credential(endpoint, token);
    // Named only when a failure is counted: hashing the token on every call would cost more.
    const caller = () => options.caller ?? this.#callerOf(credential);
    const { deadline } = options;
    const retries = this.#retry && READ_ENDPOINTS.has(endpoint) ? this.#retry.retries : 0;
    for (let attempt = 0; ; attempt++) {
      const timeoutMs = this.#admit(endpoint, options);
      try {
        const result = await this.#attempt(
          endpoint,
          params,
          credential,
          { ...options, timeoutMs },
          attempt,
        );
        this.#breaker?.record(null);
        return result as EndpointResult<E>;
      } catch (error) {
        this.#judge(error, caller, timeoutMs, options);
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

  /**
   * `POST /api/<endpoint>` as `multipart/form-data` (Misskey's `drive/files/create`): the string
   * `fields`, then the `file` part streamed from `file.body` as it arrives. Same token check,
   * deadline, breaker and bounded answer as `call`; sent once (never retried, the body is a
   * stream). When `file.body` fails or `options.signal` aborts, the upstream request is aborted.
   */
  async upload<E extends EndpointName>(
    endpoint: E,
    fields: Record<string, string>,
    file: UploadPart,
    token: string | null,
    options: CallOptions = {},
  ): Promise<EndpointResult<E>> {
    const credential = this.#credential(endpoint, token);
    // Named only when a failure is counted: hashing the token on every call would cost more.
    const caller = () => options.caller ?? this.#callerOf(credential);
    const timeoutMs = this.#admit(endpoint, options);
    let bodyFailed = false;
    const request = multipartRequest(endpoint, fields, file, credential, () => {
      bodyFailed = true;
    });
    try {
      const result = await this.#attempt(
        endpoint,
        {},
        credential,
        { ...options, timeoutMs },
        0,
        request,
      );
      this.#breaker?.record(null);
      return result as EndpointResult<E>;
    } catch (error) {
      // A body the caller cut (abort, bytes refused while streaming) says nothing about the
      // upstream either.
      this.#judge(
        error,
        caller,
        timeoutMs,
        options,
        options.signal?.aborted === true || bodyFailed,
      );
      throw error;
    }
  }

  /**
   * The time an attempt may take: the client's timeout, cut to the operation's deadline. Refused
   * (and counted) when the deadline has passed or the breaker is open.
   */
  #admit(endpoint: string, options: CallOptions): number {
    const { deadline } = options;
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
    return timeoutMs;
  }

  /**
   * Tells the breaker how an admitted call failed. A call cut by the operation's deadline,
   * abandoned by the caller, never sent, or cut by its caller (`cutByCaller`) is no verdict on
   * the upstream's health.
   */
  #judge(
    error: unknown,
    caller: () => string,
    timeoutMs: number,
    options: CallOptions,
    cutByCaller = false,
  ): void {
    const noVerdict =
      cutByCaller ||
      error instanceof CallerAbortedError ||
      error instanceof UpstreamRequestRefusedError ||
      (error instanceof UpstreamTimeoutError && timeoutMs < (options.timeoutMs ?? this.#timeoutMs));
    if (noVerdict) {
      this.#breaker?.release();
    } else {
      this.#breaker?.record(error, caller());
    }
  }

  /**
   * The token to send (`null` for none), checked before anything else: a malformed one never
   * reaches undici, the pool or the breaker.
   */
  #credential(endpoint: string, token: string | null): string | null {
    if (token === null || token === '') {
      return null;
    }
    if (!isValidToken(token)) {
      this.#onRefused?.({ endpoint, reason: 'invalid-credential' });
      throw new InvalidCredentialError(endpoint);
    }
    return token;
  }

  #callerOf(token: string | null): string {
    return token !== null ? `t:${tokenKey(token)}` : (this.#caller?.() ?? 'anonymous');
  }

  async #attempt(
    endpoint: string,
    params: unknown,
    token: string | null,
    options: CallOptions,
    attempt: number,
    prepared?: RequestOptions,
  ): Promise<unknown> {
    const started = performance.now();
    let status: number | null = null;
    const span = this.#trace?.start(endpoint, attempt);
    try {
      const result = await this.#request(
        endpoint,
        params,
        token,
        options,
        (s) => {
          status = s;
        },
        span?.headers,
        prepared,
      );
      span?.end(status);
      this.#onCall?.({
        endpoint,
        status,
        durationMs: performance.now() - started,
        attempt,
        requestId: options.requestId,
      });
      return result;
    } catch (error) {
      span?.end(status, (error as Error).name);
      this.#onCall?.({
        endpoint,
        status,
        durationMs: performance.now() - started,
        error: (error as Error).name,
        attempt,
        requestId: options.requestId,
      });
      throw error;
    }
  }

  /**
   * One request, bounded in time by a timer of its own: at `timeoutMs` the call rejects with
   * `UpstreamTimeoutError` and the request is aborted, even when undici would never settle it
   * (queued for a socket, or a body that trickles in forever).
   */
  async #request(
    endpoint: string,
    params: unknown,
    token: string | null,
    options: CallOptions,
    onStatus: (status: number) => void,
    extraHeaders?: Record<string, string>,
    prepared?: RequestOptions,
  ): Promise<unknown> {
    const timeoutMs = options.timeoutMs ?? this.#timeoutMs;
    const request = prepared
      ? {
          ...prepared,
          headers: { ...extraHeaders, ...(prepared.headers as Record<string, string>) },
        }
      : this.#requestOptions(endpoint, params, token, extraHeaders);
    const controller = new AbortHandle();
    const callerSignal = options.signal;
    let timedOut = false;
    let timer: NodeJS.Timeout | undefined;
    let onAbort: (() => void) | undefined;
    const cut = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        timedOut = true;
        controller.abort();
        reject(new UpstreamTimeoutError(endpoint, timeoutMs));
      }, timeoutMs);
      onAbort = () => {
        controller.abort();
        reject(new CallerAbortedError(endpoint));
      };
      if (callerSignal?.aborted) {
        onAbort();
      } else {
        callerSignal?.addEventListener('abort', onAbort, { once: true });
      }
    });
    const answered = exchange(this.#pool, endpoint, request, controller, onStatus);
    // Whichever loses the race below still settles later; nobody waits for it.
    answered.catch(() => {});
    cut.catch(() => {});
    let answer: Answer;
    try {
      answer = await Promise.race([answered, cut]);
    } catch (error) {
      throw this.#transportError(endpoint, error, timedOut, timeoutMs, callerSignal);
    } finally {
      clearTimeout(timer);
      if (onAbort) {
        callerSignal?.removeEventListener('abort', onAbort);
      }
    }
    return interpret(endpoint, params, answer);
  }

  /** What undici is given, all of it checked here so that undici never refuses it. */
  #requestOptions(
    endpoint: string,
    params: unknown,
    token: string | null,
    extraHeaders?: Record<string, string>,
  ): RequestOptions {
    if (!ENDPOINT.test(endpoint)) {
      throw new UpstreamRequestRefusedError(endpoint.slice(0, 128), 'invalid endpoint name');
    }
    const headers: Record<string, string> = {
      ...extraHeaders,
      'content-type': 'application/json',
    };
    if (token !== null) {
      headers.authorization = `Bearer ${token}`;
    }
    let body: string;
    try {
      // Never forward a credential in the body: Misskey hangs on a non-string `i` (API.md §0.1.3).
      body = JSON.stringify(stripCredential(params));
    } catch {
      throw new UpstreamRequestRefusedError(endpoint, 'parameters are not JSON');
    }
    return { method: 'POST' as const, path: `/api/${endpoint}`, headers, body };
  }

  #transportError(
    endpoint: string,
    error: unknown,
    timedOut: boolean,
    timeoutMs: number,
    callerSignal: AbortSignal | undefined,
  ): Error {
    if (
      error instanceof UpstreamBadResponseError ||
      error instanceof UpstreamTimeoutError ||
      error instanceof CallerAbortedError
    ) {
      return error;
    }
    if (timedOut) {
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
    if (code === 'UND_ERR_INVALID_ARG' || code === 'UND_ERR_NOT_SUPPORTED') {
      // undici would not send it: the request was at fault, not the upstream.
      return new UpstreamRequestRefusedError(endpoint, code);
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

interface RequestOptions {
  method: 'POST';
  path: string;
  headers: Record<string, string>;
  body: string | Readable;
}

/** A quoted `Content-Disposition` parameter: no quote, backslash or line break can escape it. */
function dispositionValue(value: string): string {
  return value.replace(/[\r\n"\\]/g, (c) => encodeURIComponent(c));
}

/**
 * The multipart request of an upload: the fields, then the file part, whose bytes are passed on
 * chunk by chunk as `file.body` yields them (undici sends it chunked, with backpressure).
 */
function multipartRequest(
  endpoint: string,
  fields: Record<string, string>,
  file: UploadPart,
  token: string | null,
  onBodyFailed: () => void,
): RequestOptions {
  if (!ENDPOINT.test(endpoint)) {
    throw new UpstreamRequestRefusedError(endpoint.slice(0, 128), 'invalid endpoint name');
  }
  const boundary = `----misskey-graphql-${randomBytes(16).toString('hex')}`;
  let head = '';
  for (const [name, value] of Object.entries(fields)) {
    if (name === 'i') {
      continue;
    }
    head += `--${boundary}\r\nContent-Disposition: form-data; name="${dispositionValue(name)}"\r\n\r\n${value}\r\n`;
  }
  const type = /^[\w.+-]+\/[\w.+-]+$/.test(file.type) ? file.type : 'application/octet-stream';
  head += `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${dispositionValue(file.name)}"\r\nContent-Type: ${type}\r\n\r\n`;
  const tail = `\r\n--${boundary}--\r\n`;
  async function* parts(): AsyncGenerator<Uint8Array> {
    yield Buffer.from(head, 'utf8');
    try {
      for await (const chunk of file.body) {
        yield chunk;
      }
    } catch (error) {
      onBodyFailed();
      throw error;
    }
    yield Buffer.from(tail, 'utf8');
  }
  const headers: Record<string, string> = {
    'content-type': `multipart/form-data; boundary=${boundary}`,
  };
  if (token !== null) {
    headers.authorization = `Bearer ${token}`;
  }
  return {
    method: 'POST',
    path: `/api/${endpoint}`,
    headers,
    body: Readable.from(parts(), { objectMode: false }),
  };
}

/** The result of a complete answer, or the typed error it stands for. */
function interpret(endpoint: string, params: unknown, answer: Answer): unknown {
  const { status, text } = answer;
  if (text === null) {
    return null;
  }
  let payload: unknown;
  try {
    payload = text === '' ? null : JSON.parse(text);
  } catch {
    throw new UpstreamBadResponseError(endpoint, status, 'body is not JSON');
  }
  if (nestsDeeperThan(payload, MAX_JSON_DEPTH)) {
    throw new UpstreamBadResponseError(
      endpoint,
      status,
      `JSON nests deeper than ${MAX_JSON_DEPTH}`,
    );
  }
  if (status >= 200 && status < 300) {
    if (payload === null) {
      throw new UpstreamBadResponseError(endpoint, status, 'empty body');
    }
    return boundList(endpoint, params, payload);
  }
  if (isMisskeyErrorBody(payload)) {
    throw new MisskeyApiError(endpoint, status, payload.error, answer.retryAfter);
  }
  throw new UpstreamBadResponseError(endpoint, status, 'error without a Misskey error body');
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
