import type { IncomingMessage, ServerResponse } from 'node:http';
import type { CorsOrigins } from '../config.js';
import { CSRF_HEADERS } from '../engine/plugins.js';
import { ErrorCode } from '../schema/errors.js';
import { sendJson } from './send-json.js';

/** Request headers a cross-origin page may send to /graphql (the preflight's answer). */
const CORS_ALLOW_HEADERS = ['authorization', 'content-type', 'x-request-id', ...CSRF_HEADERS];
/** Response headers beyond the CORS-safelisted ones that such a page may read. */
const CORS_EXPOSE_HEADERS = ['x-request-id', 'retry-after'];

/**
 * The CORS headers for a request from `origin`. Never `allow-credentials`: tokens travel in
 * `Authorization`, so no cookie-bearing request needs to be allowed. The `null` origin (sandboxed
 * frames, local files) is never allowed.
 */
export function corsHeaders(
  policy: CorsOrigins,
  origin: string | undefined,
  preflight: boolean,
): Record<string, string> {
  if (policy === 'none') {
    return {};
  }
  // With a list, the answer depends on the Origin: caches must keep one copy per origin.
  const headers: Record<string, string> = policy === '*' ? {} : { vary: 'Origin' };
  if (origin === undefined || origin === 'null' || (policy !== '*' && !policy.includes(origin))) {
    return headers;
  }
  headers['access-control-allow-origin'] = policy === '*' ? '*' : origin;
  if (preflight) {
    headers['access-control-allow-methods'] = 'GET, POST';
    headers['access-control-allow-headers'] = CORS_ALLOW_HEADERS.join(', ');
    headers['access-control-max-age'] = '600';
  } else {
    headers['access-control-expose-headers'] = CORS_EXPOSE_HEADERS.join(', ');
  }
  return headers;
}

/**
 * What /graphql answers before Yoga sees the request: CORS headers, the preflight, and 405 for
 * any method but GET and POST. False when the request is answered.
 */
export function graphqlFront(
  req: IncomingMessage,
  res: ServerResponse,
  policy: CorsOrigins,
): boolean {
  const preflight = req.method === 'OPTIONS';
  for (const [name, value] of Object.entries(corsHeaders(policy, req.headers.origin, preflight))) {
    res.setHeader(name, value);
  }
  if (preflight) {
    res.writeHead(204, { allow: 'GET, POST, OPTIONS', 'content-length': 0 });
    res.end();
    return false;
  }
  if (req.method !== 'GET' && req.method !== 'POST') {
    res.setHeader('allow', 'GET, POST');
    sendJson(res, 405, {
      errors: [
        {
          message: 'Only GET and POST are allowed on /graphql.',
          extensions: { code: ErrorCode.BAD_REQUEST },
        },
      ],
    });
    return false;
  }
  return true;
}
