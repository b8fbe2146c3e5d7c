/**
 * Every tool call, reported to the authorization server's audit trail (`POST
 * <authorization server>/events/tool-calls`, the MCP server's own client credentials).
 *
 * The trail sees a tool call as a token exchange, but exchanged tokens are cached here: a call
 * answered from the cache causes no exchange, so without this report the trail would miss it.
 * Reports are batched (once a second, or 500 at a time), never on a call's path: a call is
 * answered whatever becomes of its report. The queue is bounded; when the authorization server is
 * unreachable for long, the oldest reports are dropped and the drop is logged (the MCP server's own
 * `mcp.tool_call` log line still has every call).
 */
import type { Logger } from '../shared/logging.ts';
import { TOOL_CALL_EVENT, type ToolCallRecord } from './audit.ts';

export const TOOL_CALLS_PATH = '/events/tool-calls';
const MAX_QUEUE = 10_000;
const MAX_BATCH = 500;
const FLUSH_MS = 1000;

export interface ToolCallReporter {
  /** A logger whose `mcp.tool_call` audit lines are also reported. */
  wrap(logger: Logger): Logger;
  /** Sends what is queued, once (at close: bounded by the timeout). */
  flush(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

export function createToolCallReporter(options: {
  authorizationServerUrl: string;
  clientId: string;
  clientSecret: string;
  logger: Logger;
  fetch?: typeof fetch;
}): ToolCallReporter {
  const url = `${options.authorizationServerUrl.replace(/\/$/, '')}${TOOL_CALLS_PATH}`;
  const authorization = `Basic ${Buffer.from(
    `${encodeURIComponent(options.clientId)}:${encodeURIComponent(options.clientSecret)}`,
  ).toString('base64')}`;
  const doFetch = options.fetch ?? fetch;
  let queue: Array<Record<string, unknown>> = [];
  let dropped = 0;
  let failing = false;
  let sending: Promise<void> | undefined;

  async function send(timeoutMs: number): Promise<void> {
    while (queue.length > 0) {
      const batch = queue.slice(0, MAX_BATCH);
      try {
        const response = await doFetch(url, {
          method: 'POST',
          headers: { authorization, 'content-type': 'application/json' },
          body: JSON.stringify({ records: batch }),
          redirect: 'error',
          signal: AbortSignal.timeout(timeoutMs),
        });
        await response.body?.cancel();
        // 4xx: the authorization server will never take these (not ours to retry); 5xx: later.
        if (response.status >= 500) throw new Error(`HTTP ${response.status}`);
        if (response.status >= 400)
          options.logger.error('tool-call reports refused by the authorization server', {
            status: response.status,
            records: batch.length,
          });
        queue = queue.slice(batch.length);
        if (failing) options.logger.info('tool-call reports reach the authorization server again');
        failing = false;
      } catch (error) {
        if (!failing)
          options.logger.warn('tool-call reports could not be sent; kept and retried', {
            error: (error as Error).message,
            queued: queue.length,
          });
        failing = true;
        return;
      }
    }
  }

  const flush = (timeoutMs = 5000) => {
    sending ??= send(timeoutMs).finally(() => {
      sending = undefined;
    });
    return sending;
  };
  const timer = setInterval(() => {
    if (dropped > 0) {
      options.logger.warn('tool-call reports dropped: the queue was full', { dropped });
      dropped = 0;
    }
    if (queue.length > 0) void flush();
  }, FLUSH_MS);
  timer.unref();

  const enqueue = (record: Record<string, unknown>) => {
    if (queue.length >= MAX_QUEUE) {
      queue.shift();
      dropped++;
    }
    queue.push(record);
    if (queue.length >= MAX_BATCH && !sending) void flush();
  };

  function wrap(logger: Logger): Logger {
    return {
      ...logger,
      audit(event, fields) {
        logger.audit(event, fields);
        if (event === TOOL_CALL_EVENT) enqueue({ ...(fields as unknown as ToolCallRecord), at: Date.now() });
      },
      child: (fields) => wrap(logger.child(fields)),
    };
  }

  return {
    wrap,
    flush,
    async stop() {
      clearInterval(timer);
      await flush(2000).catch(() => {});
    },
  };
}
