import { EventEmitter } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { Readable } from 'node:stream';
import { allEndpoints, domainSetups } from './endpoints/index.js';
import { ApiError, errors } from './errors.js';
import {
  compileEndpoint,
  type Endpoint,
  type EndpointContext,
  type StreamEvent,
  type UploadedFile,
  validationError,
} from './registry.js';
import { type DemoData, seedDemo } from './seed.js';
import { Store, type TokenRow, type UserRow } from './store.js';
import { attachStreaming, type StreamingServer } from './streaming.js';

/** An injected failure for one endpoint (see `Sandbox.fail`). */
export interface Failure {
  /** Answer with this status and `body` (JSON) or `raw` (sent verbatim). */
  status?: number;
  body?: unknown;
  raw?: string;
  headers?: Record<string, string>;
  /** Never answer (the request hangs until the client gives up). */
  hang?: boolean;
  /** Send headers and part of the body, then destroy the socket. */
  resetMidBody?: boolean;
  /** Destroy the socket without answering. */
  reset?: boolean;
  /** Wait this long first. */
  delayMs?: number;
  /** Apply to the next N calls only (default: until cleared). */
  times?: number;
}

export interface CallRecord {
  endpoint: string;
  userId: string | null;
  status: number;
  at: number;
  /** The W3C `traceparent` header the call came with, if any. */
  traceparent?: string;
}

export interface SandboxOptions {
  port?: number;
  host?: string;
  /** `demo` (default): alice, bob and carol with fixed tokens and chat data; `empty`: no users. */
  seed?: 'demo' | 'empty';
  /** Added to every REST answer, in ms. */
  latencyMs?: number;
  /** Misskey's per-endpoint rate limits (on in production Misskey). Default true. */
  rateLimits?: boolean;
  /** Public origin used in URLs (avatars, files); defaults to the listening address. */
  publicOrigin?: string;
}

export interface Sandbox {
  /** `http://host:port` */
  readonly origin: string;
  readonly store: Store;
  /** The demo seed's users and tokens (empty when started with `seed: 'empty'`). */
  readonly demo: DemoData | null;
  /** Streaming events published by endpoints (`event` listeners get a `StreamEvent`). */
  readonly events: EventEmitter;
  readonly streaming: StreamingServer;
  latencyMs: number;
  /** Every REST call answered so far, in order. */
  readonly calls: readonly CallRecord[];
  callCount(endpoint?: string): number;
  resetCalls(): void;
  fail(endpoint: string, failure: Failure): void;
  clearFailures(): void;
  /** Runs an endpoint in-process through the full pipeline (auth, validation, handler). */
  call(endpoint: string, params?: Record<string, unknown>, token?: string | null): Promise<unknown>;
  close(): Promise<void>;
}

const ROOT_OF_API = '/api/';

interface Dispatch {
  endpoint: Endpoint;
  credential: string | null;
  params: Record<string, unknown>;
  file?: UploadedFile;
  castFailure?: CastFailure;
  actor: string;
}

interface Answer {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
}

