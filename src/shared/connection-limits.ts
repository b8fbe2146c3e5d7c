/**
 * Connection caps that keep serving legitimate clients while slow ones hold connections.
 *
 * Each accepted connection counts against three caps: its client address on this listener
 * (`http.maxConnectionsPerAddress`, an IPv6 client counting as its /64, since one host gets a whole
 * /64), the listener (`http.maxConnections`), and the process (half its open-file limit, shared by
 * every listener in it, so accept() never fails with EMFILE). When a new connection would exceed a
 * cap, the connection within that cap that costs the least to drop is closed instead, in order:
 *
 *   1. the oldest that has not yet sent a complete request (headers pending: what slowloris holds);
 *   2. the oldest idle keep-alive connection (its client reconnects when it needs to, RFC 9112 §9.6);
 *   3. the oldest request whose body is still incomplete `slowBodyMs` after its headers arrived.
 *
 * Only when none of these exists (every connection is a request being answered) is the new
 * connection refused. A client that sends its request at once is therefore served even while
 * thousands of slow connections are held, from its own address too: it is never the oldest.
 *
 * Within the listener's and the process's caps, busy addresses (more than `FEW_CONNECTIONS` on
 * the listener) are evicted from first, the busiest first, each giving up its cheapest connection:
 * headers pending, then an incomplete body of any age, then idle keep-alive. Only when no busy
 * address has one does the order above apply to everyone. An attacker holding hundreds of
 * connections from a few addresses and reconnecting as fast as it is evicted would otherwise make
 * "oldest" mean milliseconds (the server accepts a whole batch of connections before it reads any of
 * them, so a client whose request is already in the socket buffer would be evicted with the batch),
 * and could fill every slot with slow bodies too young to evict, leaving a client nothing but
 * refusal. (A cap of one address evicts within that address.)
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import ipaddr from 'ipaddr.js';
import { openFileLimit, processConnectionBudget } from './open-file-limit.ts';

export type EvictionReason = 'headers_pending' | 'idle' | 'slow_body';
/** Which cap was reached: the client address's, the listener's or the whole process's. */
export type CapScope = 'address' | 'listener' | 'process';

/** One request received on a connection and not yet answered. */
export interface Exchange {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly connection: Connection;
  /** performance.now() when its headers had arrived. */
  readonly started: number;
}

export interface Connection {
  readonly socket: Socket;
  /** What the per-address cap counts: an IPv4 address, or the /64 of an IPv6 one. */
  readonly address: string;
  /** Requests received on it so far. */
  requests: number;
  readonly exchanges: Set<Exchange>;
  readonly pools: readonly Pool[];
}

/** The connections counted against one cap, kept in the orders eviction needs (oldest first). */
interface Pool {
  readonly scope: CapScope;
  readonly cap: number;
  /** In accept order. */
  readonly connections: Set<Connection>;
  /** Accepted, no request yet; in accept order. */
  readonly awaitingRequest: Set<Connection>;
  /** Answered everything it asked, kept open for the next request; in the order they fell idle. */
  readonly idle: Set<Connection>;
  /** Requests being answered, in the order their headers arrived. */
  readonly exchanges: Set<Exchange>;
}

const createPool = (scope: CapScope, cap: number): Pool => ({
  scope,
  cap,
  connections: new Set(),
  awaitingRequest: new Set(),
  idle: new Set(),
  exchanges: new Set(),
});

let processPool: Pool | undefined;
/** The pool every listener of this process shares: file descriptors are a per-process resource. */
function sharedProcessPool(): Pool {
  processPool ??= createPool('process', processConnectionBudget(openFileLimit()));
  return processPool;
}

/** The per-address key of a peer: IPv4-mapped IPv6 as IPv4, other IPv6 addresses by their /64. */
export function addressKey(remoteAddress: string | undefined): string {
  if (!remoteAddress || !ipaddr.isValid(remoteAddress)) return 'unknown';
  const parsed = ipaddr.process(remoteAddress);
  if (parsed.kind() === 'ipv4') return parsed.toString();
  const parts = (parsed as ipaddr.IPv6).parts.slice(0, 4).map((part) => part.toString(16));
  return `${parts.join(':')}::/64`;
}

export interface ConnectionLimitsOptions {
  maxConnections: number;
  maxConnectionsPerAddress: number;
  /** A request whose body is still incomplete this long after its headers may be evicted (tier 3). */
  slowBodyMs: number;
  onEvicted?: (connection: Connection, reason: EvictionReason, scope: CapScope) => void;
}

export interface ConnectionLimits {
  /** The listener's cap after the process's share of the open-file limit is applied. */
  readonly maxConnections: number;
  /** Counts a new connection, evicting another to make room; false when it must be refused. */
  admit(socket: Socket): { admitted: true } | { admitted: false; scope: CapScope };
  /** Records a request on an admitted connection; undefined when the connection was not admitted. */
  requestReceived(req: IncomingMessage, res: ServerResponse): Exchange | undefined;
  /** Open connections of this listener, oldest first. */
  readonly connections: ReadonlySet<Connection>;
  /** Idle keep-alive connections of this listener. */
  readonly idle: ReadonlySet<Connection>;
  /** Requests being answered by this listener. */
  readonly exchanges: ReadonlySet<Exchange>;
}

/** An address holding at most this many connections on a listener is evicted from last. */
export const FEW_CONNECTIONS = 4;
/** How many of a busy address's requests are searched for an incomplete body: bounds an eviction's cost. */
const SCAN_LIMIT = 256;

const first = <T>(set: ReadonlySet<T>): T | undefined => set.values().next().value;

