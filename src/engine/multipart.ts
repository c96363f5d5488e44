import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import { Busboy } from '@fastify/busboy';
import type { GraphQLParams, Plugin } from 'graphql-yoga';
import type { Context } from '../schema/context.js';
import { ErrorCode, gatewayError } from '../schema/errors.js';
import { Upload } from '../schema/uploads.js';

type GatewayPlugin = Plugin<Record<string, unknown> & Context>;

export interface BodyLimits {
  /** Bound of every body but a multipart one (`MAX_BODY_BYTES`). */
  maxBodyBytes: number;
  /** Bound of the file of a multipart request (`MAX_UPLOAD_BYTES`). */
  maxUploadBytes: number;
}

function isMultipart(request: Request): boolean {
  return (
    request.method === 'POST' &&
    (request.headers.get('content-type') ?? '').toLowerCase().startsWith('multipart/form-data')
  );
}

function tooLarge(message = 'Request body too large'): Error {
  return gatewayError(ErrorCode.REQUEST_ENTITY_TOO_LARGE, message, { http: { status: 413 } });
}

function badRequest(message: string): Error {
  return gatewayError(ErrorCode.BAD_REQUEST, message, { http: { status: 400 } });
}

/**
 * Request bodies, in place of Yoga's `maxRequestBodySize`: a multipart request (GraphQL multipart
 * request spec) is read by `parseMultipart`, whose file is streamed to the resolver; every other
 * body stays bounded by `maxBodyBytes` (413 above, by `Content-Length` or as it arrives).
 */
export function requestBodies(limits: BodyLimits): GatewayPlugin {
  return {
    onRequestParse({ request, requestParser, setRequestParser, serverContext, fetchAPI }) {
      const length = request.headers.get('content-length');
      if (length !== null && !/^\d+$/.test(length)) {
        throw badRequest('Content-Length header is invalid.');
      }
      if (isMultipart(request)) {
        const { req, res } = serverContext as { req?: IncomingMessage; res?: ServerResponse };
        if (!req || !res) {
          throw gatewayError(ErrorCode.BAD_REQUEST, 'Uploads are accepted over HTTP only.', {
            http: { status: 415 },
          });
        }
        if (length !== null && Number(length) > limits.maxUploadBytes + limits.maxBodyBytes) {
          throw tooLarge(`An upload is at most ${limits.maxUploadBytes} bytes.`);
        }
        setRequestParser(() => parseMultipart(req, res, limits));
        return;
      }
      if (length !== null && Number(length) > limits.maxBodyBytes) {
        throw tooLarge();
      }
      // With a Content-Length, Node's HTTP parser delivers exactly that many bytes, already
      // checked above: only a chunked body needs counting as it arrives (a stream per request).
      if (requestParser === undefined || request.body === null || length !== null) {
        return;
      }
      const parser = requestParser;
      setRequestParser((req) => parser(limitBody(req, limits.maxBodyBytes, fetchAPI)));
    },
  };
}

/** `request` with a body that errors (413) once more than `limit` bytes came in. */
function limitBody(
  request: Request,
  limit: number,
  fetchAPI: { Request: typeof Request; TransformStream: typeof TransformStream },
): Request {
  const body = request.body;
  if (!body) {
    return request;
  }
  // As Yoga does: a native body needs the native TransformStream, a ponyfill one the ponyfill's.
  const Transform =
    body instanceof ReadableStream ? globalThis.TransformStream : fetchAPI.TransformStream;
  let read = 0;
  const limited = body.pipeThrough(
    new Transform<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        read += chunk.byteLength;
        if (read > limit) {
          controller.error(tooLarge());
          return;
        }
        controller.enqueue(chunk);
      },
    }),
  );
  return new fetchAPI.Request(request.url, {
    method: request.method,
    headers: request.headers,
    signal: request.signal,
    body: limited,
    duplex: 'half',
  } as RequestInit);
}

