import type { EventEmitter } from 'node:events';
import { type Answer, internalErrorBody, wwwAuthenticate } from './answers.js';
import { ApiError, errors } from './errors.js';
import {
  type Endpoint,
  type EndpointContext,
  type StreamEvent,
  type UploadedFile,
  validationError,
} from './registry.js';
import type { CastFailure } from './request-body.js';
import type { Store, TokenRow, UserRow } from './store.js';

/** One API call, read from HTTP (or made in-process): what the pipeline needs to run it. */
export interface Dispatch {
  endpoint: Endpoint;
  credential: string | null;
  params: Record<string, unknown>;
  file?: UploadedFile;
  castFailure?: CastFailure;
  /** Who the rate limit counts an anonymous call against (the client address). */
  actor: string;
}

/**
 * Misskey's ApiCallService order: authenticate, secure, rate limit, credential, suspended,
 * moderator/admin, role policy, token kind, params, handler (API.md §4.3). Refusals become
 * Misskey's error answers with their headers; anything else thrown is a 500 INTERNAL_ERROR.
 */
export class ApiPipeline {
  /** Timers endpoints started (`later`), cleared when the sandbox closes. */
  readonly timers = new Set<NodeJS.Timeout>();
  readonly #rateWindows = new Map<string, { start: number; count: number }>();

  constructor(
    readonly store: Store,
    readonly events: EventEmitter,
    readonly rateLimits: boolean,
  ) {}

  async answer(dispatch: Dispatch): Promise<Answer> {
    try {
      return await this.#run(dispatch);
    } catch (error) {
      if (error instanceof ApiError) {
        const headers: Record<string, string> = {};
        const challenge = wwwAuthenticate(error);
        if (challenge) {
          headers['www-authenticate'] = challenge;
        }
        const retryAfter = (error as ApiError & { retryAfter?: number }).retryAfter;
        if (retryAfter !== undefined) {
          headers['retry-after'] = String(retryAfter);
        }
        return { status: error.status, body: error.toBody(), headers };
      }
      console.error(`sandbox: ${dispatch.endpoint.name} threw`, error);
      return { status: 500, body: internalErrorBody() };
    }
  }

  /** Stops every timer an endpoint started. */
  clearTimers(): void {
    for (const timer of this.timers) {
      clearTimeout(timer);
    }
    this.timers.clear();
  }

  async #run(dispatch: Dispatch): Promise<Answer> {
    const { endpoint } = dispatch;
    const { me, token } = this.#authenticate(dispatch.credential);
    if (endpoint.secure && (token === null || token.type !== 'native')) {
      throw errors.accessDenied();
    }
    this.#rateLimit(endpoint, me, dispatch.actor);
    this.#authorize(endpoint, me, token);
    if (dispatch.castFailure) {
      throw errors.castFailed(dispatch.castFailure.param, dispatch.castFailure.type);
    }
    const params = dispatch.params;
    if (!endpoint.validate(params)) {
      throw validationError(endpoint.validate);
    }
    const result = await endpoint.handler(this.#context(me, token, params, dispatch.file));
    if (result === null || result === undefined) {
      return { status: 204, body: null };
    }
    return { status: 200, body: result };
  }

  #authenticate(credential: string | null): { me: UserRow | null; token: TokenRow | null } {
    if (credential === null) {
      return { me: null, token: null };
    }
    const token = this.store.tokens.get(credential) ?? null;
    const me = token ? (this.store.users.get(token.userId) ?? null) : null;
    if (!token || !me) {
      throw errors.authenticationFailed();
    }
    return { me, token };
  }

  /** Misskey's per-endpoint limit, per user (or client address), scaled by `rateLimitFactor`. */
  #rateLimit(endpoint: Endpoint, me: UserRow | null, actor: string): void {
    const limit = endpoint.def.limit;
    if (!this.rateLimits || !limit) {
      return;
    }
    const factor = me ? (this.store.policiesOf(me).rateLimitFactor ?? 1) : 1;
    if (factor <= 0) {
      return;
    }
    const key = `${me?.id ?? actor}:${endpoint.name}`;
    const now = Date.now();
    let window = this.#rateWindows.get(key);
    if (!window || now - window.start >= limit.duration) {
      window = { start: now, count: 0 };
      this.#rateWindows.set(key, window);
    }
    const max = Math.floor(limit.max / factor);
    if (window.count >= max) {
      const resetMs = window.start + limit.duration;
      throw Object.assign(
        errors.rateLimitExceeded({
          total: max,
          remaining: 0,
          reset: Math.ceil(resetMs / 1000),
          resetMs,
        }),
        { retryAfter: Math.max(1, Math.ceil((resetMs - now) / 1000)) },
      );
    }
    window.count++;
  }

  #authorize(endpoint: Endpoint, me: UserRow | null, token: TokenRow | null): void {
    const { store } = this;
    if (endpoint.requireCredential && me === null) {
      throw errors.credentialRequired();
    }
    if (me?.isSuspended && endpoint.requireCredential) {
      throw errors.suspended();
    }
    if (endpoint.def.requireModerator && !(me && store.isModerator(me))) {
      throw errors.notModerator();
    }
    if (endpoint.def.requireAdmin && !(me && store.isAdministrator(me))) {
      throw errors.notAdmin();
    }
    if (endpoint.def.requiredRolePolicy && me && !store.isAdministrator(me)) {
      if (!store.policiesOf(me)[endpoint.def.requiredRolePolicy]) {
        throw errors.rolePermissionDenied();
      }
    }
    if (token && token.type === 'app') {
      const refused =
        endpoint.kind === null
          ? endpoint.requireCredential ||
            Boolean(endpoint.def.requireModerator || endpoint.def.requireAdmin)
          : !token.permissions.includes(endpoint.kind);
      if (refused) {
        throw errors.permissionDenied();
      }
    }
  }

  #context(
    me: UserRow | null,
    token: TokenRow | null,
    params: Record<string, unknown>,
    file?: UploadedFile,
  ): EndpointContext {
    return {
      store: this.store,
      params,
      me,
      token,
      file,
      publish: (event: StreamEvent) => this.events.emit('event', event),
      later: (ms, fn) => {
        const timer = setTimeout(() => {
          this.timers.delete(timer);
          fn();
        }, ms);
        this.timers.add(timer);
      },
    };
  }
}
