import { EventEmitter } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { internalErrorBody, send, sendFastify404 } from './answers.js';
import type { DemoData } from './demo.js';
import { allEndpoints, domainSetups } from './endpoints/index.js';
import { errors } from './errors.js';
import { type Failure, injectFailure } from './faults.js';
import { ApiPipeline } from './pipeline.js';
import { compileEndpoint, type Endpoint } from './registry.js';
import { readParams } from './request-body.js';
import { seedDemo } from './seed.js';
import { Store } from './store.js';
import { attachStreaming, type StreamingServer } from './streaming.js';

export type { Failure } from './faults.js';

/** An injected failure for one endpoint (see `Sandbox.fail`). */
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

/** What the running sandbox keeps besides the store: calls, injected faults, hanging answers. */
interface State {
  readonly origin: string;
  readonly endpoints: Map<string, Endpoint>;
  readonly pipeline: ApiPipeline;
  readonly failures: Map<string, Failure>;
  readonly calls: CallRecord[];
  readonly hanging: Set<ServerResponse>;
  latencyMs: number;
}

export async function startSandbox(options: SandboxOptions = {}): Promise<Sandbox> {
  const endpoints = compileEndpoints();
  let state: State | undefined;
  const http: Server = createServer((req, res) => {
    handle(state as State, req, res).catch((error: unknown) => {
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
  const origin = await listen(http, options);
  const store = new Store(options.publicOrigin ?? origin);
  for (const setup of domainSetups) {
    setup(store);
  }
  const events = new EventEmitter();
  events.setMaxListeners(0);
  state = {
    origin,
    endpoints,
    pipeline: new ApiPipeline(store, events, options.rateLimits ?? true),
    failures: new Map(),
    calls: [],
    hanging: new Set(),
    latencyMs: options.latencyMs ?? 0,
  };
  const streaming = attachStreaming({ http, store, events });
  const sandbox = facade(state, streaming, async () => {
    await streaming.close();
    const closed = new Promise<void>((resolve) => http.close(() => resolve()));
    for (const socket of sockets) {
      socket.destroy();
    }
    await closed;
  });
  if ((options.seed ?? 'demo') === 'demo') {
    (sandbox as { demo: DemoData | null }).demo = await seedDemo(sandbox);
    sandbox.resetCalls();
  }
  return sandbox;
}

function compileEndpoints(): Map<string, Endpoint> {
  const endpoints = new Map<string, Endpoint>();
  for (const def of allEndpoints) {
    if (endpoints.has(def.name)) {
      throw new Error(`sandbox endpoint ${def.name} is defined twice`);
    }
    endpoints.set(def.name, compileEndpoint(def));
  }
  return endpoints;
}

async function listen(http: Server, options: SandboxOptions): Promise<string> {
  await new Promise<void>((resolve, reject) => {
    http.once('error', reject);
    http.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => {
      http.off('error', reject);
      resolve();
    });
  });
  const address = http.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return `http://${host}:${address.port}`;
}

/** The sandbox as tests and the demo see it. */
function facade(state: State, streaming: StreamingServer, closeHttp: () => Promise<void>): Sandbox {
  const { pipeline, calls, failures } = state;
  return {
    origin: state.origin,
    store: pipeline.store,
    demo: null,
    events: pipeline.events,
    streaming,
    get latencyMs() {
      return state.latencyMs;
    },
    set latencyMs(ms: number) {
      state.latencyMs = ms;
    },
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
    call: (name, params = {}, token = null) => callInProcess(state, name, params, token),
    close: async () => {
      pipeline.clearTimers();
      for (const res of state.hanging) {
        res.destroy();
      }
      await closeHttp();
    },
  };
}

async function callInProcess(
  state: State,
  name: string,
  params: Record<string, unknown>,
  token: string | null,
): Promise<unknown> {
  const endpoint = state.endpoints.get(name);
  if (!endpoint) {
    throw new Error(`sandbox: unknown endpoint ${name}`);
  }
  const result = await state.pipeline.answer({
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
}

/** One HTTP request: routing as Misskey's Fastify does, the body, the credential, injected
 *  faults, then the pipeline. */
async function handle(state: State, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', state.origin);
  res.setHeader('access-control-allow-origin', '*');
  const endpoint = route(state, req, res, url);
  if (!endpoint) {
    return;
  }
  const read = await readParams(req, res, url, endpoint);
  if (!read) {
    return;
  }
  const credential = credentialOf(req, read.params);
  if (credential === HANG) {
    // Misskey sets 400 and never sends a body: the request hangs (API.md §0.1.3).
    state.hanging.add(res);
    res.once('close', () => state.hanging.delete(res));
    return;
  }
  if (await injected(state, req, res, endpoint.name)) {
    return;
  }
  const result = await state.pipeline.answer({
    endpoint,
    credential,
    params: read.params,
    file: read.file,
    castFailure: read.castFailure,
    actor: req.socket.remoteAddress ?? 'unknown',
  });
  const userId = credential ? (state.pipeline.store.tokens.get(credential)?.userId ?? null) : null;
  state.calls.push({
    endpoint: endpoint.name,
    userId,
    status: result.status,
    at: Date.now(),
    ...traceOf(req),
  });
  if (req.method === 'GET' && credential === null && result.status === 200) {
    // Misskey's `cacheSec` (hashtags/trend: 60) applies to anonymous GETs only.
    result.headers = { ...result.headers, 'cache-control': 'public, max-age=60' };
  }
  if (state.latencyMs > 0) {
    await new Promise((resolve) => setTimeout(resolve, state.latencyMs));
  }
  send(res, result);
}

/** The endpoint a request is for, or null when the request was answered here. */
function route(state: State, req: IncomingMessage, res: ServerResponse, url: URL): Endpoint | null {
  if (url.pathname === '/healthz') {
    send(res, { status: 200, body: { ok: true } });
    return null;
  }
  if (!url.pathname.startsWith(ROOT_OF_API)) {
    sendFastify404(res, req.method ?? 'GET', url.pathname);
    return null;
  }
  const endpoint = state.endpoints.get(url.pathname.slice(ROOT_OF_API.length));
  if (req.method === 'OPTIONS') {
    res.writeHead(204, {
      'access-control-allow-methods': 'GET,HEAD,POST',
      'access-control-allow-headers': 'authorization,content-type',
    });
    res.end();
    return null;
  }
  if (req.method === 'GET') {
    if (!endpoint) {
      send(res, { status: 404, body: errors.unknownEndpoint().toBody() });
      return null;
    }
    if (!endpoint.allowGet) {
      res.writeHead(405, { 'cache-control': 'private, max-age=0, must-revalidate' });
      res.end();
      return null;
    }
  } else if (req.method !== 'POST' || !endpoint) {
    req.resume();
    sendFastify404(res, req.method ?? 'GET', url.pathname);
    return null;
  }
  return endpoint;
}

const HANG = Symbol('hang');

/** `Authorization: Bearer` wins over `i` in the body (API.md §4.2); `i` never reaches the
 *  endpoint. A non-string `i` makes Misskey hang. */
function credentialOf(
  req: IncomingMessage,
  params: Record<string, unknown>,
): string | null | typeof HANG {
  const authorization = req.headers.authorization;
  let credential: string | null | typeof HANG = null;
  if (typeof authorization === 'string' && authorization.startsWith('Bearer ')) {
    credential = authorization.slice('Bearer '.length);
  } else if ('i' in params && params.i !== null && params.i !== undefined) {
    credential = typeof params.i === 'string' ? params.i : HANG;
  }
  if ('i' in params) {
    delete params.i;
  }
  return credential;
}

/** Runs the fault injected into this endpoint, if any; true when it answered the request. */
async function injected(
  state: State,
  req: IncomingMessage,
  res: ServerResponse,
  name: string,
): Promise<boolean> {
  const failure = state.failures.get(name);
  if (!failure) {
    return false;
  }
  if (failure.times !== undefined) {
    failure.times--;
    if (failure.times <= 0) {
      state.failures.delete(name);
    }
  }
  if (await injectFailure(req, res, failure, state.hanging)) {
    state.calls.push({
      endpoint: name,
      userId: null,
      status: failure.status ?? 0,
      at: Date.now(),
      ...traceOf(req),
    });
    return true;
  }
  return false;
}

/** The W3C `traceparent` a call came with (kept on its call record). */
function traceOf(req: IncomingMessage): { traceparent?: string } {
  const traceparent = req.headers.traceparent;
  return typeof traceparent === 'string' ? { traceparent } : {};
}
