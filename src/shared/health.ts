/**
 * Liveness and readiness of a component, for load balancers and orchestrators:
 * - `GET /healthz`: 200 while the process serves requests at all;
 * - `GET /readyz`: 200 when it can do its job fully, 503 (with what is missing) when it is running
 *   in its safe, degraded mode: e.g. revocation announcements not heard, so caches are bounded.
 * Both say nothing secret: states and timestamps only. The gateway answers them publicly, so not
 * even how many revocations were heard (an outsider could watch activity by it).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { sendJson } from './http.ts';
import type { RevocationListenerStatus } from './revocation-listener.ts';

export const HEALTH_PATHS = new Set(['/healthz', '/readyz']);

/** One dependency's state in `/readyz`: `ok`, and details that say nothing secret. */
export interface Check {
  ok: boolean;
  [detail: string]: unknown;
}

/** The component's dependencies by name: ready when every one is ok. */
export type Readiness = Record<string, Check>;

/** The revocation channel as a readiness check (gateway, MCP server). */
export function revocationsCheck(revocations: RevocationListenerStatus): Check {
  return {
    ok: revocations.connected,
    connected: revocations.connected,
    since: new Date(revocations.since).toISOString(),
    ...(revocations.connected
      ? {}
      : { effect: 'caches are bounded until revocation announcements are heard again' }),
  };
}

/** Answers /healthz and /readyz; false for any other path. */
export function serveHealth(
  req: IncomingMessage,
  res: ServerResponse,
  path: string,
  readiness: () => Readiness | Promise<Readiness>,
): boolean {
  if (!HEALTH_PATHS.has(path) || (req.method !== 'GET' && req.method !== 'HEAD')) return false;
  if (path === '/healthz') {
    sendJson(res, 200, { status: 'ok' });
    return true;
  }
  Promise.resolve()
    .then(readiness)
    .then(
      (checks) => {
        const ready = Object.values(checks).every((check) => check.ok);
        sendJson(res, ready ? 200 : 503, { status: ready ? 'ready' : 'degraded', ...checks });
      },
      () => sendJson(res, 503, { status: 'degraded', error: 'the readiness checks failed' }),
    );
  return true;
}
