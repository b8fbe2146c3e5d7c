/**
 * Listens to the authorization server's revocation stream (revocation-events.ts) on behalf of a
 * gateway or MCP server instance, and tells it what to drop.
 *
 * - Connected: each `revoked` event is handed to `onEvent` as it arrives; the stream's event ids are
 *   remembered so a reconnection asks to replay what was missed (`Last-Event-ID`). When the server
 *   cannot replay (it restarted on another database, or too much was missed) it says `reset`, and
 *   `onReset` must drop everything.
 * - Heard lately (`hearing()`): something arrived within `REVOCATION_FRESH_MS` (a heartbeat comes
 *   every half second), or, when the stream went quiet, the authorization server confirmed that
 *   nothing newer exists (revocation-quiet-check.ts). Owners reuse cached answers only while it is
 *   true, so a stream that stalls with its connection up holds a revocation back for about a
 *   second, and three at most when nothing answers at all.
 * - Disconnected (refused, unreachable, or silent for `REVOCATION_SILENCE_MS`): `onStatus(false)`,
 *   and the owner fails safe (bounds or drops its caches) until `onStatus(true)`. It reconnects by
 *   itself, with a bounded backoff, and logs the change both ways (never the credentials).
 * The stream is authenticated with the instance's own client credentials (client_secret_basic).
 */
import { createParser } from 'eventsource-parser';
import type { Logger } from './logging.ts';
import {
  parseRevocationEvent,
  REVOCATION_EVENTS_PATH,
  REVOCATION_FRESH_MS,
  REVOCATION_LATEST_PATH,
  REVOCATION_SILENCE_MS,
  type RevocationEvent,
} from './revocation-events.ts';
import { createQuietCheck, parseStreamPosition } from './revocation-quiet-check.ts';

export interface RevocationListenerOptions {
  /** The authorization server's base URL, as this component reaches it. */
  authorizationServerUrl: string;
  clientId: string;
  clientSecret: string;
  logger: Logger;
  onEvent: (event: RevocationEvent) => void;
  /** Everything may have been missed: drop every cache entry. */
  onReset: () => void;
  /** Whether revocations are being heard; false means: fail safe. */
  onStatus: (connected: boolean) => void;
  /** What the server said with `ready` (e.g. the key of the token tags); ignored when unreadable. */
  onReady?: (info: Record<string, unknown>) => void;
  /** Longest silence before the stream is taken as dead and reconnected (default 10 s). */
  silenceMs?: number;
  /** Longest silence for which `hearing()` stays true (default 1.5 s, three heartbeats). */
  freshMs?: number;
  /** Silence after which the authorization server is asked for the latest event (default 1 s). */
  askAfterMs?: number;
  /** How much longer an unanswered question keeps `hearing()` true (default 1.5 s). */
  askGraceMs?: number;
  /** Upper bound of the reconnection backoff (default 5 s). */
  maxBackoffMs?: number;
}

export interface RevocationListenerStatus {
  connected: boolean;
  /** Epoch milliseconds of the last change of `connected`. */
  since: number;
  events: number;
}

export interface RevocationListener {
  start(): void;
  stop(): Promise<void>;
  status(): RevocationListenerStatus;
  /** Connected, and something (an event or a heartbeat) arrived within `freshMs`. */
  hearing(): boolean;
}

/** RFC 6749 §2.3.1: id and secret form-encoded, joined, base64. */
function basic(clientId: string, secret: string): string {
  const encode = (value: string) => encodeURIComponent(value).replace(/%20/g, '+');
  return `Basic ${Buffer.from(`${encode(clientId)}:${encode(secret)}`).toString('base64')}`;
}

