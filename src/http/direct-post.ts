import type { IncomingMessage, ServerResponse } from 'node:http';
import { type GraphQLParams, processRegularResult } from 'graphql-yoga';
import type { GatewayRateLimit } from '../engine/limits.js';
import type { Engine } from '../engine/yoga.js';
import { scopeOf, tagError } from '../observability/index.js';
import { isValidToken } from '../upstream/credentials.js';

/**
 * The common request, answered without Yoga's HTTP layer: a `POST /graphql` of one JSON
 * operation with a well-formed token, a `Content-Length` and a JSON `Accept`. Its operation runs
 * through the same engine (`getResultForParams`: the `onParams` hooks, then every envelop plugin:
 * limits, deadline, graphql-jit, error masking, metrics) and its answer is what Yoga's result
 * processor would write, byte for byte. What Yoga's HTTP layer adds for such a request (a Fetch
 * `Request` with a body stream, the request parsers, a `Response`, its headers and stream, and a
 * promise chain around each) cost more CPU than the operation itself.
 *
 * Anything else goes to Yoga as before: other methods, paths, media types and encodings, no or a
 * malformed credential (the anonymous response cache, the 401), batches, persisted operations,
 * bodies that are not one plain operation, and everything while trusted documents or tracing are
 * on (their plugins read the HTTP request).
 */
/** True when the request is taken (and will be answered) here; false: give it to Yoga. */
export type DirectPost = (req: IncomingMessage, res: ServerResponse) => boolean;

export interface DirectPostOptions {
  /** Bound of a JSON body (`MAX_BODY_BYTES`): a longer one goes to Yoga for its 413. */
  maxBodyBytes: number;
  rateLimit: GatewayRateLimit | null;
  /** Counts each request taken (`gateway_direct_requests_total`). */
  onTaken?: () => void;
}

/** The media types of `Accept` this path answers, and what Yoga answers for each. */
const ANSWER_FOR: Readonly<Record<string, string>> = {
  '*/*': 'application/json',
  'application/*': 'application/json',
  'application/json': 'application/json',
  'application/graphql-response+json': 'application/graphql-response+json',
};

/** A document that may hold a subscription (a false positive only costs Yoga's path). */
const MAY_SUBSCRIBE = /subscription/i;

const PARAM_NAMES = new Set(['query', 'variables', 'operationName', 'extensions']);

export function directPost(engine: Engine, options: DirectPostOptions): DirectPost {
  return (req, res) => {
    const mediaType = answerMediaType(req.headers.accept);
    const length = contentLength(req, options.maxBodyBytes);
    if (
      req.method !== 'POST' ||
      req.url !== engine.graphqlEndpoint ||
      mediaType === null ||
      length === null ||
      !isJson(req.headers['content-type']) ||
      !hasWellFormedToken(req.headers.authorization)
    ) {
      return false;
    }
    options.onTaken?.();
    readBody(req, length).then(
      (body) => {
        const params = body === null ? null : operationOf(body);
        // A subscription is answered as a stream (or refused) by Yoga's result processors.
        if (params === null || MAY_SUBSCRIBE.test(params.query ?? '')) {
          replayToYoga(engine, req, res, body);
          return;
        }
        return answer(engine, options, req, res, params, mediaType);
      },
      () => {
        // The client went away or sent less than it announced: nobody is left to answer.
        res.destroy();
      },
    );
    return true;
  };
}

/**
 * The media type Yoga would answer with (the first listed that its JSON processor matches; `*\/*`
 * and `application/*` are `application/json`), or null when `Accept` names anything else (event
 * streams, multipart, other charsets): Yoga decides those.
 */
function answerMediaType(accept: string | undefined): string | null {
  let chosen: string | null = null;
  for (const entry of (accept ?? '*/*').replace(/\s/g, '').toLowerCase().split(',')) {
    const [type = '', ...params] = entry.split(';');
    const charset = params.find((param) => param.startsWith('charset='));
    const answer = ANSWER_FOR[type];
    if (answer === undefined || (charset !== undefined && charset !== 'charset=utf-8')) {
      return null;
    }
    chosen ??= answer;
  }
  return chosen;
}

function contentLength(req: IncomingMessage, max: number): number | null {
  const header = req.headers['content-length'];
  if (header === undefined || req.headers['transfer-encoding'] !== undefined) {
    return null;
  }
  if (!/^\d{1,9}$/.test(header)) {
    return null;
  }
  const length = Number(header);
  return length > 0 && length <= max ? length : null;
}

function isJson(contentType: string | undefined): boolean {
  if (contentType === undefined) {
    return false;
  }
  const type = contentType.toLowerCase();
  return type === 'application/json' || /^application\/json\s*;\s*charset=utf-8$/.test(type);
}

function hasWellFormedToken(authorization: string | undefined): boolean {
  const match = authorization === undefined ? null : /^Bearer (\S+)$/.exec(authorization);
  return match !== null && isValidToken(match[1]);
}

