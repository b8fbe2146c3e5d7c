/**
 * The keep-alive connection pools the gateway proxies through, one per scheme.
 *
 * An upstream closes a keep-alive connection after its idle timeout (Node's default: 5 s, announced
 * as `Keep-Alive: timeout=5`). A request written onto such a connection just as the upstream closes
 * it is reset before any answer (ECONNRESET), and the gateway could only answer 502. So idle sockets
 * are retired well before: after `IDLE_TIMEOUT_MS`, and never later than a second before the timeout
 * the upstream announced (Node's agent honours that hint only when it has a `timeout` of its own).
 * The margin is wide on purpose: under load an event loop can stall for seconds (the load tests saw
 * 2 s), and a stalled gateway may write onto a socket whose close it has not yet processed. A socket
 * reopened to an upstream on the same network costs a handshake. Requests in flight have their own
 * time limits, in proxy.ts.
 */
import http from 'node:http';
import https from 'node:https';

/** How long an idle upstream connection is kept for reuse. */
export const IDLE_TIMEOUT_MS = 2000;

export interface UpstreamAgents {
  http: http.Agent;
  https: https.Agent;
}

export function createUpstreamAgents(idleTimeoutMs = IDLE_TIMEOUT_MS): UpstreamAgents {
  const options = { keepAlive: true, timeout: idleTimeoutMs };
  return { http: new http.Agent(options), https: new https.Agent(options) };
}