export function createRevocationListener(options: RevocationListenerOptions): RevocationListener {
  const url = `${options.authorizationServerUrl.replace(/\/$/, '')}${REVOCATION_EVENTS_PATH}`;
  const authorization = basic(options.clientId, options.clientSecret);
  const silenceMs = options.silenceMs ?? REVOCATION_SILENCE_MS;
  const freshMs = options.freshMs ?? REVOCATION_FRESH_MS;
  const askAfterMs = options.askAfterMs ?? 1000;
  const askGraceMs = options.askGraceMs ?? 1500;
  let lastHeard = 0;
  let behind = false;
  let ticker: NodeJS.Timeout | undefined;
  const maxBackoffMs = options.maxBackoffMs ?? 5000;
  const { logger } = options;
  let connected = false;
  let since = Date.now();
  let events = 0;
  let lastEventId: string | undefined;
  let stopped = false;
  let abort: AbortController | undefined;
  let running: Promise<void> | undefined;
  let failures = 0;

  const quiet = createQuietCheck({
    latestUrl: `${options.authorizationServerUrl.replace(/\/$/, '')}${REVOCATION_LATEST_PATH}`,
    authorization,
    position: () => parseStreamPosition(lastEventId),
    onBehind: () => {
      if (!connected || behind) return;
      behind = true;
      logger.warn('the revocation stream is behind the authorization server: reconnecting', { url });
      abort?.abort(new Error('behind'));
    },
    timeoutMs: askGraceMs,
  });
  const askWhenQuiet = () => {
    if (connected && Date.now() - lastHeard >= askAfterMs) quiet.ask();
  };

  const setConnected = (value: boolean, reason?: string) => {
    if (connected === value) return;
    connected = value;
    since = Date.now();
    if (value) logger.info('revocation events connected: caches follow revocations at once', { url });
    else {
      logger.warn('revocation events unavailable: caches are bounded until they are back', { url, reason });
    }
    options.onStatus(value);
  };

  /** One connection, until it ends; resolves when it does, whatever the reason. */
  async function connectOnce(): Promise<void> {
    abort = new AbortController();
    const controller = abort;
    let watchdog: NodeJS.Timeout | undefined;
    const feedWatchdog = () => {
      clearTimeout(watchdog);
      watchdog = setTimeout(() => controller.abort(new Error('silent')), silenceMs);
    };
    try {
      feedWatchdog();
      const response = await fetch(url, {
        headers: {
          authorization,
          accept: 'text/event-stream',
          ...(lastEventId ? { 'last-event-id': lastEventId } : {}),
        },
        signal: controller.signal,
        redirect: 'error',
      });
      if (response.status === 401 || response.status === 403) {
        logger.error(
          "the authorization server refused this component's credentials for revocation events: check its client id and secret",
          { url, status: response.status, client_id: options.clientId },
        );
        await response.body?.cancel();
        return;
      }
      if (response.status !== 200 || !response.body) {
        await response.body?.cancel();
        setConnected(false, `HTTP ${response.status}`);
        return;
      }
      const parser = createParser({
        onEvent(message) {
          if (message.id) lastEventId = message.id;
          if (message.event === 'reset') {
            options.onReset();
          } else if (message.event === 'ready') {
            failures = 0;
            behind = false;
            try {
              const info = JSON.parse(message.data) as unknown;
              if (info && typeof info === 'object' && !Array.isArray(info)) {
                options.onReady?.(info as Record<string, unknown>);
              }
            } catch {
              // An old server says `{}` or nothing: there is simply nothing to learn.
            }
            setConnected(true);
          } else if (message.event === 'revoked') {
            const event = parseRevocationEvent(message.data);
            if (event) {
              events += 1;
              options.onEvent(event);
            } else {
              logger.warn('revocation event not understood: dropping every cache entry to be safe');
              options.onReset();
            }
          }
        },
      });
      const decoder = new TextDecoder();
      for await (const chunk of response.body) {
        lastHeard = Date.now();
        feedWatchdog();
        parser.feed(decoder.decode(chunk as Uint8Array, { stream: true }));
      }
      setConnected(false, 'the stream ended');
    } catch {
      // The watchdog aborts with its own reason, which is what fetch then throws.
      if (!stopped) {
        setConnected(
          false,
          controller.signal.aborted ? String((controller.signal.reason as Error)?.message) : 'unreachable',
        );
      }
    } finally {
      clearTimeout(watchdog);
    }
  }

  async function loop(): Promise<void> {
    while (!stopped) {
      await connectOnce();
      if (stopped) break;
      failures += 1;
      // Ask again soon: revocations are being missed meanwhile (the caches are bounded).
      const delay = Math.min(maxBackoffMs, 250 * 2 ** Math.min(failures, 5));
      await new Promise((resolve) => setTimeout(resolve, delay).unref());
    }
  }

  return {
    start() {
      if (running) return;
      // Until the first `ready`, revocations are not heard: the owner starts in its safe mode.
      options.onStatus(false);
      ticker = setInterval(askWhenQuiet, Math.max(50, Math.floor(askAfterMs / 4)));
      ticker.unref();
      running = loop();
    },
    async stop() {
      stopped = true;
      clearInterval(ticker);
      abort?.abort(new Error('stopped'));
      await running;
    },
    status: () => ({ connected, since, events }),
    hearing: () => {
      if (!connected || behind) return false;
      const unconfirmed = Date.now() - Math.max(lastHeard, quiet.confirmedAt);
      // A question under way extends the trust once, by its grace: never past freshMs + askGraceMs.
      return unconfirmed <= freshMs || (quiet.askedAt !== undefined && unconfirmed <= freshMs + askGraceMs);
    },
  };
}