/**
 * Reads `operations` and `map`, then resolves as soon as the file part starts: the operation runs
 * while the file is still arriving, and its resolver streams the file on. One file per request;
 * the fields before it are bounded by `maxBodyBytes`, the file by `maxUploadBytes` (cut past it,
 * `truncated`). A file part the map names but the request lacks is BAD_USER_INPUT.
 */
function parseMultipart(
  req: IncomingMessage,
  res: ServerResponse,
  limits: BodyLimits,
): Promise<GraphQLParams> {
  return new Promise<GraphQLParams>((resolve, reject) => {
    new MultipartReader(req, res, limits, resolve, reject).start();
  });
}

/** One multipart request being read (see `parseMultipart`). */
class MultipartReader {
  readonly #aborted = new AbortController();
  #busboy: ReturnType<typeof Busboy> | undefined;
  #operations: unknown;
  #map: Record<string, unknown> | undefined;
  #settled = false;
  /** Bytes of the request before the current chunk, and of the current chunk. */
  #bytesBefore = 0;
  #chunkBytes = 0;

  constructor(
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
    readonly limits: BodyLimits,
    readonly resolve: (params: GraphQLParams) => void,
    readonly reject: (error: Error) => void,
  ) {
    const onClose = () => {
      if (!res.writableFinished) {
        this.#aborted.abort();
      }
    };
    res.once('close', onClose);
    req.once('aborted', onClose);
  }

