/**
 * The keep-alive connection pools the gateway proxies through, one per scheme.
 *
 * An upstream closes a keep-alive connection after its idle timeout (Node's default: 5 s, announced
 * as `Keep-Alive: timeout=5`). A request written onto such a connection just as the upstream closes
 * it is reset before any answer (ECONNRESET), and the gateway could only answer 502. Node's agent
 * retires an idle socket a second before the announced timeout, but only when the agent itself has a
 * `timeout`; without one it ignores the hint and keeps idle sockets until the upstream closes them.
 * So the agents get one: an idle socket lives at most `idleTimeoutMs`, and never into the upstream's
 * announced timeout. (Requests in flight have their own time limits, in proxy.ts.)
 */
import http from 'node:http';
import https from 'node:https';

export interface UpstreamAgents {
  http: http.Agent;
  https: https.Agent;
}

export function createUpstreamAgents(idleTimeoutMs: number): UpstreamAgents {
  const options = { keepAlive: true, timeout: idleTimeoutMs };
  return { http: new http.Agent(options), https: new https.Agent(options) };
}
