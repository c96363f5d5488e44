import { AsyncLocalStorage } from 'node:async_hooks';
import { randomUUID } from 'node:crypto';

/** The request being served: its id (on every log line), client address and deadline. */

/** What the gateway knows about the request (or websocket operation) being served. */
export interface RequestScope {
  readonly requestId: string;
  /** The client address (first `X-Forwarded-For` entry when `TRUST_PROXY` is on). */
  readonly ip: string;
  /** Epoch ms by which the current query or mutation must be done (upstream calls are cut). */
  readonly deadline?: number;
}

/** The request scope of the current async context (set by the HTTP handler and the executor). */
export const requestScope = new AsyncLocalStorage<RequestScope>();

const REQUEST_ID = /^[\w.:-]{1,128}$/;

/** The client's `X-Request-Id` when it looks like one, else a new UUID. */
export function requestIdFrom(header: string | string[] | undefined): string {
  const value = Array.isArray(header) ? header[0] : header;
  return value !== undefined && REQUEST_ID.test(value) ? value : randomUUID();
}

// "Bearer Bearer x" must not leave x behind: repeated schemes are part of the prefix.