  start(): void {
    const { req, limits } = this;
    let busboy: ReturnType<typeof Busboy>;
    try {
      busboy = Busboy({
        headers: req.headers as { 'content-type': string },
        limits: {
          fields: 2,
          files: 1,
          parts: 3,
          fieldSize: limits.maxBodyBytes,
          fileSize: limits.maxUploadBytes,
          headerPairs: 8,
        },
      });
    } catch (error) {
      req.resume();
      this.reject(badRequest(`The multipart request cannot be read: ${(error as Error).message}`));
      return;
    }
    this.#busboy = busboy;
    busboy.on('field', (name, value, _nameTruncated, valueTruncated) =>
      this.#onField(name, value, valueTruncated),
    );
    busboy.on('file', (name, stream, filename, _encoding, mimeType) =>
      this.#onFile(name, stream, filename, mimeType),
    );
    busboy.on('finish', () => this.#finish());
    busboy.on('partsLimit', () => this.#fail(badRequest('One file per request.')));
    busboy.on('filesLimit', () => this.#fail(badRequest('One file per request.')));
    busboy.on('error', (error: Error) =>
      this.#fail(badRequest(`Bad multipart body: ${error.message}`)),
    );
    req.on('data', (chunk: Buffer) => {
      this.#bytesBefore += this.#chunkBytes;
      this.#chunkBytes = chunk.length;
    });
    req.pipe(busboy);
  }

  #fail(error: Error): void {
    if (!this.#settled) {
      this.#settled = true;
      this.reject(error);
    }
    if (this.#busboy) {
      this.req.unpipe(this.#busboy);
    }
    this.req.resume();
  }

  #finish(): void {
    if (this.#settled) {
      return;
    }
    if (this.#operations === undefined) {
      this.#fail(badRequest('Missing multipart form field "operations".'));
      return;
    }
    const missing = Object.keys(this.#map ?? {});
    this.#settled = true;
    if (missing.length > 0) {
      this.reject(
        gatewayError(
          ErrorCode.BAD_USER_INPUT,
          `The request has no file part "${missing[0]}" that its map names.`,
          { http: { status: 400 } },
        ),
      );
      return;
    }
    this.resolve(this.#operations as GraphQLParams);
  }

  #onField(name: string, value: string, valueTruncated: boolean): void {
    if (valueTruncated) {
      this.#fail(tooLarge(`The "${name}" field is over ${this.limits.maxBodyBytes} bytes.`));
      return;
    }
    try {
      if (name === 'operations') {
        this.#operations = JSON.parse(value);
      } else if (name === 'map') {
        const parsed: unknown = JSON.parse(value);
        if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
          throw new Error('not an object');
        }
        this.#map = parsed as Record<string, unknown>;
      }
    } catch {
      this.#fail(badRequest(`Multipart form field "${name}" must be valid JSON.`));
    }
  }

  #onFile(
    name: string,
    stream: Readable & { truncated?: boolean },
    filename: string,
    mimeType: string,
  ): void {
    if (this.#settled) {
      stream.resume();
      return;
    }
    const map = this.#map;
    if (this.#operations === undefined || map === undefined) {
      stream.resume();
      this.#fail(badRequest('The "operations" and "map" fields must come before the file.'));
      return;
    }
    const paths = map[name];
    if (!Array.isArray(paths) || paths.some((path) => typeof path !== 'string')) {
      stream.resume();
      this.#fail(badRequest(`The map names no variable for the file part "${name}".`));
      return;
    }
    const upload = this.#upload(stream, filename, mimeType);
    for (const path of paths as string[]) {
      setPath(this.#operations, path, upload);
    }
    delete map[name];
    this.#finish();
  }

  /** The file as the resolver sees it, cut off when the client goes away or past the bound. */
  #upload(stream: Readable & { truncated?: boolean }, filename: string, mimeType: string): Upload {
    const { req, res, limits } = this;
    const upload = new Upload(
      filename || 'blob',
      mimeType || 'application/octet-stream',
      stream,
      this.#sizeAtLeast(),
      limits.maxUploadBytes,
      this.#aborted.signal,
      () => {
        // An answer before the whole request was read: a client may not reuse the connection.
        if (!req.complete && !res.headersSent) {
          res.setHeader('connection', 'close');
        }
      },
    );
    // The stream is destroyed with an error below (client gone, over the bound) whether or not a
    // resolver reads it: without a listener of its own that error would crash the process.
    stream.on('error', () => {});
    this.#aborted.signal.addEventListener('abort', () => {
      stream.destroy(new Error('the client went away'));
    });
    res.once('close', () => stream.resume());
    // Past MAX_UPLOAD_BYTES nothing more is read: the reader of the file gets an error (the
    // stream is `truncated`), and the connection is closed once answered.
    stream.once('limit', () => {
      if (this.#busboy) {
        req.unpipe(this.#busboy);
      }
      if (!res.headersSent) {
        res.setHeader('connection', 'close');
      }
      stream.destroy(tooLarge(`An upload is at most ${limits.maxUploadBytes} bytes.`));
      if (res.writableFinished) {
        req.destroy();
      } else {
        res.once('finish', () => req.destroy());
      }
    });
    return upload;
  }

  /** The file ends at the closing boundary: what the request has left after the current chunk,
   *  less that boundary, is the least the file can be (0 without a Content-Length). */
  #sizeAtLeast(): number {
    const contentLength = Number(this.req.headers['content-length'] ?? Number.NaN);
    if (!Number.isFinite(contentLength)) {
      return 0;
    }
    const boundary = /boundary=("?)([^";]+)\1/i.exec(this.req.headers['content-type'] ?? '')?.[2];
    return Math.max(
      0,
      contentLength - this.#bytesBefore - this.#chunkBytes - (boundary?.length ?? 70) - 8,
    );
  }
}

/** Sets `value` at a dotted path such as `variables.file` or `0.variables.files.1`. */
function setPath(target: unknown, path: string, value: unknown): void {
  const keys = path.split('.');
  let current = target as Record<string, unknown>;
  for (const [index, key] of keys.entries()) {
    if (key === '__proto__' || key === 'constructor' || key === 'prototype') {
      return;
    }
    if (index === keys.length - 1) {
      current[key] = value;
      return;
    }
    const next = current[key];
    if (typeof next !== 'object' || next === null) {
      current[key] = {};
    }
    current = current[key] as Record<string, unknown>;
  }
}
