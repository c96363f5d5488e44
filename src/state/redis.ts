import { Redis } from 'ioredis';
import type { Logger } from 'pino';

/**
 * The one Redis connection of a gateway process (`REDIS_URL`), shared by the response cache and
 * the rate limiter so that several replicas serve public reads from one cache and count one budget.
 *
 * Redis is an optimisation, never a dependency of an operation:
 * - no offline queue and no per-command retries: while Redis is down a command fails at once
 *   instead of waiting, and a slow Redis is cut after `commandTimeoutMs`;
 * - callers ask `usable` first and fall back (no cache, local limits) when it is false; a failed
 *   command keeps Redis out of the way for `cooldownMs` before it is tried again;
 * - the client reconnects by itself forever (backoff up to 2 s);
 * - going down logs one warning, coming back one info line: never one line per request.
 */

export type RedisState = 'connecting' | 'up' | 'down' | 'closed';

export interface SharedRedisOptions {
  /** Deadline of one command, in ms (default 500). */
  commandTimeoutMs?: number;
  /** After a failed command, how long Redis is not used, in ms (default 1 000). */
  cooldownMs?: number;
  /** Deadline of one connection attempt, in ms (default 2 000). */
  connectTimeoutMs?: number;
}

/** Prefix of every key the gateway writes (another database index isolates deployments). */
export const KEY_PREFIX = 'misskey-graphql:';

export class SharedRedis {
  readonly client: Redis;
  readonly #logger: Logger;
  readonly #cooldownMs: number;
  readonly #target: string;
  #state: RedisState = 'connecting';
  #skipUntil = 0;

  constructor(url: string, logger: Logger, options: SharedRedisOptions = {}) {
    this.#logger = logger;
    this.#cooldownMs = options.cooldownMs ?? 1_000;
    this.#target = describeTarget(url);
    this.client = new Redis(url, {
      keyPrefix: KEY_PREFIX,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: options.commandTimeoutMs ?? 500,
      connectTimeout: options.connectTimeoutMs ?? 2_000,
      // Reconnects forever; each failed attempt emits an error event, logged once by `#down`.
      retryStrategy: (attempt) => Math.min(100 * attempt, 2_000),
    });
    this.client.on('ready', () => this.#up());
    this.client.on('error', (error: Error) => this.#down(error));
    this.client.on('close', () => this.#down(new Error('connection closed')));
  }

  /** `up`, `down` (reconnecting in the background), `connecting` (first attempt) or `closed`. */
  get state(): RedisState {
    return this.#state;
  }

  /** Whether a command may be sent now; when false, callers use their local fallback. */
  get usable(): boolean {
    return this.client.status === 'ready' && Date.now() >= this.#skipUntil;
  }

  /**
   * Runs `command` when Redis is usable; resolves to `undefined` (never rejects) when it is not or
   * when the command fails, so the caller falls back.
   */
  async run<T>(command: (client: Redis) => Promise<T>): Promise<T | undefined> {
    if (!this.usable) {
      return undefined;
    }
    try {
      const result = await command(this.client);
      if (this.#state !== 'up') {
        this.#up();
      }
      return result;
    } catch (error) {
      this.#skipUntil = Date.now() + this.#cooldownMs;
      this.#down(error as Error);
      return undefined;
    }
  }

  /** Round trip to Redis (for health checks): milliseconds, or null when unavailable. */
  async ping(): Promise<number | null> {
    const started = performance.now();
    const pong = await this.run((client) => client.ping());
    return pong === undefined ? null : performance.now() - started;
  }

  async close(): Promise<void> {
    if (this.#state === 'closed') {
      return;
    }
    this.#state = 'closed';
    if (this.client.status === 'ready') {
      await Promise.race([
        this.client.quit().catch(() => undefined),
        new Promise((resolve) => setTimeout(resolve, 500)),
      ]);
    }
    this.client.disconnect(false);
  }

  #up(): void {
    if (this.#state === 'up' || this.#state === 'closed') {
      return;
    }
    const was = this.#state;
    this.#state = 'up';
    this.#skipUntil = 0;
    if (was === 'down') {
      this.#logger.info({ redis: this.#target }, 'redis is back: shared cache and rate limits');
    } else {
      this.#logger.debug({ redis: this.#target }, 'redis connected');
    }
  }

  #down(error: Error): void {
    if (this.#state === 'down' || this.#state === 'closed') {
      return;
    }
    this.#state = 'down';
    this.#logger.warn(
      { redis: this.#target, reason: error.message },
      'redis unavailable: serving without the shared response cache, rate limits counted per replica',
    );
  }
}

/** `host:port/db` of a Redis URL, without credentials (for logs). */
export function describeTarget(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.hostname}:${parsed.port || '6379'}${parsed.pathname.length > 1 ? parsed.pathname : ''}`;
  } catch {
    return 'redis';
  }
}
