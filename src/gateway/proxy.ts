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
import { sendJson } from '../shared/http.ts';
import { stripHopByHop, withExposedHeaders } from './headers.ts';
import type { UpstreamTarget } from './routes.ts';

export interface ProxyOptions {
  target: UpstreamTarget;
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

/** How long an event stream's headers wait for its first event before they are sent alone. */
const EVENT_STREAM_FLUSH_MS = 20;

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
    const secure = target.address.protocol === 'https:';
    const upstream = (secure ? https : http).request({
      ...target.address,
      path: target.path,
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
        // An event stream may stay quiet a long while: its headers go out now, unless its first
        // event comes at once (then with it, in one write: most MCP answers are one-event streams).
        const flush = setTimeout(() => res.flushHeaders(), EVENT_STREAM_FLUSH_MS);
        answer.once('data', () => clearTimeout(flush));
        answer.once('close', () => clearTimeout(flush));
      } else {
        answer.setTimeout(options.timeoutMs, () =>
          answer.destroy(new UpstreamTimeoutError('upstream response stalled')),
        );
      }
      // `pipe`, not `pipeline`: the answer's end ends the response, and the failures pipeline would
      // handle are handled here (pipeline also builds an AbortController per request).
      const failed = () => {
        if (upstreamFailed) return;
        upstreamFailed = true;
        // Too late for a status: cut the response so the client sees it is incomplete.
        res.destroy();
        resolve({ error: 'upstream_aborted' });
      };
      answer.on('error', failed);
      answer.once('close', () => {
        if (!answer.complete) failed();
      });
      res.once('finish', () => resolve({}));
      answer.pipe(res);
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
