/**
 * Network fixtures for the SSRF attacks: a trap that counts every TCP connection made to it (so a
 * test can prove the authorization server never connected, not only that it answered an error), a
 * small HTTP server for client metadata documents, and this machine's own special-use addresses
 * (a private or documentation address on an interface is where an SSRF would land inside a network).
 */
import {
  createServer,
  type Server as HttpServer,
  type IncomingMessage,
  type ServerResponse,
} from 'node:http';
import { createServer as createTcpServer, type Server, type Socket } from 'node:net';
import { networkInterfaces } from 'node:os';
import { isPublicAddress } from '../../../src/authorization-server/clients/special-use-address.ts';

export interface ConnectionTrap {
  port: number;
  /** The addresses it listens on (those of the wanted ones this machine has). */
  addresses: string[];
  /** Connections accepted so far, per listening address. */
  connections: Map<string, number>;
  total(): number;
  close(): Promise<void>;
}

function listenOn(server: Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port, ipv6Only: host.includes(':') }, () => {
      server.off('error', reject);
      resolve((server.address() as { port: number }).port);
    });
  });
}

/**
 * Listens on one port on every given address that this machine has (retrying with another port
 * when one is taken) and counts connections; each is closed at once. Nothing legitimate ever
 * connects to it. `addresses` of the result lists where it really listens.
 */
export async function startConnectionTrap(wanted: string[]): Promise<ConnectionTrap> {
  const connections = new Map<string, number>();
  for (let attempt = 0; attempt < 20; attempt += 1) {
    const servers: Server[] = [];
    const sockets = new Set<Socket>();
    const addresses: string[] = [];
    const make = (address: string) => {
      const server = createTcpServer((socket) => {
        connections.set(address, (connections.get(address) ?? 0) + 1);
        sockets.add(socket);
        socket.on('error', () => {});
        socket.destroy();
      });
      servers.push(server);
      return server;
    };
    const closeAll = () =>
      Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
    let port = 0;
    let taken = false;
    for (const address of wanted) {
      try {
        port = await listenOn(make(address), address, port);
        addresses.push(address);
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === 'EADDRINUSE') {
          taken = true;
          break;
        }
        // EADDRNOTAVAIL, EAFNOSUPPORT: this machine has no such address; leave it out.
      }
    }
    if (taken || addresses.length === 0) {
      await closeAll();
      if (addresses.length === 0 && !taken) throw new Error(`cannot listen on any of ${wanted.join(', ')}`);
      continue;
    }
    return {
      port,
      addresses,
      connections,
      total: () => [...connections.values()].reduce((sum, n) => sum + n, 0),
      close: async () => {
        for (const socket of sockets) socket.destroy();
        await closeAll();
      },
    };
  }
  throw new Error(`no common free port on ${wanted.join(', ')}`);
}

/**
 * Addresses of this machine's interfaces that are not public unicast (private, documentation,
 * unique-local): the "inside" an SSRF reaches. Loopback and link-local addresses are left out (link
 * local needs a zone to connect to).
 */
export function specialUseInterfaceAddresses(): { ipv4: string[]; ipv6: string[] } {
  const found = Object.values(networkInterfaces())
    .flat()
    .filter((entry) => entry !== undefined && !entry.internal)
    .map((entry) => entry!)
    .filter((entry) => !isPublicAddress(entry.address) && !entry.address.toLowerCase().startsWith('fe80'));
  return {
    ipv4: found.filter((entry) => entry.family === 'IPv4').map((entry) => entry.address),
    ipv6: found.filter((entry) => entry.family === 'IPv6').map((entry) => entry.address),
  };
}

type Handler = (request: IncomingMessage, response: ServerResponse) => void;

/** An HTTP server for client metadata documents on 127.0.0.1, counting requests per path. */
export interface DocumentServer {
  origin: string;
  url(path: string): string;
  route(path: string, handler: Handler): void;
  json(path: string, document: Record<string, unknown>): void;
  hits(path: string): number;
  /** Responses that were closed before they finished (the client hung up on us). */
  abandoned(path: string): number;
  /** Waits (up to `withinMs`) for a response to `path` to be abandoned; true when one was. */
  whenAbandoned(path: string, withinMs?: number): Promise<boolean>;
  close(): Promise<void>;
}

export async function startDocumentServer(): Promise<DocumentServer> {
  const routes = new Map<string, Handler>();
  const hits = new Map<string, number>();
  const abandoned = new Map<string, number>();
  const server: HttpServer = createServer((request, response) => {
    const path = new URL(request.url ?? '/', 'http://x').pathname;
    hits.set(path, (hits.get(path) ?? 0) + 1);
    response.on('close', () => {
      if (!response.writableFinished) abandoned.set(path, (abandoned.get(path) ?? 0) + 1);
    });
    const handler = routes.get(path);
    if (handler) handler(request, response);
    else response.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  const handle: DocumentServer = {
    origin,
    url: (path) => `${origin}${path}`,
    route: (path, handler) => routes.set(path, handler),
    json: (path, document) =>
      handle.route(path, (_request, response) => {
        response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(document));
      }),
    hits: (path) => hits.get(path) ?? 0,
    abandoned: (path) => abandoned.get(path) ?? 0,
    whenAbandoned: async (path, withinMs = 3000) => {
      // The hang-up reaches this server a moment after the authorization server has answered.
      const deadline = Date.now() + withinMs;
      while ((abandoned.get(path) ?? 0) === 0 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      return (abandoned.get(path) ?? 0) > 0;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
  return handle;
}