/** The body, exactly `length` bytes (Node's parser delivers no more than Content-Length). */
function readBody(req: IncomingMessage, length: number): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      size += chunk.length;
    });
    req.once('end', () => resolve(size === length ? Buffer.concat(chunks, size) : null));
    req.once('error', reject);
    req.once('aborted', () => reject(new Error('aborted')));
  });
}

/** One operation in the shape Yoga's parameter check accepts, else null (Yoga answers it). */
function operationOf(body: Buffer): GraphQLParams | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    return null;
  }
  if (!isPlainObject(parsed) || typeof parsed.query !== 'string') {
    return null;
  }
  for (const key of Object.keys(parsed)) {
    if (!PARAM_NAMES.has(key)) {
      return null;
    }
  }
  const { variables, operationName, extensions } = parsed;
  const fits =
    (variables == null || isPlainObject(variables)) &&
    (operationName == null || typeof operationName === 'string') &&
    (extensions == null || isPlainObject(extensions));
  return fits ? (parsed as GraphQLParams) : null;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

async function answer(
  engine: Engine,
  options: DirectPostOptions,
  req: IncomingMessage,
  res: ServerResponse,
  params: GraphQLParams,
  mediaType: string,
): Promise<void> {
  const request = new engine.fetchAPI.Request(`http://localhost${engine.graphqlEndpoint}`, {
    method: 'POST',
    headers: req.headers as Record<string, string>,
  });
  try {
    const refused = await options.rateLimit?.check(tokenOf(req), scopeOf(req)?.ip ?? 'unknown', 1);
    const result = refused
      ? { errors: [refused] }
      : await engine.getResultForParams({ params, request }, { req, res });
    await send(res, result, mediaType, engine);
  } catch (error) {
    // What Yoga's own handler would have turned into a 500: never leave the client hanging.
    logWithRequest(engine, req, error);
    if (!res.headersSent) {
      res.writeHead(500, { 'content-type': `${mediaType}; charset=utf-8` });
    }
    res.end(JSON.stringify({ errors: [{ message: 'Unexpected error.' }] }));
  }
}

/** Logs `error` through Yoga's logger, with the id of the request it broke. */
function logWithRequest(engine: Engine, req: IncomingMessage, error: unknown): void {
  const scope = scopeOf(req);
  if (scope) {
    tagError(error, scope.requestId);
  }
  engine.logger.error(error);
}

function tokenOf(req: IncomingMessage): string | null {
  return /^Bearer (\S+)$/.exec(req.headers.authorization ?? '')?.[1] ?? null;
}

type Result = Awaited<ReturnType<Engine['getResultForParams']>>;

/**
 * Writes `result` as Yoga's JSON result processor would. A plain result (no errors, no HTTP
 * extensions) is serialised here with graphql-jit's compiled stringifier when there is one;
 * anything else is processed by Yoga's own `processRegularResult`.
 */
async function send(
  res: ServerResponse,
  result: Result,
  mediaType: string,
  engine: Engine,
): Promise<void> {
  const plain = result as {
    errors?: unknown[];
    extensions?: { http?: unknown };
    stringify?: (value: unknown) => string;
  };
  const isPlain =
    !Array.isArray(result) &&
    !isAsyncIterable(result) &&
    !plain.errors?.length &&
    plain.extensions?.http === undefined;
  if (isPlain) {
    const body = (plain.stringify ?? JSON.stringify)(result);
    res.writeHead(200, {
      'content-type': `${mediaType}; charset=utf-8`,
      'content-length': Buffer.byteLength(body),
    });
    res.end(body);
    return;
  }
  if (isAsyncIterable(result)) {
    // A subscription asked for as JSON: Yoga answers 406; the stream it started is ended.
    void (result as unknown as AsyncIterator<unknown>).return?.();
  }
  const response = await processRegularResult(result as never, engine.fetchAPI, mediaType);
  const body = Buffer.from(await response.arrayBuffer());
  const headers: Record<string, string> = {};
  response.headers.forEach((value, name) => {
    headers[name] = value;
  });
  res.writeHead(response.status, { ...headers, 'content-length': body.length });
  res.end(body);
}

function isAsyncIterable(value: unknown): value is AsyncIterable<unknown> {
  return (
    typeof (value as { [Symbol.asyncIterator]?: unknown })?.[Symbol.asyncIterator] === 'function'
  );
}

/** A body this path does not take (not one JSON operation): Yoga answers it from the bytes read. */
function replayToYoga(
  engine: Engine,
  req: IncomingMessage,
  res: ServerResponse,
  body: Buffer | null,
): void {
  const request = new engine.fetchAPI.Request(`http://localhost${req.url ?? '/'}`, {
    method: 'POST',
    headers: req.headers as Record<string, string>,
    body: new Uint8Array(body ?? []),
  });
  Promise.resolve(engine.fetch(request, { req, res }))
    .then(async (response) => {
      const bytes = Buffer.from(await response.arrayBuffer());
      const headers: Record<string, string> = {};
      response.headers.forEach((value, name) => {
        headers[name] = value;
      });
      res.writeHead(response.status, { ...headers, 'content-length': bytes.length });
      res.end(bytes);
    })
    .catch((error: unknown) => {
      logWithRequest(engine, req, error);
      res.destroy();
    });
}
