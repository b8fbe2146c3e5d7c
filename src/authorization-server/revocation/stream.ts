/**
 * `GET <issuer>/events/revocations`: revocations as Server-Sent Events (WHATWG HTML §9.2), for the
 * gateway and MCP server instances to drop what they cache about a revoked token at once.
 *
 * Only the internal clients (roles `gateway` and `mcp-server`) may listen, with their client
 * credentials (client_secret_basic): the stream says which grants and subjects are revoked, nobody
 * else's business. The stream starts with the events missed since `Last-Event-ID` (`<stream>:<id>`)
 * when the log still has them, else with `reset` (drop everything) followed by every event the log
 * still keeps (kept longer than any access token lives, so a restarted MCP server learns again
 * which phantom tokens are revoked); then `ready`; then each event as it happens, and a comment
 * every heartbeat so a listener can tell a quiet stream from a dead one within a second.
 */
import type { ServerResponse } from 'node:http';
import type { Middleware } from 'koa';
import type { Logger } from '../../shared/logging.ts';
import {
  REVOCATION_EVENTS_PATH,
  REVOCATION_HEARTBEAT_SECONDS,
  REVOCATION_LATEST_PATH,
} from '../../shared/revocation-events.ts';
import { internalCaller } from '../http/internal-client-auth.ts';
import type { RevocationEventLog, StoredRevocationEvent } from './event-log.ts';

export interface RevocationStreamOptions {
  log: RevocationEventLog;
  /** The secrets of the clients allowed to listen, by client_id. */
  listeners: ReadonlyMap<string, string>;
  logger: Logger;
  heartbeatSeconds?: number;
  /** What every listener learns in the `ready` event (the key of the token tags, for the gateway). */
  ready?: Record<string, string>;
}

export interface RevocationStream {
  middleware: Middleware;
  /** Ends every open stream (before the server drains: a stream never finishes by itself). */
  closeAll(): void;
  readonly open: number;
}

const frame = (stream: string, stored: StoredRevocationEvent) =>
  `id: ${stream}:${stored.id}\nevent: revoked\ndata: ${JSON.stringify(stored.event)}\n\n`;

export function createRevocationStream(options: RevocationStreamOptions): RevocationStream {
  const { log, logger } = options;
  const heartbeatMs = (options.heartbeatSeconds ?? REVOCATION_HEARTBEAT_SECONDS) * 1000;
  const open = new Set<ServerResponse>();

  /** The listener's client id when its credentials are right; otherwise answers 401 and says undefined. */
  const authenticated = (ctx: Parameters<Middleware>[0]): string | undefined => {
    const { clientId: caller, named: clientId } = internalCaller(ctx.get('authorization'), options.listeners);
    if (caller) return caller;
    logger.audit('revocation.stream', { outcome: 'denied', client_id: clientId, ip: ctx.ip });
    ctx.status = 401;
    ctx.set('www-authenticate', 'Basic realm="revocation events"');
    ctx.set('cache-control', 'no-store');
    ctx.body = {
      error: 'invalid_client',
      error_description: 'only the gateway and the MCP server may listen',
    };
    return undefined;
  };

  const middleware: Middleware = async (ctx, next) => {
    if (ctx.path !== REVOCATION_EVENTS_PATH && ctx.path !== REVOCATION_LATEST_PATH) return next();
    if (ctx.method !== 'GET') {
      ctx.status = 405;
      ctx.set('allow', 'GET');
      ctx.body = { error: 'invalid_request', error_description: 'GET this stream' };
      return;
    }
    const clientId = authenticated(ctx);
    if (!clientId) return;
    if (ctx.path === REVOCATION_LATEST_PATH) {
      // A quiet stream's check: which event is the latest (revocation-listener.ts).
      ctx.set('cache-control', 'no-store');
      ctx.body = { stream: log.streamId, latest: await log.latestId() };
      return;
    }

    // Subscribe before reading the log, so nothing appended meanwhile is lost; replayed ids are skipped.
    let replayedUpTo = 0;
    const pending: StoredRevocationEvent[] = [];
    let res: ServerResponse | undefined;
    const unsubscribe = log.subscribe((stored) => {
      if (!res) pending.push(stored);
      else if (stored.id > replayedUpTo) res.write(frame(log.streamId, stored));
    });

    // Read before answering: a store that cannot answer makes this a 503 (the listener retries),
    // not a stream that says it is ready without what was missed.
    let opening: string[];
    let missed: StoredRevocationEvent[] | undefined;
    try {
      const [stream, lastId] = (ctx.get('last-event-id') || '').split(':');
      missed =
        stream === log.streamId && /^\d+$/.test(lastId ?? '') ? await log.since(Number(lastId)) : undefined;
      if (missed) {
        opening = missed.map((stored) => frame(log.streamId, stored));
        replayedUpTo = missed.at(-1)?.id ?? Number(lastId);
      } else {
        // Nothing to go on: the listener must drop everything it caches, then learn again every
        // revocation whose tokens may still be alive.
        replayedUpTo = await log.latestId();
        const retained = await log.retained();
        opening = [
          `id: ${log.streamId}:${replayedUpTo}\nevent: reset\ndata: {}\n\n`,
          ...retained
            .filter((stored) => stored.id <= replayedUpTo)
            .map((stored) => frame(log.streamId, stored)),
        ];
      }
    } catch (error) {
      unsubscribe();
      throw error;
    }

    // From here on the response is ours to write, for as long as the listener stays.
    ctx.respond = false;
    const out = ctx.res;
    out.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-store',
      'x-accel-buffering': 'no',
    });
    out.write(`retry: 1000\n\n`);
    for (const line of opening) out.write(line);
    for (const stored of pending) if (stored.id > replayedUpTo) out.write(frame(log.streamId, stored));
    out.write(`event: ready\ndata: ${JSON.stringify(options.ready ?? {})}\n\n`);
    res = out;
    open.add(out);
    logger.info('revocation listener connected', {
      client_id: clientId,
      ...(missed ? { replayed: missed.length } : { reset: true }),
    });

    const heartbeat = setInterval(() => out.write(': keep-alive\n\n'), heartbeatMs);
    out.once('close', () => {
      clearInterval(heartbeat);
      unsubscribe();
      open.delete(out);
      logger.info('revocation listener gone', { client_id: clientId });
    });
  };

  return {
    middleware,
    closeAll() {
      for (const res of open) res.end();
    },
    get open() {
      return open.size;
    },
  };
}
