/**
 * Prometheus metrics of one component (`prom-client`), served at `GET /metrics` on the component's
 * own listener in the text exposition format.
 *
 * Each component has a registry of its own (several components may share one process: the
 * launcher, the tests), with the default process metrics (CPU, memory, event-loop lag, GC) and:
 * - `gatehouse_http_requests_total{route, status}` and `gatehouse_http_request_duration_seconds{route}`:
 *   every request the component answered, by a route name from a fixed set (never the raw path, so
 *   a scan of random paths cannot grow the series);
 * - the component's own counters and gauges (caches, denials, tokens, revocation channel), made
 *   with `counter` and `gauge`.
 *
 * Who may read them (`metrics` in the configuration): callers from `allowFrom` (loopback by
 * default) that did not come through a proxy, or callers with the bearer `token`. A request with
 * `Forwarded` or `X-Forwarded-For` came through a proxy, whose own address (often loopback) says
 * nothing of the caller's: it needs the token; so does every request to a component configured
 * behind a proxy (`trustProxy`), whose proxy may add no such header. Everyone else gets 403, never the numbers: they tell
 * how busy the service is and how many tokens are alive.
 */
import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import ipaddr from 'ipaddr.js';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { LoadedConfig } from './config/load.ts';
import { resolveSecret } from './config/secrets.ts';
import { sendJson } from './http.ts';
import type { Logger } from './logging.ts';

/** What `metrics` in the configuration resolves to (secrets resolved). */
export interface MetricsSettings {
  /** Addresses (CIDR ranges) that may read the metrics without a token. */
  allowFrom: readonly string[];
  /** A bearer token that lets any caller read them; undefined: none. */
  token: string | undefined;
  /**
   * The component is configured behind a reverse proxy (`trustProxy`): every request comes from the
   * proxy's address, and a proxy that adds no forwarding header (nginx's default, a TLS terminator)
   * would make the whole internet a loopback caller. Then only the token opens the metrics.
   */
  behindProxy?: boolean;
}

export const METRICS_PATH = '/metrics';

/** Latency buckets in seconds: a loopback hop takes well under a millisecond, a sign-in a few. */
const DURATION_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export interface Metrics {
  readonly registry: Registry;
  counter<L extends string>(name: string, help: string, labelNames?: readonly L[]): Counter<L>;
  gauge<L extends string>(
    name: string,
    help: string,
    options?: { labelNames?: readonly L[]; collect?: (gauge: Gauge<L>) => void | Promise<void> },
  ): Gauge<L>;
  /**
   * Wraps the component's request handler: answers `GET /metrics`, and counts and times every
   * other request under the route name `routeOf` gives it.
   */
  instrument(handler: RequestListener, routeOf: (req: IncomingMessage) => string): RequestListener;
  /**
   * The logger, with every audit line also counted in `gatehouse_audit_events_total{event, outcome}`
   * (tokens issued, sign-ins, consents, tool calls, ...): the security events as numbers.
   */
  countAudits(logger: Logger): Logger;
  /** `gatehouse_revocation_channel_connected` (gateway, MCP server), read when scraped. */
  revocationChannel(connected: () => boolean): void;
}

type Range = [ipaddr.IPv4 | ipaddr.IPv6, number];

function parseRanges(allowFrom: readonly string[]): Range[] {
  return allowFrom.map((cidr) => ipaddr.parseCIDR(cidr));
}

/** The socket's peer, as ipaddr understands it (IPv4-mapped IPv6 as IPv4). */
function peerOf(req: IncomingMessage): ipaddr.IPv4 | ipaddr.IPv6 | undefined {
  const address = req.socket.remoteAddress;
  if (!address || !ipaddr.isValid(address)) return undefined;
  const parsed = ipaddr.parse(address);
  return parsed.kind() === 'ipv6' && (parsed as ipaddr.IPv6).isIPv4MappedAddress()
    ? (parsed as ipaddr.IPv6).toIPv4Address()
    : parsed;
}

function inRanges(address: ipaddr.IPv4 | ipaddr.IPv6, ranges: readonly Range[]): boolean {
  return ranges.some(([range, bits]) => address.kind() === range.kind() && address.match(range, bits));
}

function bearerMatches(req: IncomingMessage, token: string | undefined): boolean {
  if (token === undefined) return false;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
  if (!match) return false;
  const given = Buffer.from(match[1]!);
  const expected = Buffer.from(token);
  return given.length === expected.length && timingSafeEqual(given, expected);
}

