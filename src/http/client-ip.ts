import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';

export /** The client address: the socket's peer, or the first `X-Forwarded-For` entry behind a proxy
 *  when it is an IP address (anything else is client text and must not become a key). */
function clientIp(req: IncomingMessage, trustProxy: boolean): string {
  if (trustProxy) {
    const forwarded = req.headers['x-forwarded-for'];
    const first = (Array.isArray(forwarded) ? forwarded[0] : forwarded)
      ?.slice(0, 64)
      .split(',')[0]
      ?.trim();
    if (first && isIP(first) !== 0) {
      return first;
    }
  }
  return req.socket.remoteAddress ?? 'unknown';
}
