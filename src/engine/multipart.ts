import type { IncomingMessage, ServerResponse } from 'node:http';
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
      if (requestParser === undefined || request.body === null) {
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
  const aborted = new AbortController();
  const onClose = () => {
    if (!res.writableFinished) {
      aborted.abort();
    }
  };
  res.once('close', onClose);
  req.once('aborted', onClose);
  const contentLength = Number(req.headers['content-length'] ?? Number.NaN);
  return new Promise<GraphQLParams>((resolve, reject) => {
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
      reject(badRequest(`The multipart request cannot be read: ${(error as Error).message}`));
      return;
    }
    let operations: unknown;
    let map: Record<string, unknown> | undefined;
    let settled = false;
    let bytesBefore = 0;
    let chunkBytes = 0;
    const fail = (error: Error) => {
      if (!settled) {
        settled = true;
        reject(error);
      }
      req.unpipe(busboy);
      req.resume();
    };
    const finish = () => {
      if (settled) {
        return;
      }
      if (operations === undefined) {
        fail(badRequest('Missing multipart form field "operations".'));
        return;
      }
      const missing = Object.keys(map ?? {});
      if (missing.length > 0) {
        settled = true;
        reject(
          gatewayError(
            ErrorCode.BAD_USER_INPUT,
            `The request has no file part "${missing[0]}" that its map names.`,
            { http: { status: 400 } },
          ),
        );
        return;
      }
      settled = true;
      resolve(operations as GraphQLParams);
    };
    busboy.on('field', (name, value, _nameTruncated, valueTruncated) => {
      if (valueTruncated) {
        fail(tooLarge(`The "${name}" field is over ${limits.maxBodyBytes} bytes.`));
        return;
      }
      try {
        if (name === 'operations') {
          operations = JSON.parse(value);
        } else if (name === 'map') {
          const parsed: unknown = JSON.parse(value);
          if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
            throw new Error('not an object');
          }
          map = parsed as Record<string, unknown>;
        }
      } catch {
        fail(badRequest(`Multipart form field "${name}" must be valid JSON.`));
      }
    });
    busboy.on('file', (name, stream, filename, _encoding, mimeType) => {
      if (settled) {
        stream.resume();
        return;
      }
      if (operations === undefined || map === undefined) {
        stream.resume();
        fail(badRequest('The "operations" and "map" fields must come before the file.'));
        return;
      }
      const paths = map[name];
      if (!Array.isArray(paths) || paths.some((path) => typeof path !== 'string')) {
        stream.resume();
        fail(badRequest(`The map names no variable for the file part "${name}".`));
        return;
      }
      // The file ends at the closing boundary: what the request has left after the current
      // chunk, less that boundary, is the least the file can be.
      const boundary = /boundary=("?)([^";]+)\1/i.exec(req.headers['content-type'] ?? '')?.[2];
      const sizeAtLeast = Number.isFinite(contentLength)
        ? Math.max(0, contentLength - bytesBefore - chunkBytes - (boundary?.length ?? 70) - 8)
        : 0;
      const upload = new Upload(
        filename || 'blob',
        mimeType || 'application/octet-stream',
        stream,
        sizeAtLeast,
        limits.maxUploadBytes,
        aborted.signal,
        () => {
          // An answer before the whole request was read: a client may not reuse the connection.
          if (!req.complete && !res.headersSent) {
            res.setHeader('connection', 'close');
          }
        },
      );
      aborted.signal.addEventListener('abort', () => {
        stream.destroy(new Error('the client went away'));
      });
      res.once('close', () => stream.resume());
      // Past MAX_UPLOAD_BYTES nothing more is read: the reader of the file gets an error (the
      // stream is `truncated`), and the connection is closed once answered.
      stream.once('limit', () => {
        req.unpipe(busboy);
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
      for (const path of paths as string[]) {
        setPath(operations, path, upload);
      }
      delete map[name];
      finish();
    });
    busboy.on('finish', finish);
    busboy.on('partsLimit', () => fail(badRequest('One file per request.')));
    busboy.on('filesLimit', () => fail(badRequest('One file per request.')));
    busboy.on('error', (error: Error) => fail(badRequest(`Bad multipart body: ${error.message}`)));
    req.on('data', (chunk: Buffer) => {
      bytesBefore += chunkBytes;
      chunkBytes = chunk.length;
    });
    req.pipe(busboy);
  });
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