/** Whether this request may read the metrics (see the file comment). */
export function mayReadMetrics(req: IncomingMessage, settings: MetricsSettings, ranges: readonly Range[]) {
  if (bearerMatches(req, settings.token)) return true;
  if (settings.behindProxy) return false;
  if (req.headers.forwarded !== undefined || req.headers['x-forwarded-for'] !== undefined) return false;
  const peer = peerOf(req);
  return peer !== undefined && inRanges(peer, ranges);
}

export function createMetrics(component: string, settings: MetricsSettings): Metrics {
  const registry = new Registry();
  registry.setDefaultLabels({ component });
  collectDefaultMetrics({ register: registry, prefix: 'gatehouse_' });
  const ranges = parseRanges(settings.allowFrom);

  const requests = new Counter({
    name: 'gatehouse_http_requests_total',
    help: 'Requests answered, by route and status code.',
    labelNames: ['route', 'status'] as const,
    registers: [registry],
  });
  const durations = new Histogram({
    name: 'gatehouse_http_request_duration_seconds',
    help: 'Time from a request arriving to its answer being sent, by route.',
    labelNames: ['route'] as const,
    buckets: DURATION_BUCKETS,
    registers: [registry],
  });

  const audits = new Counter({
    name: 'gatehouse_audit_events_total',
    help: 'Security events (the audit log lines), by event and outcome (success, failure, denied).',
    labelNames: ['event', 'outcome'] as const,
    registers: [registry],
  });
  const countAudits = (logger: Logger): Logger => ({
    ...logger,
    audit(event, fields) {
      audits.inc({ event, outcome: fields.outcome });
      logger.audit(event, fields);
    },
    child: (fields) => countAudits(logger.child(fields)),
  });

  async function serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      sendJson(
        res,
        405,
        { error: 'method_not_allowed', error_description: 'use GET' },
        { allow: 'GET, HEAD' },
      );
      return;
    }
    if (!mayReadMetrics(req, settings, ranges)) {
      sendJson(res, 403, {
        error: 'forbidden',
        error_description:
          'metrics are for the addresses in metrics.allowFrom (not through a proxy) or callers with metrics.token',
      });
      return;
    }
    const body = await registry.metrics();
    res.writeHead(200, { 'content-type': registry.contentType, 'cache-control': 'no-store' });
    res.end(req.method === 'HEAD' ? undefined : body);
  }

  return {
    registry,
    countAudits,
    revocationChannel(connected) {
      new Gauge({
        name: 'gatehouse_revocation_channel_connected',
        help: "1 while the authorization server's revocation announcements are heard; 0 while caches are bounded instead.",
        registers: [registry],
        collect() {
          this.set(connected() ? 1 : 0);
        },
      });
    },
    counter: (name, help, labelNames = []) => new Counter({ name, help, labelNames, registers: [registry] }),
    gauge: (name, help, options = {}) =>
      new Gauge({
        name,
        help,
        labelNames: options.labelNames ?? [],
        registers: [registry],
        ...(options.collect
          ? {
              collect() {
                return options.collect!(this);
              },
            }
          : {}),
      }),
    instrument(handler, routeOf) {
      return (req, res) => {
        const path = (req.url ?? '').split('?', 1)[0];
        if (path === METRICS_PATH) {
          serve(req, res).catch(() => {
            if (!res.headersSent) sendJson(res, 500, { error: 'server_error' });
            else res.destroy();
          });
          return;
        }
        const started = performance.now();
        const route = routeOf(req);
        res.once('close', () => {
          // A request the client gave up on is counted under status 0: it got no answer.
          const status = res.writableFinished ? String(res.statusCode) : '0';
          requests.inc({ route, status });
          durations.observe({ route }, (performance.now() - started) / 1000);
        });
        handler(req, res);
      };
    },
  };
}

/** The component's metrics, with `metrics` from the configuration (its token resolved). */
export function componentMetrics(component: string, loaded: LoadedConfig): Metrics {
  const { allowFrom, token } = loaded.config.metrics;
  const behindProxy =
    component === 'authorization-server'
      ? loaded.config.authorizationServer.trustProxy
      : component === 'gateway'
        ? loaded.config.gateway.trustProxy
        : false;
  return createMetrics(component, {
    allowFrom,
    token: token === undefined ? undefined : resolveSecret(token, loaded.dataDir),
    behindProxy,
  });
}
