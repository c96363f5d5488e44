import { randomUUID } from 'node:crypto';

/**
 * The request being served: its id (echoed, on its log lines) and client address. The scope is
 * handed along explicitly (on the HTTP request, then in the operation's context and each upstream
 * call's options), not through AsyncLocalStorage: on Node 20 an active AsyncLocalStorage hooks
 * every promise of the process, about a tenth of the CPU of a small query.
 */
export interface RequestScope {
  readonly requestId: string;
  /** The client address (first `X-Forwarded-For` entry when `TRUST_PROXY` is on). */
  readonly ip: string;
}

/** Where a request keeps its scope: a property of its own, not a WeakMap entry (a WeakMap keyed
 *  by short-lived objects makes every young-generation collection walk its entries). */
const SCOPE = Symbol('requestScope');

type Scoped = { [SCOPE]?: RequestScope };

/** Gives `request` (the HTTP front's incoming request) its scope. */
export function bindScope(request: object, scope: RequestScope): void {
  (request as Scoped)[SCOPE] = scope;
}

/** The scope the HTTP front gave `request`; none for a request it did not route (a websocket
 *  upgrade, a test's own request). */
export function scopeOf(request: unknown): RequestScope | undefined {
  return typeof request === 'object' && request !== null ? (request as Scoped)[SCOPE] : undefined;
}

const errorRequests = new WeakMap<object, string>();

/** Remembers which request `error` belongs to, for the line that logs it later. */
export function tagError(error: unknown, requestId: string): void {
  if (typeof error === 'object' && error !== null) {
    errorRequests.set(error, requestId);
  }
}

/** The request id `tagError` gave `error`, if any. */
export function requestIdOfError(error: unknown): string | undefined {
  return typeof error === 'object' && error !== null ? errorRequests.get(error) : undefined;
}

const REQUEST_ID = /^[\w.:-]{1,128}$/;

/** The client's `X-Request-Id` when it looks like one, else a new UUID. */
export function requestIdFrom(header: string | string[] | undefined): string {
  const value = Array.isArray(header) ? header[0] : header;
  return value !== undefined && REQUEST_ID.test(value) ? value : randomUUID();
}

// "Bearer Bearer x" must not leave x behind: repeated schemes are part of the prefix.
