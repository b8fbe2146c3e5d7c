/**
 * When a revocation stream goes quiet (no event, no heartbeat), is it merely quiet, or is it being
 * held back (a buffering proxy, a stalled peer) while revocations happen? The listener asks the
 * authorization server which event is the latest (`REVOCATION_LATEST_PATH`), on a request of its
 * own:
 * - the latest is the one the stream last delivered: nothing is held back, and the caches may go on
 *   trusting the stream as of when the question was asked;
 * - a newer one: the stream is behind; the listener drops it and reconnects (`Last-Event-ID`
 *   replays what was held back), and its owner fails safe meanwhile;
 * - no answer yet: the caches are trusted for `graceMs` more at most.
 *
 * So a stalled authorization server (a long garbage collection, a busy machine) does not make every
 * gateway and MCP server distrust their caches at once and flood it with introspections and token
 * exchanges the moment it comes back, while a stream held back is noticed within about a second.
 */

export interface StreamPosition {
  stream: string;
  id: number;
}

/** `<stream>:<id>`, as the stream's event ids say it (revocation/stream.ts). */
export function parseStreamPosition(eventId: string | undefined): StreamPosition | undefined {
  const match = /^([^:]+):(\d+)$/.exec(eventId ?? '');
  return match ? { stream: match[1]!, id: Number(match[2]) } : undefined;
}

export interface QuietCheckOptions {
  latestUrl: string;
  authorization: string;
  /** Where the stream is: the last event id it delivered. */
  position: () => StreamPosition | undefined;
  /** The stream is behind the authorization server: drop it and reconnect. */
  onBehind: () => void;
  timeoutMs: number;
}

export interface QuietCheck {
  /** Asks, unless a question is already under way. */
  ask(): void;
  /** Epoch ms as of which the stream was confirmed up to date by an answer (0: never). */
  readonly confirmedAt: number;
  /** Epoch ms when the question under way was asked, or undefined. */
  readonly askedAt: number | undefined;
}

export function createQuietCheck(options: QuietCheckOptions): QuietCheck {
  let confirmedAt = 0;
  let askedAt: number | undefined;

  async function question(started: number): Promise<void> {
    try {
      const response = await fetch(options.latestUrl, {
        headers: { authorization: options.authorization, accept: 'application/json' },
        signal: AbortSignal.timeout(options.timeoutMs),
        redirect: 'error',
      });
      if (response.status !== 200) {
        await response.body?.cancel();
        return;
      }
      const answer = (await response.json()) as { stream?: unknown; latest?: unknown };
      const here = options.position();
      if (here && answer.stream === here.stream && typeof answer.latest === 'number') {
        if (answer.latest <= here.id) confirmedAt = Math.max(confirmedAt, started);
        else options.onBehind();
      }
    } catch {
      // Unreachable or too slow: no confirmation, so the grace runs out by itself.
    } finally {
      askedAt = undefined;
    }
  }

  return {
    ask() {
      if (askedAt !== undefined) return;
      askedAt = Date.now();
      void question(askedAt);
    },
    get confirmedAt() {
      return confirmedAt;
    },
    get askedAt() {
      return askedAt;
    },
  };
}
