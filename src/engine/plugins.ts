import { createHash } from 'node:crypto';
import { useGraphQlJit } from '@envelop/graphql-jit';
import { useCSRFPrevention } from '@graphql-yoga/plugin-csrf-prevention';
import { usePrometheus } from '@graphql-yoga/plugin-prometheus';
import {
  createSourceEventStream,
  type DocumentNode,
  type ExecutionArgs,
  type ExecutionResult,
  type execute,
  GraphQLError,
  type GraphQLSchema,
  isEnumType,
  isInputObjectType,
  isInterfaceType,
  isObjectType,
  Kind,
  type Source,
  type SourceLocation,
  subscribe,
} from 'graphql';
import { type CompiledQuery, compileQuery, isCompiledQuery } from 'graphql-jit';
import type { Plugin } from 'graphql-yoga';
import { DEFAULT_LIMITS, type LimitsConfig } from '../config.js';
import { graphqlMetrics } from '../observability/graphql-metrics.js';
import { type GatewayMetrics, scopeOf, tagError } from '../observability/index.js';
import { type Context, credentialFrom, tokenFrom } from '../schema/context.js';
import { ErrorCode, gatewayError, malformedCredential } from '../schema/errors.js';
import { schema } from '../schema/index.js';
import { type GatewayRateLimit, limitError, operationLimitPlugins } from './limits.js';
import { requestBodies } from './multipart.js';
import { type ResponseCacheOptions, responseCache } from './response-cache.js';
import { type TrustedDocuments, trustedDocumentPlugins } from './trusted-documents.js';

export interface PluginOptions {
  /** Operation limits (default: `DEFAULT_LIMITS`). */
  readonly limits?: LimitsConfig;
  /** Deadline of one query or mutation, in ms (default 15 s). */
  readonly operationTimeoutMs?: number;
  /** Serve `/metrics` and record operation metrics into this registry (none: no metrics). */
  readonly metrics?: GatewayMetrics | null;
  /** The gateway's own rate limit (none: off). */
  readonly rateLimit?: GatewayRateLimit | null;
  /** Where the response cache keeps entries (default: in memory). */
  readonly responseCache?: ResponseCacheOptions;
  /** Introspection answers kept (default 64; 0 = none cached). */
  readonly introspectionCacheSize?: number;
  /** Trusted documents (none: any document runs, and persisted-query hashes are not read). */
  readonly trustedDocuments?: TrustedDocuments | null;
  /** OpenTelemetry plugins (none: not installed at all). */
  readonly tracing?: readonly Plugin<Record<string, unknown>>[];
}

type GatewayPlugin = Plugin<Record<string, unknown> & Context>;

/** Headers that make a browser send a CORS preflight, so a cross-site form or <img> can't. */
export const CSRF_HEADERS = ['x-graphql-yoga-csrf', 'apollo-require-preflight'];

/**
 * The envelop/Yoga plugins of the gateway, in order. One line each; every plugin says why it is
 * here.
 */
export function gatewayPlugins(options: PluginOptions = {}): GatewayPlugin[] {
  const limits = options.limits ?? DEFAULT_LIMITS;
  return [
    // GET and "simple" POSTs (form, text/plain) must carry a preflighted header: no CSRF.
    csrfPrevention(),
    // A credential that cannot be a Misskey token is refused (401) before it reaches anything.
    credentialCheck(),
    // Bodies bounded by MAX_BODY_BYTES, but for uploads (multipart): their file is streamed to the
    // resolver, bounded by MAX_UPLOAD_BYTES. In place of Yoga's maxRequestBodySize, which is off.
    requestBodies(limits),
    // Batch size and the gateway rate limit, counted per operation before anything is parsed.
    admission(limits, options.rateLimit ?? null),
    // Persisted-query hashes resolved from the manifest; with arbitrary operations off, anything
    // else is refused here, before it is parsed.
    ...(options.trustedDocuments
      ? (trustedDocumentPlugins(options.trustedDocuments) as GatewayPlugin[])
      : []),
    // Document size, depth, aliases, directives, tokens, cost and field count: before execution.
    ...(operationLimitPlugins(limits) as GatewayPlugin[]),
    // Introspection-only operations answered from a small cache, once they passed the limits. A
    // hit stops execution here: it is counted by gateway_introspection_cache_total, not by the
    // graphql_envelop_* execute metrics.
    introspectionCache(options.introspectionCacheSize ?? 64, options.metrics ?? null),
    // Queries and mutations run compiled (graphql-jit); must come before the deadline wrapper.
    jitExecution(),
    // Each query or mutation gets a deadline that its upstream calls inherit.
    operationScope(options.operationTimeoutMs ?? 15_000),
    // One span per query or mutation, child of the client's traceparent, active while it runs
    // so upstream calls are its children. After JIT and the deadline: it wraps their executor.
    ...((options.tracing ?? []) as GatewayPlugin[]),
    // Anonymous public reads (trend 60 s; hashtags, announcements 30 s) from a shared cache.
    responseCache(options.responseCache),
    // Prometheus `/metrics`. No label may carry client-chosen text, or every new value would be
    // a new series kept forever: no operationName, no error `path` (made of the client's
    // aliases). What is left is bounded by the schema (fieldName, typeName) or by GraphQL itself
    // (operationType, phase).
    ...(options.metrics
      ? [
          usePrometheus({
            endpoint: '/metrics',
            registry: options.metrics.registry,
            labels: { operationName: false, path: false },
            metrics: {
              // The gateway's own gateway_http_request_duration_seconds covers every route.
              graphql_yoga_http_duration: false,
              ...graphqlMetrics(options.metrics.registry, hasDeprecations(schema)),
            },
          }) as GatewayPlugin,
        ]
      : []),
  ];
}