export async function startSandbox(options: SandboxOptions = {}): Promise<Sandbox> {
  const endpoints = new Map<string, Endpoint>();
  for (const def of allEndpoints) {
    if (endpoints.has(def.name)) {
      throw new Error(`sandbox endpoint ${def.name} is defined twice`);
    }
    endpoints.set(def.name, compileEndpoint(def));
  }

  const events = new EventEmitter();
  events.setMaxListeners(0);
  const timers = new Set<NodeJS.Timeout>();
  const failures = new Map<string, Failure>();
  const calls: CallRecord[] = [];
  const rateWindows = new Map<string, { start: number; count: number }>();
  const hanging = new Set<ServerResponse>();
  const rateLimits = options.rateLimits ?? true;

  const http: Server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      console.error('sandbox: unexpected error', error);
      if (!res.headersSent) {
        res.writeHead(500, { 'content-type': 'application/json; charset=utf-8' });
      }
      res.end(JSON.stringify(internalErrorBody()));
    });
  });
  const sockets = new Set<Socket>();
  http.on('connection', (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  http.keepAliveTimeout = 5_000;

  await new Promise<void>((resolve, reject) => {
    http.once('error', reject);
    http.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => {
      http.off('error', reject);
      resolve();
    });
  });
  const address = http.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const origin = `http://${host}:${address.port}`;
  const db = new Store(options.publicOrigin ?? origin);
  for (const setup of domainSetups) {
    setup(db);
  }

  function context(
    me: UserRow | null,
    token: TokenRow | null,
    params: Record<string, unknown>,
    file?: UploadedFile,
  ): EndpointContext {
    return {
      store: db,
      params,
      me,
      token,
      file,
      publish: (event: StreamEvent) => events.emit('event', event),
      later: (ms, fn) => {
        const timer = setTimeout(() => {
          timers.delete(timer);
          fn();
        }, ms);
        timers.add(timer);
      },
    };
  }

  /** Misskey's ApiCallService order: authenticate, secure, rate limit, credential, suspended,
   *  moderator/admin, role policy, token kind, params, handler (API.md §4.3). */
  async function run(dispatch: Dispatch): Promise<Answer> {
    const { endpoint, credential } = dispatch;
    let token: TokenRow | null = null;
    let me: UserRow | null = null;
    if (credential !== null) {
      token = db.tokens.get(credential) ?? null;
      me = token ? (db.users.get(token.userId) ?? null) : null;
      if (!token || !me) {
        throw errors.authenticationFailed();
      }
    }
    if (endpoint.secure && (token === null || token.type !== 'native')) {
      throw errors.accessDenied();
    }
    const limit = endpoint.def.limit;
    if (rateLimits && limit) {
      const policies = me ? db.policiesOf(me) : null;
      const factor = policies?.rateLimitFactor ?? 1;
      if (factor > 0) {
        const key = `${me?.id ?? dispatch.actor}:${endpoint.name}`;
        const now = Date.now();
        let window = rateWindows.get(key);
        if (!window || now - window.start >= limit.duration) {
          window = { start: now, count: 0 };
          rateWindows.set(key, window);
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
    }
    if (endpoint.requireCredential && me === null) {
      throw errors.credentialRequired();
    }
    if (me?.isSuspended && endpoint.requireCredential) {
      throw errors.suspended();
    }
    if (endpoint.def.requireModerator && !(me?.isModerator || me?.isAdmin)) {
      throw errors.notModerator();
    }
    if (endpoint.def.requireAdmin && !me?.isAdmin) {
      throw errors.notAdmin();
    }
    if (endpoint.def.requiredRolePolicy && me && !me.isAdmin && !me.isRoot) {
      if (!db.policiesOf(me)[endpoint.def.requiredRolePolicy]) {
        throw errors.rolePermissionDenied();
      }
    }
    if (token && token.type === 'app') {
      if (
        endpoint.kind === null
          ? endpoint.requireCredential
          : !token.permissions.includes(endpoint.kind)
      ) {
        throw errors.permissionDenied();
      }
    }
    if (dispatch.castFailure) {
      throw errors.castFailed(dispatch.castFailure.param, dispatch.castFailure.type);
    }
    const params = dispatch.params;
    if (!endpoint.validate(params)) {
      throw validationError(endpoint.validate);
    }
    const result = await endpoint.handler(context(me, token, params, dispatch.file));
    if (result === null || result === undefined) {
      return { status: 204, body: null };
    }
    return { status: 200, body: result };
  }

  async function answer(dispatch: Dispatch): Promise<Answer> {
    try {
      return await run(dispatch);
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

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', origin);
    res.setHeader('access-control-allow-origin', '*');
    if (url.pathname === '/healthz') {
      send(res, { status: 200, body: { ok: true } });
      return;
    }
    if (!url.pathname.startsWith(ROOT_OF_API)) {
      sendFastify404(res, req.method ?? 'GET', url.pathname);
      return;
    }
    const name = url.pathname.slice(ROOT_OF_API.length);
    const endpoint = endpoints.get(name);
    if (req.method === 'OPTIONS') {
      res.writeHead(204, {
        'access-control-allow-methods': 'GET,HEAD,POST',
        'access-control-allow-headers': 'authorization,content-type',
      });
      res.end();
      return;
    }
    if (req.method === 'GET') {
      if (!endpoint) {
        send(res, { status: 404, body: errors.unknownEndpoint().toBody() });
        return;
      }
      if (!endpoint.allowGet) {
        res.writeHead(405, { 'cache-control': 'private, max-age=0, must-revalidate' });
        res.end();
        return;
      }
    } else if (req.method !== 'POST') {
      sendFastify404(res, req.method ?? 'GET', url.pathname);
      return;
    }
    if (!endpoint) {
      req.resume();
      sendFastify404(res, req.method, url.pathname);
      return;
    }

    // Body: JSON, multipart (uploads), or anything else run anonymously like Misskey does.
    let params: Record<string, unknown> = {};
    let castFailure: CastFailure | undefined;
    let file: UploadedFile | undefined;
    const contentType = (req.headers['content-type'] ?? '').toLowerCase();
    if (req.method === 'GET') {
      ({ params, castFailure } = castStrings(endpoint, Object.fromEntries(url.searchParams)));
    } else if (contentType.startsWith('multipart/form-data')) {
      const form = await new Request(url, {
        method: 'POST',
        headers: req.headers as Record<string, string>,
        body: Readable.toWeb(req) as ReadableStream,
        duplex: 'half',
      } as RequestInit).formData();
      const fields: Record<string, string> = {};
      for (const [key, value] of form.entries()) {
        if (typeof value === 'string') {
          fields[key] = value;
        } else if (key === 'file') {
          file = {
            filename: value.name,
            contentType: value.type || 'application/octet-stream',
            bytes: Buffer.from(await value.arrayBuffer()),
          };
        }
      }
      ({ params, castFailure } = castStrings(endpoint, fields));
      if (file) {
        params.file = file.filename;
      }
    } else {
      const raw = await readBody(req, 1024 * 1024);
      if (raw === null) {
        res.writeHead(413, { 'content-type': 'application/json; charset=utf-8' });
        res.end(
          JSON.stringify({
            statusCode: 413,
            code: 'FST_ERR_CTP_BODY_TOO_LARGE',
            error: 'Payload Too Large',
            message: 'Request body is too large',
          }),
        );
        return;
      }
      if (contentType.startsWith('application/json')) {
        if (raw.length > 0) {
          try {
            const parsed: unknown = JSON.parse(raw.toString('utf8'));
            params =
              typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)
                ? (parsed as Record<string, unknown>)
                : {};
          } catch {
            send(res, {
              status: 400,
              body: {
                statusCode: 400,
                code: 'FST_ERR_CTP_INVALID_JSON_BODY',
                error: 'Bad Request',
                message: "Body is not valid JSON but content-type is set to 'application/json'",
              },
            });
            return;
          }
        }
      } else if (contentType !== '' && !contentType.startsWith('text/plain')) {
        send(res, {
          status: 415,
          body: {
            statusCode: 415,
            code: 'FST_ERR_CTP_INVALID_MEDIA_TYPE',
            error: 'Unsupported Media Type',
            message: `Unsupported Media Type: ${contentType}`,
          },
        });
        return;
      }
    }

    // Credential: `Authorization: Bearer` wins over `i` in the body (API.md §4.2).
    const authorization = req.headers.authorization;
    let credential: string | null = null;
    if (typeof authorization === 'string' && authorization.startsWith('Bearer ')) {
      credential = authorization.slice('Bearer '.length);
    } else if ('i' in params && params.i !== null && params.i !== undefined) {
      if (typeof params.i !== 'string') {
        // Misskey sets 400 and never sends a body: the request hangs (API.md §0.1.3).
        hanging.add(res);
        res.once('close', () => hanging.delete(res));
        return;
      }
      credential = params.i;
    }
    if ('i' in params) {
      delete params.i;
    }

    const failure = failures.get(name);
    if (failure) {
      if (failure.times !== undefined) {
        failure.times--;
        if (failure.times <= 0) {
          failures.delete(name);
        }
      }
      if (await injectFailure(req, res, failure)) {
        calls.push({
          endpoint: name,
          userId: null,
          status: failure.status ?? 0,
          at: Date.now(),
          ...(typeof req.headers.traceparent === 'string'
            ? { traceparent: req.headers.traceparent }
            : {}),
        });
        return;
      }
    }

    const result = await answer({
      endpoint,
      credential,
      params,
      file,
      castFailure,
      actor: req.socket.remoteAddress ?? 'unknown',
    });
    const userId = credential ? (db.tokens.get(credential)?.userId ?? null) : null;
    const traceparent = req.headers.traceparent;
    calls.push({
      endpoint: name,
      userId,
      status: result.status,
      at: Date.now(),
      ...(typeof traceparent === 'string' ? { traceparent } : {}),
    });
    if (req.method === 'GET' && credential === null && result.status === 200) {
      // Misskey's `cacheSec` (hashtags/trend: 60) applies to anonymous GETs only.
      result.headers = { ...result.headers, 'cache-control': 'public, max-age=60' };
    }
    const latency = sandbox.latencyMs;
    if (latency > 0) {
      await new Promise((resolve) => setTimeout(resolve, latency));
    }
    send(res, result);
  }

  async function injectFailure(
    req: IncomingMessage,
    res: ServerResponse,
    failure: Failure,
  ): Promise<boolean> {
    req.resume();
    if (failure.delayMs) {
      await new Promise((resolve) => setTimeout(resolve, failure.delayMs));
    }
    if (failure.hang) {
      hanging.add(res);
      res.once('close', () => hanging.delete(res));
      return true;
    }
    if (failure.reset) {
      req.socket.destroy();
      return true;
    }
    if (failure.resetMidBody) {
      res.writeHead(failure.status ?? 200, {
        'content-type': 'application/json; charset=utf-8',
        'content-length': '1000',
      });
      res.write('{"id":"partial');
      setTimeout(() => req.socket.destroy(), 10);
      return true;
    }
    if (failure.status !== undefined) {
      const body = failure.raw ?? (failure.body === undefined ? '' : JSON.stringify(failure.body));
      res.writeHead(failure.status, {
        'content-type': 'application/json; charset=utf-8',
        ...failure.headers,
      });
      res.end(body);
      return true;
    }
    return false;
  }

  const streaming = attachStreaming({ http, store: db, events });

  const sandbox: Sandbox = {
    origin,
    store: db,
    demo: null,
    events,
    streaming,
    latencyMs: options.latencyMs ?? 0,
    calls,
    callCount: (endpoint) =>
      endpoint === undefined ? calls.length : calls.filter((c) => c.endpoint === endpoint).length,
    resetCalls: () => {
      calls.length = 0;
    },
    fail: (endpoint, failure) => {
      failures.set(endpoint, { ...failure });
    },
    clearFailures: () => failures.clear(),
    call: async (name, params = {}, token = null) => {
      const endpoint = endpoints.get(name);
      if (!endpoint) {
        throw new Error(`sandbox: unknown endpoint ${name}`);
      }
      const result = await answer({
        endpoint,
        credential: token,
        params: { ...params },
        actor: 'internal',
      });
      if (result.status >= 400) {
        const error = (result.body as { error?: { code?: string; info?: unknown } }).error;
        throw new Error(
          `sandbox: ${name} failed with ${result.status} ${error?.code ?? ''} ${JSON.stringify(error?.info ?? '')}`,
        );
      }
      return result.body;
    },
    close: async () => {
      for (const timer of timers) {
        clearTimeout(timer);
      }
      timers.clear();
      await streaming.close();
      for (const res of hanging) {
        res.destroy();
      }
      const closed = new Promise<void>((resolve) => http.close(() => resolve()));
      for (const socket of sockets) {
        socket.destroy();
      }
      await closed;
    },
  };

  if ((options.seed ?? 'demo') === 'demo') {
    (sandbox as { demo: DemoData | null }).demo = await seedDemo(sandbox);
    sandbox.resetCalls();
  }
  return sandbox;
}

function send(res: ServerResponse, answer: Answer): void {
  if (res.destroyed) {
    return;
  }
  const headers: Record<string, string> = {
    'cache-control': 'private, max-age=0, must-revalidate',
    ...answer.headers,
  };
  if (answer.status === 204 || answer.body === null) {
    res.writeHead(answer.status, headers);
    res.end();
    return;
  }
  const body = JSON.stringify(answer.body);
  headers['content-type'] = 'application/json; charset=utf-8';
  headers['content-length'] = String(Buffer.byteLength(body));
  res.writeHead(answer.status, headers);
  res.end(body);
}

/** Misskey's `WWW-Authenticate` on refused calls, as recorded: every client error carries its
 *  message, an unknown token is `invalid_token`, a missing one the bare realm, a token without the
 *  endpoint's kind `insufficient_scope`; role-policy refusals, 429s and 500s carry none. */
function wwwAuthenticate(error: ApiError): string | null {
  const realm = 'Bearer realm="Misskey"';
  if (error.code === 'CREDENTIAL_REQUIRED') {
    return realm;
  }
  if (error.code === 'AUTHENTICATION_FAILED') {
    return `${realm}, error="invalid_token", error_description="${error.message}"`;
  }
  if (error.code === 'PERMISSION_DENIED') {
    return `${realm}, error="insufficient_scope", error_description="${error.message}"`;
  }
  if (error.kind === 'client' && error.status !== 429) {
    return `${realm}, error="invalid_request", error_description="${error.message}"`;
  }
  return null;
}

function sendFastify404(res: ServerResponse, method: string, path: string): void {
  send(res, {
    status: 404,
    body: { message: `Route ${method}:${path} not found`, error: 'Not Found', statusCode: 404 },
  });
}

function internalErrorBody(): unknown {
  return {
    error: {
      message: 'Internal error occurred. Please contact us if the error persists.',
      code: 'INTERNAL_ERROR',
      id: '5d37dbcb-891e-41ca-a3d6-e690c97775ac',
      kind: 'server',
    },
  };
}

async function readBody(req: IncomingMessage, max: number): Promise<Buffer | null> {
  const chunks: Buffer[] = [];
  let size = 0;
  let tooLarge = false;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > max) {
      tooLarge = true;
      continue;
    }
    chunks.push(chunk as Buffer);
  }
  return tooLarge ? null : Buffer.concat(chunks);
}

interface CastFailure {
  param: string;
  type: string;
}

/**
 * GET query strings and multipart fields are strings: Misskey's ApiCallService casts those of a
 * boolean, number or integer parameter with `JSON.parse`, and a string that does not parse
 * (an empty one included) is refused before validation with its own INVALID_PARAM id (reported
 * by `run`, after the permission checks).
 */
function castStrings(
  endpoint: Endpoint,
  fields: Record<string, string>,
): { params: Record<string, unknown>; castFailure?: CastFailure } {
  const params: Record<string, unknown> = {};
  let castFailure: CastFailure | undefined;
  for (const [key, value] of Object.entries(fields)) {
    const types = endpoint.propertyTypes[key] ?? [];
    const base = types.filter((type) => type !== 'null');
    const type = base.length === 1 ? base[0] : undefined;
    if (type === 'integer' || type === 'number' || type === 'boolean') {
      try {
        params[key] = JSON.parse(value);
        continue;
      } catch {
        castFailure ??= { param: key, type };
      }
    }
    params[key] = value;
  }
  return { params, castFailure };
}
