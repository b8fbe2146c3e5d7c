/**
 * HTTP helpers shared by the components: listening with a clear message when a port is taken,
 * bounded request bodies, JSON answers and bearer tokens.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export class HttpError extends Error {
  readonly status: number;
  readonly headers: Record<string, string>;
  constructor(status: number, message: string, headers: Record<string, string> = {}) {
    super(message);
    this.status = status;
    this.headers = headers;
  }
}

/**
 * Listens on host:port and returns the real port; a taken port names the setting to change.
 * `bind` does the binding when given (http-server.ts binds several accept queues).
 */
export async function listen(
  server: Server,
  host: string,
  port: number,
  setting: string,
  bind?: () => Promise<void>,
): Promise<number> {
  try {
    await (bind?.() ??
      new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          resolve();
        });
      }));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EADDRINUSE') {
      throw new Error(
        `port ${port} on ${host} is already in use: stop what uses it, or set ${setting} in the configuration file`,
      );
    }
    throw error;
  }
  return (server.address() as AddressInfo).port;
}

/**
 * Closes a server and cuts every open connection at once (keep-alive included): for test and
 * benchmark stubs. Components close through src/shared/http-server.ts, which drains instead.
 */
export function close(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

/** Reads a request body, refusing more than `limit` bytes with 413. */
export function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > limit) return Promise.reject(new HttpError(413, `request body larger than ${limit} bytes`));
  // Events rather than `for await`: an async iterator per request costs more than the body's copy.
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        cleanup();
        req.pause();
        reject(new HttpError(413, `request body larger than ${limit} bytes`));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      cleanup();
      resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks));
    };
    const onError = (error: Error) => {
      cleanup();
      reject(error);
    };
    // The client went away before the end: the body will never be complete.
    const onClose = () => {
      if (!req.complete) onError(new Error('the request was aborted'));
    };
    const cleanup = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('close', onClose);
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('close', onClose);
  });
}

export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(text);
}

/** The bearer token of an `Authorization` header (RFC 6750 §2.1), or undefined. */
export function bearerToken(req: IncomingMessage): string | undefined {
  const header = req.headers.authorization;
  if (!header) return undefined;
  const match = /^Bearer[ ]+([A-Za-z0-9\-._~+/]+=*)$/i.exec(header.trim());
  return match?.[1];
}

/** A `WWW-Authenticate` challenge (RFC 9110 §11.6.1) for `scheme`; values are quoted and escaped. */
export function authChallenge(scheme: 'Bearer' | 'DPoP', params: Record<string, string | undefined>): string {
  const parts = Object.entries(params)
    .filter((entry): entry is [string, string] => entry[1] !== undefined)
    .map(([key, value]) => `${key}="${value.replace(/["\\]/g, '\\$&')}"`);
  return parts.length > 0 ? `${scheme} ${parts.join(', ')}` : scheme;
}

/** An RFC 6750 §3 `WWW-Authenticate: Bearer` value. */
export const bearerChallenge = (params: Record<string, string | undefined>) =>
  authChallenge('Bearer', params);