/** True when some field, argument, input field or enum value of `schema` is deprecated. */
export function hasDeprecations(schema: GraphQLSchema): boolean {
  for (const type of Object.values(schema.getTypeMap())) {
    if (type.name.startsWith('__')) {
      continue;
    }
    if (isEnumType(type) && type.getValues().some((value) => value.deprecationReason != null)) {
      return true;
    }
    if (isObjectType(type) || isInterfaceType(type) || isInputObjectType(type)) {
      for (const field of Object.values(type.getFields())) {
        const args: readonly { deprecationReason?: string | null }[] =
          'args' in field ? field.args : [];
        if (field.deprecationReason != null || args.some((arg) => arg.deprecationReason != null)) {
          return true;
        }
      }
    }
  }
  return false;
}

const INTROSPECTION_FIELDS = new Set(['__schema', '__type', '__typename']);

/**
 * The cache key of an operation whose every root selection is `__schema`, `__type` or
 * `__typename` (document text, operation name, variables), else null. A hash, so a 32 KiB
 * document does not become a 32 KiB key.
 */
function introspectionKey(args: ExecutionArgs): string | null {
  const source = args.document.loc?.source.body;
  if (source === undefined || !runsIntrospectionOnly(args.document, args.operationName)) {
    return null;
  }
  return createHash('sha256')
    .update(JSON.stringify([source, args.operationName ?? null, args.variableValues ?? null]))
    .digest('base64');
}

/** Per parsed document (Yoga's parser cache hands out the same one for the same text): the
 *  names of its introspection-only queries, and whether it is one such query alone (what an
 *  operation without a name runs). */
const introspectionQueries = new WeakMap<
  DocumentNode,
  { names: ReadonlySet<string>; alone: boolean }
>();

/** Whether the operation `operationName` selects (as `getOperationAST` would) is a query of
 *  introspection fields only, walked once per document instead of on every request. */
function runsIntrospectionOnly(document: DocumentNode, operationName?: string | null): boolean {
  let found = introspectionQueries.get(document);
  if (!found) {
    const names = new Set<string>();
    let operations = 0;
    let introspection = 0;
    for (const definition of document.definitions) {
      if (definition.kind !== Kind.OPERATION_DEFINITION) {
        continue;
      }
      operations++;
      const onlyIntrospection = definition.selectionSet.selections.every(
        (selection) =>
          selection.kind === Kind.FIELD && INTROSPECTION_FIELDS.has(selection.name.value),
      );
      if (definition.operation === 'query' && onlyIntrospection) {
        introspection++;
        if (definition.name) {
          names.add(definition.name.value);
        }
      }
    }
    found = { names, alone: operations === 1 && introspection === 1 };
    introspectionQueries.set(document, found);
  }
  return operationName == null ? found.alone : found.names.has(operationName);
}

/**
 * Answers introspection-only operations from an LRU of at most `max` entries. The schema is
 * static and introspection reads nothing else, so the answer is the same for every caller; a
 * full introspection costs ~20 ms of CPU, which anonymous clients could otherwise spend at will.
 */
function introspectionCache(max: number, metrics: GatewayMetrics | null): GatewayPlugin {
  const entries = new Map<string, ExecutionResult>();
  return {
    onExecute({ args, setResultAndStopExecution }) {
      const key = max > 0 ? introspectionKey(args) : null;
      if (key === null) {
        return;
      }
      const hit = entries.get(key);
      if (hit) {
        // Most recently used last: eviction takes the first.
        entries.delete(key);
        entries.set(key, hit);
        metrics?.introspectionCache.inc({ outcome: 'hit' });
        setResultAndStopExecution({ ...hit });
        return;
      }
      metrics?.introspectionCache.inc({ outcome: 'miss' });
      return {
        onExecuteDone({ result }) {
          if (isAsyncIterable(result) || (result.errors?.length ?? 0) > 0) {
            return;
          }
          entries.set(key, result);
          for (const oldest of entries.keys()) {
            if (entries.size <= max) {
              break;
            }
            entries.delete(oldest);
          }
          metrics?.introspectionCacheEntries.set(entries.size);
        },
      };
    },
  };
}

