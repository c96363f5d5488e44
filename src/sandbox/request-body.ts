import type { IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { type Answer, send } from './answers.js';
import type { Endpoint, UploadedFile } from './registry.js';

export interface RequestParams {
  params: Record<string, unknown>;
  castFailure?: CastFailure;
  file?: UploadedFile;
}

/**
 * The parameters of an API request as Misskey reads them: the query string of a GET, multipart
 * fields and the `file` part of an upload, a JSON body, or no parameters for a body of another
 * accepted type. Null when the request was answered already (too large, bad JSON, bad type).
 */
export async function readParams(
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
  endpoint: Endpoint,
): Promise<RequestParams | null> {
  const contentType = (req.headers['content-type'] ?? '').toLowerCase();
  if (req.method === 'GET') {
    return castStrings(endpoint, Object.fromEntries(url.searchParams));
  }
  if (contentType.startsWith('multipart/form-data')) {
    return readMultipart(req, url, endpoint);
  }
  const raw = await readBody(req, 1024 * 1024);
  if (raw === null) {
    // Sent as Fastify sends it, without the API's cache-control header.
    res.writeHead(413, { 'content-type': 'application/json; charset=utf-8' });
    res.end(
      JSON.stringify(
        fastifyError(
          413,
          'FST_ERR_CTP_BODY_TOO_LARGE',
          'Payload Too Large',
          'Request body is too large',
        ).body,
      ),
    );
    return null;
  }
  if (contentType.startsWith('application/json')) {
    if (raw.length === 0) {
      return { params: {} };
    }
    try {
      const parsed: unknown = JSON.parse(raw.toString('utf8'));
      const isObject = typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed);
      return { params: isObject ? (parsed as Record<string, unknown>) : {} };
    } catch {
      send(
        res,
        fastifyError(
          400,
          'FST_ERR_CTP_INVALID_JSON_BODY',
          'Bad Request',
          "Body is not valid JSON but content-type is set to 'application/json'",
        ),
      );
      return null;
    }
  }
  if (contentType !== '' && !contentType.startsWith('text/plain')) {
    send(
      res,
      fastifyError(
        415,
        'FST_ERR_CTP_INVALID_MEDIA_TYPE',
        'Unsupported Media Type',
        `Unsupported Media Type: ${contentType}`,
      ),
    );
    return null;
  }
  return { params: {} };
}

async function readMultipart(
  req: IncomingMessage,
  url: URL,
  endpoint: Endpoint,
): Promise<RequestParams> {
  const form = await new Request(url, {
    method: 'POST',
    headers: req.headers as Record<string, string>,
    body: Readable.toWeb(req) as ReadableStream,
    duplex: 'half',
  } as RequestInit).formData();
  const fields: Record<string, string> = {};
  let file: UploadedFile | undefined;
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
  const read: RequestParams = { ...castStrings(endpoint, fields), file };
  if (file) {
    read.params.file = file.filename;
  }
  return read;
}

/** Fastify's own error answer (before Misskey's pipeline runs). */
function fastifyError(status: number, code: string, error: string, message: string): Answer {
  return { status, body: { statusCode: status, code, error, message } };
}

export async function readBody(req: IncomingMessage, max: number): Promise<Buffer | null> {
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

export interface CastFailure {
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
