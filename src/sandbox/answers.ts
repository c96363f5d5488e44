import type { ServerResponse } from 'node:http';
import type { ApiError } from './errors.js';

/** An HTTP answer of the sandbox, as Misskey (Fastify) sends it. */
export interface Answer {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
}

export function send(res: ServerResponse, answer: Answer): void {
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
export function wwwAuthenticate(error: ApiError): string | null {
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

export function sendFastify404(res: ServerResponse, method: string, path: string): void {
  send(res, {
    status: 404,
    body: { message: `Route ${method}:${path} not found`, error: 'Not Found', statusCode: 404 },
  });
}

export function internalErrorBody(): unknown {
  return {
    error: {
      message: 'Internal error occurred. Please contact us if the error persists.',
      code: 'INTERNAL_ERROR',
      id: '5d37dbcb-891e-41ca-a3d6-e690c97775ac',
      kind: 'server',
    },
  };
}