function isAsyncIterable(value: unknown): value is AsyncIterable<unknown> {
  return (
    typeof (value as { [Symbol.asyncIterator]?: unknown })[Symbol.asyncIterator] === 'function'
  );
}

/** Yoga's CSRF prevention, with the error in the gateway's model (a code, and how to comply). */
function csrfPrevention(): GatewayPlugin {
  const plugin = useCSRFPrevention({ requestHeaders: CSRF_HEADERS });
  return {
    onRequestParse(payload) {
      try {
        plugin.onRequestParse?.(payload as never);
      } catch {
        throw gatewayError(
          ErrorCode.BAD_REQUEST,
          `GET requests and text/plain or form POSTs need one of these headers: ${CSRF_HEADERS.join(', ')} (CSRF prevention). JSON POSTs need none.`,
          { http: { status: 403 } },
        );
      }
    },
  };
}

/** Refuses an `Authorization` header that no Misskey token can be (HTTP 401), before parsing. */
function credentialCheck(): GatewayPlugin {
  return {
    onRequestParse({ request }) {
      if (credentialFrom({ request }).kind === 'malformed') {
        throw malformedCredential();
      }
    },
  };
}

/** Refuses unknown media types, a batch over `maxBatch` operations, and operations over the
 *  gateway rate limit. */
function admission(limits: LimitsConfig, rateLimit: GatewayRateLimit | null): GatewayPlugin {
  return {
    onRequestParse({ request, requestParser, serverContext }) {
      if (requestParser === undefined) {
        // Yoga would answer 415 with an empty body; answer in the error model instead.
        throw gatewayError(
          ErrorCode.BAD_REQUEST,
          'Unsupported media type: send application/json (or application/graphql, or a GET query).',
          { http: { status: 415 } },
        );
      }
      return {
        async onRequestParseDone({ requestParserResult }) {
          const operations = Array.isArray(requestParserResult) ? requestParserResult.length : 1;
          if (Array.isArray(requestParserResult) && operations > limits.maxBatch) {
            const error = limitError(
              'batch',
              limits.maxBatch,
              limits.maxBatch === 0
                ? 'Batched requests are not accepted.'
                : `A batch may hold ${limits.maxBatch} operations; this one has ${operations}.`,
              operations,
              413,
            );
            throw error;
          }
          if (rateLimit?.enabled) {
            const refused = await rateLimit.check(
              tokenFrom({ request }),
              scopeOf((serverContext as { req?: unknown }).req)?.ip ?? 'unknown',
              operations,
            );
            if (refused) {
              throw refused;
            }
          }
        },
      };
    },
  };
}

/**
 * Every operation runs through graphql-jit: each document is compiled once (cached per parsed
 * document, which Yoga's parser cache reuses) and executed without graphql-js's per-field
 * interpretation. Results carry graphql-js's errors (see `asGraphqlJsErrors`).
 */
function jitExecution(): GatewayPlugin {
  let jitExecute: ExecuteFn | undefined;
  useGraphQlJit().onExecute?.({ setExecuteFn: (fn: ExecuteFn) => (jitExecute = fn) } as never);
  if (!jitExecute) {
    throw new Error('graphql-jit did not provide an executor');
  }
  const compiledExecute = jitExecute;
  const events = compiledEvents();
  return {
    onExecute({ setExecuteFn }) {
      setExecuteFn((args) => {
        const source = args.document.loc?.source;
        const result = compiledExecute(args);
        return isPromiseLike(result)
          ? result.then((done) => asGraphqlJsErrors(done, source))
          : asGraphqlJsErrors(result, source);
      });
    },
    onSubscribe({ setSubscribeFn }) {
      setSubscribeFn(events);
    },
  };
}

/**
 * A subscription: its source stream from graphql-js (`createSourceEventStream`, which gives the
 * subscribe resolver the field's arguments; graphql-jit 0.8's own `subscribe` passes it the
 * operation's variables instead), then each event through the operation's compiled plan, the
 * work graphql-js would redo per event and per subscriber.
 */