export function createConnectionLimits(options: ConnectionLimitsOptions): ConnectionLimits {
  const processWide = sharedProcessPool();
  const listener = createPool('listener', Math.min(options.maxConnections, processWide.cap));
  const byAddress = new Map<string, Pool>();
  const bySocket = new Map<Socket, Connection>();
  /** The address pools holding more than FEW_CONNECTIONS connections. */
  const busyAddresses = new Set<Pool>();

  function forget(connection: Connection): void {
    if (bySocket.get(connection.socket) !== connection) return;
    bySocket.delete(connection.socket);
    for (const pool of connection.pools) {
      pool.connections.delete(connection);
      pool.awaitingRequest.delete(connection);
      pool.idle.delete(connection);
      for (const exchange of connection.exchanges) pool.exchanges.delete(exchange);
    }
    const address = connection.pools[0]!;
    if (address.connections.size <= FEW_CONNECTIONS) busyAddresses.delete(address);
    if (address.connections.size === 0 && byAddress.get(connection.address) === address) {
      byAddress.delete(connection.address);
    }
  }

  type Victim = { connection: Connection; reason: EvictionReason };

  /**
   * The cheapest connection of one busy address: headers pending, then an incomplete body of any
   * age (what a slow client holds), then idle keep-alive (an internal service's pooled connections
   * are idle, and a request written onto one as it is closed fails: taken last).
   */
  function slowClientVictim(address: Pool): Victim | undefined {
    const waiting = first(address.awaitingRequest);
    if (waiting) return { connection: waiting, reason: 'headers_pending' };
    let scanned = 0;
    for (const exchange of address.exchanges) {
      if (++scanned > SCAN_LIMIT) break;
      if (!exchange.req.complete) return { connection: exchange.connection, reason: 'slow_body' };
    }
    const idle = first(address.idle);
    if (idle) return { connection: idle, reason: 'idle' };
    return undefined;
  }

  /** A connection of the busiest address that has one to give. */
  function busyVictim(): Victim | undefined {
    const busiestFirst = [...busyAddresses].sort((a, b) => b.connections.size - a.connections.size);
    for (const address of busiestFirst) {
      const victim = slowClientVictim(address);
      if (victim) return victim;
    }
    return undefined;
  }

  /** The oldest connection in the order of the top of this file. */
  function oldestVictim(pool: Pool): Victim | undefined {
    const waiting = first(pool.awaitingRequest);
    if (waiting) return { connection: waiting, reason: 'headers_pending' };
    const idle = first(pool.idle);
    if (idle) return { connection: idle, reason: 'idle' };
    const startedBefore = performance.now() - options.slowBodyMs;
    for (const exchange of pool.exchanges) {
      // In arrival order: once one is too young, all after it are.
      if (exchange.started > startedBefore) break;
      if (!exchange.req.complete) return { connection: exchange.connection, reason: 'slow_body' };
    }
    return undefined;
  }

  function victimIn(pool: Pool): Victim | undefined {
    // A cap of one address evicts within that address.
    if (pool.scope === 'address') return oldestVictim(pool);
    return busyVictim() ?? oldestVictim(pool);
  }

  function admit(socket: Socket): { admitted: true } | { admitted: false; scope: CapScope } {
    const address = addressKey(socket.remoteAddress);
    const ofAddress = byAddress.get(address) ?? createPool('address', options.maxConnectionsPerAddress);
    for (const pool of [ofAddress, listener, processWide]) {
      if (pool.connections.size < pool.cap) continue;
      const victim = victimIn(pool);
      if (!victim) return { admitted: false, scope: pool.scope };
      forget(victim.connection);
      victim.connection.socket.destroy();
      options.onEvicted?.(victim.connection, victim.reason, pool.scope);
    }
    byAddress.set(address, ofAddress);
    const connection: Connection = {
      socket,
      address,
      requests: 0,
      exchanges: new Set(),
      pools: [ofAddress, listener, processWide],
    };
    bySocket.set(socket, connection);
    for (const pool of connection.pools) {
      pool.connections.add(connection);
      pool.awaitingRequest.add(connection);
    }
    if (ofAddress.connections.size > FEW_CONNECTIONS) busyAddresses.add(ofAddress);
    socket.once('close', () => forget(connection));
    return { admitted: true };
  }

  function answered(exchange: Exchange): void {
    const { connection } = exchange;
    connection.exchanges.delete(exchange);
    for (const pool of connection.pools) pool.exchanges.delete(exchange);
    const open = bySocket.get(connection.socket) === connection && !connection.socket.destroyed;
    if (open && connection.exchanges.size === 0) {
      for (const pool of connection.pools) pool.idle.add(connection);
    }
  }

  function requestReceived(req: IncomingMessage, res: ServerResponse): Exchange | undefined {
    // Behind TLS, req.socket is the TLSSocket that node:tls wraps around the TCP socket the server
    // accepted (and admit() counted); it keeps that one as `_parent` (lib/_tls_wrap.js).
    const socket = req.socket as Socket & { _parent?: Socket };
    const connection = bySocket.get(socket) ?? (socket._parent ? bySocket.get(socket._parent) : undefined);
    if (!connection) return undefined;
    const exchange: Exchange = { req, res, connection, started: performance.now() };
    connection.requests += 1;
    connection.exchanges.add(exchange);
    for (const pool of connection.pools) {
      pool.awaitingRequest.delete(connection);
      pool.idle.delete(connection);
      pool.exchanges.add(exchange);
    }
    // 'close' comes for every response: finished, or cut because the connection went away.
    res.once('close', () => answered(exchange));
    return exchange;
  }

  return {
    maxConnections: listener.cap,
    admit,
    requestReceived,
    connections: listener.connections,
    idle: listener.idle,
    exchanges: listener.exchanges,
  };
}
