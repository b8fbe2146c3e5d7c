/**
 * The HTTP listener of every component: prompt timeouts, connection caps with eviction, and a
 * graceful close that lets requests in flight finish.
 *
 * - Timeouts (`http.*TimeoutSeconds`): Node checks the headers and request timeouts only on a
 *   timer, every 30 s by default, so a slowloris connection would be held up to 30 s past its
 *   deadline. Checking every second bounds that to about a second.
 * - Caps and eviction: see connection-limits.ts. A refused connection gets a 503 with
 *   `Retry-After` (RFC 9110 §15.6.4, §10.2.3) and is closed.
 * - Framing: requests no server should serve (two Host or Authorization fields, HTTP/1.0 with
 *   Transfer-Encoding, a target that is not a path) get 400 and a closed connection
 *   (request-framing.ts).
 * - Close (drain): stop accepting, close idle keep-alive connections at once, answer what is in
 *   flight with `Connection: close` (RFC 9112 §9.6) so each connection closes after its response,
 *   wait for those responses until the drain deadline, then cut whatever is left.
 */
import { createServer, type RequestListener, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import { type AcceptQueues, listenWithAcceptQueues } from './accept-queues.ts';
import type { HttpConfig } from './config/schema.ts';
import {
  type CapScope,
  createConnectionLimits,
  type EvictionReason,
  type Exchange,
} from './connection-limits.ts';
import { listen } from './http.ts';
import type { Logger } from './logging.ts';
import {
  answerServerWideOptions,
  framingProblem,
  isServerWideOptions,
  refuseFraming,
} from './request-framing.ts';
import { loadTlsMaterial, reloadOnChange, type TlsFiles } from './tls-listener.ts';

/** How often Node looks for connections past their headers or request deadline. */
const CONNECTIONS_CHECKING_INTERVAL_MS = 1000;
/** While connections are being evicted or refused, one summary line per this interval. */
const PRESSURE_LOG_INTERVAL_MS = 10_000;

const REFUSAL_BODY = JSON.stringify({
  error: 'temporarily_unavailable',
  error_description: 'the server holds as many connections as it may; retry shortly',
});
const REFUSAL = [
  'HTTP/1.1 503 Service Unavailable',
  'Connection: close',
  'Retry-After: 1',
  'Cache-Control: no-store',
  'Content-Type: application/json',
  `Content-Length: ${Buffer.byteLength(REFUSAL_BODY)}`,
  '',
  REFUSAL_BODY,
].join('\r\n');

export interface CloseOptions {
  /**
   * When to stop waiting for requests in flight (Date.now() milliseconds). Defaults to now plus
   * `http.drainTimeoutSeconds`; a launcher closing several listeners passes one deadline to all.
   */
  deadline?: number;
}

export interface HttpServer {
  readonly server: Server;
  /** Listens on host:port and returns the real port; a taken port names `setting`. */
  listen(host: string, port: number, setting: string): Promise<number>;
  /** Drains (see above) and closes. Calling it again returns the same promise. */
  close(options?: CloseOptions): Promise<void>;
}

type PressureEvent = EvictionReason | 'refused';

/** One warning when the caps start biting, then a count per interval while they still do. */
function createPressureLog(logger: Logger, caps: Record<string, number>) {
  let counts: Partial<Record<PressureEvent | `cap_${CapScope}`, number>> = {};
  let timer: NodeJS.Timeout | undefined;
  const flush = () => {
    if (Object.keys(counts).length === 0) {
      timer = undefined;
      return;
    }
    logger.warn('connection limit reached: connections evicted or refused', { ...counts, ...caps });
    counts = {};
    timer = setTimeout(flush, PRESSURE_LOG_INTERVAL_MS).unref();
  };
  return (event: PressureEvent, scope: CapScope) => {
    counts[event] = (counts[event] ?? 0) + 1;
    counts[`cap_${scope}`] = (counts[`cap_${scope}`] ?? 0) + 1;
    if (!timer) flush();
  };
}

export interface HttpServerOptions {
  /** Serve HTTPS with this certificate (tls-listener.ts), reloaded when its files change. */
  tls?: TlsFiles;
}

export function createHttpServer(
  handler: RequestListener,
  settings: HttpConfig,
  logger: Logger,
  options: HttpServerOptions = {},
): HttpServer {
  const timeouts = {
    headersTimeout: settings.headersTimeoutSeconds * 1000,
    requestTimeout: settings.requestTimeoutSeconds * 1000,
    keepAliveTimeout: settings.keepAliveTimeoutSeconds * 1000,
    connectionsCheckingInterval: CONNECTIONS_CHECKING_INTERVAL_MS,
  };
  let stopReloading = () => {};
  let server: Server;
  if (options.tls) {
    const material = loadTlsMaterial(options.tls);
    // TLS 1.2 at least (RFC 9700 §2.6 by way of RFC 9325); Node's default ciphers otherwise.
    const secure = createHttpsServer({
      ...timeouts,
      cert: material.cert,
      key: material.key,
      minVersion: 'TLSv1.2',
    });
    stopReloading = reloadOnChange(secure, options.tls, material, logger);
    server = secure;
  } else {
    server = createServer(timeouts);
  }
  const tls = options.tls !== undefined;
  const caps = {
    max_connections: settings.maxConnections,
    max_connections_per_address: settings.maxConnectionsPerAddress,
  };
  const pressure = createPressureLog(logger, caps);
  const limits = createConnectionLimits({
    maxConnections: settings.maxConnections,
    maxConnectionsPerAddress: settings.maxConnectionsPerAddress,
    slowBodyMs: settings.headersTimeoutSeconds * 1000,
    onEvicted: (_connection, reason, scope) => pressure(reason, scope),
  });
  caps.max_connections = limits.maxConnections;
  if (limits.maxConnections < settings.maxConnections) {
    logger.info('connections capped below http.maxConnections by the open-file limit', {
      max_connections: limits.maxConnections,
    });
  }

  let draining: { exchangeAnswered(exchange: Exchange): void } | undefined;
  const faulty = new WeakSet<Socket>();

  function refuse(socket: Socket) {
    // A plain-text answer means nothing inside TLS: just close.
    if (tls) {
      socket.destroy();
      return;
    }
    // Best effort: the client learns to retry, and the descriptor is released right away.
    socket.write(REFUSAL, () => socket.destroy());
    socket.setTimeout(1000, () => socket.destroy());
  }

  server.on('connection', (socket: Socket) => {
    if (draining) {
      socket.destroy();
      return;
    }
    const outcome = limits.admit(socket);
    if (!outcome.admitted) {
      pressure('refused', outcome.scope);
      refuse(socket);
    }
  });

  server.on('request', (req, res) => {
    const exchange = limits.requestReceived(req, res);
    if (!exchange) {
      // A refused (or evicted) connection whose request was already parsed: not served.
      res.destroy();
      return;
    }
    if (draining) {
      res.setHeader('connection', 'close');
      res.once('close', () => draining?.exchangeAnswered(exchange));
    }
    // A connection that carried a faulty request carries nothing more: whatever Node parsed after
    // it (a request smuggled in the faulty one's body) is dropped unanswered.
    if (faulty.has(req.socket)) {
      res.destroy();
      return;
    }
    const problem = framingProblem(req);
    if (problem) {
      faulty.add(req.socket);
      logger.info('request refused', { reason: problem, method: req.method });
      refuseFraming(res, problem);
      res.once('finish', () => req.socket.destroy());
      return;
    }
    if (isServerWideOptions(req)) {
      answerServerWideOptions(res);
      return;
    }
    handler(req, res);
  });

  async function drain(deadline: number): Promise<void> {
    let allAnswered: () => void = () => {};
    const answered = new Promise<void>((resolve) => {
      allAnswered = resolve;
    });
    let finished = 0;
    draining = {
      exchangeAnswered(exchange) {
        finished += 1;
        const { socket } = exchange.connection;
        // Headers already sent with keep-alive: close once the connection has nothing left to send.
        if (exchange.connection.exchanges.size === 0 && !socket.destroyed) socket.end();
        if (limits.exchanges.size === 0) allAnswered();
      },
    };
    acceptQueues?.close();
    stopReloading();
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    const inFlight = limits.exchanges.size;
    logger.info('draining: not accepting connections, finishing requests in flight', {
      in_flight: inFlight,
      drain_timeout_ms: Math.max(0, deadline - Date.now()),
    });
    for (const connection of [...limits.idle]) connection.socket.destroy();
    for (const exchange of limits.exchanges) {
      if (!exchange.res.headersSent) exchange.res.setHeader('connection', 'close');
      exchange.res.once('close', () => draining?.exchangeAnswered(exchange));
    }
    if (limits.exchanges.size === 0) allAnswered();
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, Math.max(0, deadline - Date.now()));
    });
    await Promise.race([answered, timedOut]);
    clearTimeout(timer);
    const unfinished = limits.exchanges.size;
    const fields = { finished, cut: unfinished };
    // What is left: requests past the deadline, and connections that never sent a request.
    for (const connection of [...limits.connections]) connection.socket.destroy();
    server.closeAllConnections();
    await closed;
    if (unfinished > 0)
      logger.warn('closed: requests still in flight at the drain deadline were cut', fields);
    else logger.info('closed', fields);
  }

  let closing: Promise<void> | undefined;
  let acceptQueues: AcceptQueues | undefined;
  return {
    server,
    listen: (host, port, setting) =>
      listen(server, host, port, setting, async () => {
        acceptQueues = await listenWithAcceptQueues(server, host, port);
      }),
    close(options = {}) {
      closing ??= drain(options.deadline ?? Date.now() + settings.drainTimeoutSeconds * 1000);
      return closing;
    },
  };
}