function compiledEvents(): SubscribeFn {
  const plans = new WeakMap<DocumentNode, CompiledQuery | null>();
  const planOf = (args: ExecutionArgs): CompiledQuery | null => {
    let plan = plans.get(args.document);
    if (plan === undefined) {
      const compiled = compileQuery(args.schema, args.document, args.operationName ?? undefined);
      plan = isCompiledQuery(compiled) ? compiled : null;
      plans.set(args.document, plan);
    }
    return plan;
  };
  return async (args) => {
    const plan = planOf(args);
    if (!plan) {
      return subscribe(args);
    }
    const stream = await createSourceEventStream(args);
    if (!isAsyncIterable(stream)) {
      return stream;
    }
    const source = args.document.loc?.source;
    const variables = args.variableValues ?? {};
    // An iterator, not an async generator: its `return()` must end a `next()` still waiting.
    const mapped = mapEvents(stream as AsyncIterableIterator<unknown>, async (payload) =>
      asGraphqlJsErrors(
        (await plan.query(payload, args.contextValue, variables)) as ExecuteResult,
        source,
      ),
    );
    return mapped as unknown as AsyncGenerator<ExecuteResult, void, void>;
  };
}

type SubscribeFn = typeof subscribe;

/** `events` with `map` applied to each, passing `return` through (the client unsubscribing).
 *  Promise chains, not async functions: a subscription waits in `next()` for as long as it
 *  lives, and a suspended async function would keep its whole frame for that time. */
function mapEvents<T, R>(
  events: AsyncIterableIterator<T>,
  map: (event: T) => Promise<R>,
): AsyncIterableIterator<R> {
  const done = { value: undefined, done: true } as const;
  const step = (next: IteratorResult<T>): IteratorResult<R> | Promise<IteratorResult<R>> =>
    next.done ? next : map(next.value).then((value) => ({ value, done: false }));
  return {
    next: () => events.next().then(step),
    return: () => Promise.resolve(events.return?.()).then(() => done),
    throw: (error) =>
      Promise.resolve(events.return?.()).then(() => {
        throw error;
      }),
    // A shared function: a method written here would be a new closure per subscription, with
    // its name ("[Symbol.asyncIterator]") built anew for each.
    [Symbol.asyncIterator]: returnThis,
  };
}

function returnThis<T>(this: T): T {
  return this;
}

type ExecuteFn = typeof execute;
type ExecuteResult = Awaited<ReturnType<ExecuteFn>>;

const NON_NULL_VIOLATION = /^Cannot return null for non-nullable field /;

/**
 * graphql-jit's errors as graphql-js would raise them: real `GraphQLError`s placed in the
 * document's source (so a masked or converted error keeps its `locations`), and a non-null
 * violation with a plain original error (graphql-js masks it as unexpected: the upstream answered
 * a shape the schema cannot serve).
 */
function asGraphqlJsErrors(result: ExecuteResult, source: Source | undefined): ExecuteResult {
  const errors = (result as { errors?: readonly GraphQLError[] }).errors;
  if (!errors || errors.length === 0) {
    return result;
  }
  // Keys in graphql-js's order: errors first.
  const { errors: _jit, ...rest } = result as { errors?: unknown };
  return {
    errors: errors.map((error) => {
      const original =
        error.originalError ??
        (NON_NULL_VIOLATION.test(error.message) ? new Error(error.message) : undefined);
      return new GraphQLError(error.message, {
        source,
        positions:
          source && error.locations
            ? error.locations.map((location) => positionOf(source, location))
            : undefined,
        path: error.path,
        originalError: original,
        extensions: error.extensions,
      });
    }),
    ...rest,
  } as ExecuteResult;
}

/** The character offset of a 1-based line and column in `source`. */
function positionOf(source: Source, location: SourceLocation): number {
  let offset = 0;
  for (let line = 1; line < location.line; line++) {
    const next = source.body.indexOf('\n', offset);
    if (next < 0) {
      break;
    }
    offset = next + 1;
  }
  return offset + location.column - 1;
}

/**
 * What a query or mutation (HTTP or websocket) carries beyond its context's request id:
 * - a deadline, in its context: the upstream client cuts each of its calls to end by then and
 *   refuses calls after it (subscriptions have none: they live as long as the client wants);
 * - its request id on the errors of its result, so the line that logs one (Yoga's, when it
 *   masks it) names the request.
 */
function operationScope(timeoutMs: number): GatewayPlugin {
  return {
    onExecute({ args }) {
      const context = args.contextValue as Context;
      context.operation.deadline = Date.now() + timeoutMs;
      return {
        onExecuteDone({ result }) {
          for (const error of (result as ExecutionResult).errors ?? []) {
            tagError(error, context.requestId);
          }
        },
      };
    },
  };
}

function isPromiseLike<T>(value: T | PromiseLike<T>): value is PromiseLike<T> {
  return typeof (value as { then?: unknown } | null)?.then === 'function';
}
