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

export interface Readiness {
  revocations: RevocationListenerStatus;
}

/** Answers /healthz and /readyz; false for any other path. */
export function serveHealth(
  req: IncomingMessage,
  res: ServerResponse,
  path: string,
  readiness: () => Readiness,
): boolean {
  if (!HEALTH_PATHS.has(path) || (req.method !== 'GET' && req.method !== 'HEAD')) return false;
  if (path === '/healthz') {
    sendJson(res, 200, { status: 'ok' });
    return true;
  }
  const { revocations } = readiness();
  const ready = revocations.connected;
  sendJson(res, ready ? 200 : 503, {
    status: ready ? 'ready' : 'degraded',
    revocations: {
      connected: revocations.connected,
      since: new Date(revocations.since).toISOString(),
      ...(ready ? {} : { effect: 'caches are bounded until revocation announcements are heard again' }),
    },
  });
  return true;
}
