/**
 * Forwards one request upstream and streams the answer back.
 *
 * The response is piped, never buffered, so Server-Sent Events reach the client as the upstream
 * writes them. Time limits: the upstream must send its response headers within `timeoutMs` (else
 * 504), and an ordinary response must not stall for longer than that between chunks; an event
 * stream may stay quiet as long as both ends keep it open. Closing either end closes the other.
 */
import http, { type IncomingMessage, type OutgoingHttpHeaders, type ServerResponse } from 'node:http';
import https from 'node:https';
import { pipeline } from 'node:stream';
import { sendJson } from '../shared/http.ts';
import { stripHopByHop, withExposedHeaders } from './headers.ts';

export interface ProxyOptions {
  target: URL;
  /** Request headers for the upstream, already stripped and with the translated `Authorization`. */
  headers: OutgoingHttpHeaders;
  /** The request body, already read within the size limit; undefined for a request without one. */
  body: Buffer | undefined;
  timeoutMs: number;
  agents: { http: http.Agent; https: https.Agent };
  /** Adjusts the upstream's response headers before they are sent on. */
  adjustResponse?: (status: number, headers: OutgoingHttpHeaders) => void;
}

export interface ProxyOutcome {
  /** Why the exchange did not complete normally, for the request log. */
  error?: 'upstream_timeout' | 'upstream_unreachable' | 'upstream_aborted' | 'client_closed';
}

class UpstreamTimeoutError extends Error {
  override name = 'UpstreamTimeoutError';
}

const isEventStream = (headers: http.IncomingHttpHeaders) =>
  /^text\/event-stream\b/i.test(String(headers['content-type'] ?? ''));

export function proxy(
  req: IncomingMessage,
  res: ServerResponse,
  options: ProxyOptions,
): Promise<ProxyOutcome> {
  return new Promise((resolve) => {
    const { target } = options;
    const headers = { ...options.headers };
    if (options.body) headers['content-length'] = options.body.length;
    else delete headers['content-length'];
    const secure = target.protocol === 'https:';
    const upstream = (secure ? https : http).request(target, {
      method: req.method,
      headers,
      agent: secure ? options.agents.https : options.agents.http,
    });

    const headerTimer = setTimeout(
      () => upstream.destroy(new UpstreamTimeoutError('no response headers in time')),
      options.timeoutMs,
    );
    let upstreamFailed = false;
    // The client went away before the answer was complete: stop the upstream work as well.
    res.once('close', () => {
      clearTimeout(headerTimer);
      if (!res.writableFinished && !upstreamFailed) {
        upstream.destroy();
        resolve({ error: 'client_closed' });
      }
    });

    upstream.once('response', (answer) => {
      clearTimeout(headerTimer);
      const responseHeaders = stripHopByHop(answer.headers);
      withExposedHeaders(req, responseHeaders);
      options.adjustResponse?.(answer.statusCode ?? 502, responseHeaders);
      res.writeHead(answer.statusCode ?? 502, answer.statusMessage, responseHeaders);
      if (isEventStream(answer.headers)) {
        // Send the headers now: the first event may be a while coming.
        res.flushHeaders();
      } else {
        answer.setTimeout(options.timeoutMs, () =>
          answer.destroy(new UpstreamTimeoutError('upstream response stalled')),
        );
      }
      // Registered before pipeline's own listeners, so it runs before the response is destroyed.
      answer.on('error', () => {
        upstreamFailed = true;
      });
      pipeline(answer, res, (error) =>
        resolve(error ? { error: upstreamFailed ? 'upstream_aborted' : 'client_closed' } : {}),
      );
    });

    upstream.on('error', (error) => {
      clearTimeout(headerTimer);
      if (res.destroyed) {
        resolve({ error: 'client_closed' });
        return;
      }
      if (res.headersSent) {
        // Too late for a status: cut the response so the client sees it is incomplete.
        res.destroy();
        resolve({ error: 'upstream_aborted' });
        return;
      }
      const timeout = error instanceof UpstreamTimeoutError;
      const extra: Record<string, string> = {};
      withExposedHeaders(req, extra);
      sendJson(
        res,
        timeout ? 504 : 502,
        timeout
          ? { error: 'gateway_timeout', error_description: 'the upstream service did not answer in time' }
          : { error: 'bad_gateway', error_description: 'the upstream service cannot be reached' },
        extra,
      );
      resolve({ error: timeout ? 'upstream_timeout' : 'upstream_unreachable' });
    });

    upstream.end(options.body);
  });
}
