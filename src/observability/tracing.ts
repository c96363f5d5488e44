import type { IncomingMessage } from 'node:http';
import { setCurrentOtelContext, useOpenTelemetry } from '@envelop/opentelemetry';
import {
  context,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  type TextMapGetter,
  type Tracer,
  trace,
} from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BatchSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import type { Plugin } from 'graphql-yoga';

/**
 * OpenTelemetry tracing, only when `OTEL_EXPORTER_OTLP_ENDPOINT` is set (otherwise none of this
 * is installed): one server span per GraphQL operation (`@envelop/opentelemetry`), child of the
 * client's W3C `traceparent` when it sent a valid one; one client span per upstream call
 * (endpoint, HTTP status, retry attempt), whose `traceparent` goes to Misskey. Spans are sent
 * over OTLP/HTTP (JSON) in batches.
 */
export interface Tracing {
  /** The envelop plugins: the parent from `traceparent`, then the operation span. */
  readonly plugins: Plugin<Record<string, unknown>>[];
  /** Starts the span of one upstream request (see `MisskeyClientOptions.trace`). */
  readonly upstream: UpstreamTracer;
  /** Sends the spans still buffered and stops the exporter. */
  shutdown(): Promise<void>;
}

export interface UpstreamTracer {
  start(endpoint: string, attempt: number): UpstreamSpan;
}

export interface UpstreamSpan {
  /** Headers to send with the request (`traceparent`). */
  readonly headers: Record<string, string>;
  end(status: number | null, error?: string): void;
}

export interface TracingOptions {
  /** OTLP/HTTP base URL; spans are POSTed to `<endpoint>/v1/traces`. */
  endpoint: string;
  serviceName?: string;
  /** How long spans are buffered before a batch is sent, in ms (default 5000). */
  exportDelayMs?: number;
}

const propagator = new W3CTraceContextPropagator();

const headerGetter: TextMapGetter<(name: string) => string | null | undefined> = {
  keys: () => [],
  get: (lookup, key) => lookup(key) ?? undefined,
};

/** The `traceparent` header of the operation's request: HTTP (Yoga) or the websocket upgrade. */
function headerLookup(ctx: Record<string, unknown>): (name: string) => string | null | undefined {
  const request = ctx.request as Request | undefined;
  if (request?.headers && typeof request.headers.get === 'function') {
    return (name) => request.headers.get(name);
  }
  const req = ctx.req as IncomingMessage | undefined;
  return (name) => {
    const value = req?.headers?.[name];
    return Array.isArray(value) ? value[0] : value;
  };
}

export function createTracing(options: TracingOptions): Tracing {
  // Upstream calls find their operation's span in the active context: an AsyncLocalStorage one.
  // Another gateway of the same process may have registered it already.
  const contextManager = new AsyncLocalStorageContextManager().enable();
  const ownsContext = context.setGlobalContextManager(contextManager);
  if (!ownsContext) {
    contextManager.disable();
  }
  const exporter = new OTLPTraceExporter({
    url: `${options.endpoint.replace(/\/+$/, '')}/v1/traces`,
  });
  const provider = new TracerProvider({
    resource: resourceFromAttributes({ 'service.name': options.serviceName ?? 'misskey-graphql' }),
    spanProcessors: [
      new BatchSpanProcessor({ exporter, scheduledDelayMillis: options.exportDelayMs ?? 5_000 }),
    ],
  });
  const tracer: Tracer = provider.getTracer('misskey-graphql');

  // A malformed or missing traceparent extracts nothing: the operation starts a new trace. The
  // operation span below starts from the context stored for this GraphQL context.
  const followClient = ({ args }: { args: { contextValue: unknown } }) => {
    const parent = propagator.extract(
      ROOT_CONTEXT,
      headerLookup(args.contextValue as Record<string, unknown>),
      headerGetter,
    );
    setCurrentOtelContext(args.contextValue, parent);
  };
  const parentFromClient: Plugin<Record<string, unknown>> = {
    onExecute: followClient,
    onSubscribe: followClient,
  };
  const operationSpans = useOpenTelemetry(
    // No document, variables or results on spans: they may hold what clients would not share.
    { resolvers: false, document: false, variables: false, result: false },
    provider,
    SpanKind.SERVER,
    {},
    'misskey-graphql',
  ) as unknown as Plugin<Record<string, unknown>>;

  const upstream = upstreamTracer(tracer);

  return {
    plugins: [parentFromClient, operationSpans],
    upstream,
    shutdown: async () => {
      await provider.shutdown();
      if (ownsContext) {
        context.disable();
      }
    },
  };
}

/** A child span per upstream request; its `traceparent` goes with the request to Misskey. */
function upstreamTracer(tracer: Tracer): UpstreamTracer {
  return {
    start(endpoint, attempt) {
      const span = tracer.startSpan(
        `misskey ${endpoint}`,
        {
          kind: SpanKind.CLIENT,
          attributes: {
            'misskey.endpoint': endpoint,
            'http.request.method': 'POST',
            'http.request.resend_count': attempt,
            'misskey.attempt': attempt,
          },
        },
        context.active(),
      );
      const headers: Record<string, string> = {};
      propagator.inject(trace.setSpan(context.active(), span), headers, {
        set: (carrier, key, value) => {
          carrier[key] = value;
        },
      });
      return {
        headers,
        end(status, error) {
          if (status !== null) {
            span.setAttribute('http.response.status_code', status);
          }
          if (error !== undefined) {
            span.setAttribute('error.type', error);
            span.setStatus({ code: SpanStatusCode.ERROR, message: error });
          }
          span.end();
        },
      };
    },
  };
}
