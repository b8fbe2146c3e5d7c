/**
 * The harness's HTTP client: node:http with keep-alive agents bound to a loopback source address
 * (`localAddress`), so each simulated machine has its own address and the servers' per-address
 * limits count it as a machine of its own. No fetch: 200 agents and thousands of attack sockets must
 * fit on two cores, and a slow body needs control over when each byte is written.
 */
import http from 'node:http';

export interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** A request that got no HTTP answer: refused, reset, timed out. `code` says which. */
export class ConnectionError extends Error {
  override name = 'ConnectionError';
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}

/**
 * A keep-alive agent from `localAddress`. Its `timeout` makes Node honour the server's
 * `Keep-Alive: timeout=N` hint (an idle socket is retired a second before the server closes it), as
 * real clients do; without one a request could be written onto a closing connection.
 */
export const keepAliveAgent = (localAddress: string, maxSockets = 2): http.Agent =>
  new http.Agent({ keepAlive: true, maxSockets, maxFreeSockets: maxSockets, localAddress, timeout: 60_000 });

export interface RequestInit {
  method?: string;
  headers?: Record<string, string>;
  body?: string;
  /** A keep-alive agent (carries the source address), or a source address for a fresh connection. */
  agent?: http.Agent;
  localAddress?: string;
  timeoutMs?: number;
}

const DEFAULT_TIMEOUT_MS = 30_000;

function connectionError(error: unknown): ConnectionError {
  if (error instanceof ConnectionError) return error;
  const code = (error as NodeJS.ErrnoException).code ?? 'EUNKNOWN';
  return new ConnectionError(code, (error as Error).message);
}

export function request(url: string | URL, init: RequestInit = {}): Promise<Answer> {
  const target = typeof url === 'string' ? new URL(url) : url;
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { ...init.headers };
    if (init.body !== undefined) headers['content-length'] = String(Buffer.byteLength(init.body));
    const req = http.request(
      {
        host: target.hostname,
        port: target.port,
        path: `${target.pathname}${target.search}`,
        method: init.method ?? (init.body === undefined ? 'GET' : 'POST'),
        headers,
        ...(init.agent ? { agent: init.agent } : { agent: false, localAddress: init.localAddress }),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString('utf8'),
          }),
        );
        res.on('error', (error) => reject(connectionError(error)));
      },
    );
    req.setTimeout(init.timeoutMs ?? DEFAULT_TIMEOUT_MS, () =>
      req.destroy(new ConnectionError('ETIMEDOUT', `no answer from ${target.href}`)),
    );
    req.on('error', (error) => reject(connectionError(error)));
    req.end(init.body);
  });
}

/** The result of a request as data: an answer, or the connection error it ended with. */
export type Outcome = { answer: Answer; error?: undefined } | { answer?: undefined; error: ConnectionError };

export const settle = (promise: Promise<Answer>): Promise<Outcome> =>
  promise.then(
    (answer) => ({ answer }),
    (error: unknown) => ({ error: connectionError(error) }),
  );

export interface SlowRequest {
  /** Resolves once the headers and the first part of the body are on the wire. */
  started: Promise<void>;
  /** Writes the rest of the body. */
  finish(): void;
  outcome: Promise<Outcome>;
}

/**
 * A request held in flight on purpose: its own connection, the headers and `heldBytes` of the body
 * sent at once, the rest only when `finish()` is called. The server has the request (its headers)
 * from the start, so it is in flight for as long as the test wants.
 */
export function slowRequest(
  url: string,
  init: { method?: string; headers?: Record<string, string>; body: string; localAddress: string },
  heldBytes = Math.floor(init.body.length / 2),
): SlowRequest {
  const target = new URL(url);
  const body = Buffer.from(init.body);
  let markStarted: () => void = () => {};
  const started = new Promise<void>((resolve) => {
    markStarted = resolve;
  });
  const req = http.request({
    host: target.hostname,
    port: target.port,
    path: `${target.pathname}${target.search}`,
    method: init.method ?? 'POST',
    headers: { ...init.headers, 'content-length': String(body.length) },
    agent: false,
    localAddress: init.localAddress,
  });
  const outcome = settle(
    new Promise<Answer>((resolve, reject) => {
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString('utf8'),
          }),
        );
        res.on('error', reject);
      });
      req.on('error', reject);
      req.setTimeout(60_000, () => req.destroy(new ConnectionError('ETIMEDOUT', `no answer from ${url}`)));
    }),
  );
  req.flushHeaders();
  req.write(body.subarray(0, heldBytes), () => markStarted());
  let finished = false;
  return {
    started,
    outcome,
    finish() {
      if (finished) return;
      finished = true;
      req.end(body.subarray(heldBytes));
    },
  };
}

/** A browser without a renderer, on one source address: a cookie jar and manual redirects. */
export class Browser {
  readonly cookies = new Map<string, string>();
  readonly agent: http.Agent;
  readonly address: string;

  constructor(address: string) {
    this.address = address;
    this.agent = keepAliveAgent(address, 2);
  }

  headers(extra: Record<string, string> = {}): Record<string, string> {
    const headers = { ...extra };
    if (this.cookies.size > 0)
      headers.cookie = [...this.cookies].map(([name, value]) => `${name}=${value}`).join('; ');
    return headers;
  }

  /** Keeps the cookies an answer sets (and drops the ones it expires). */
  keepCookies(answer: Answer): void {
    const setCookie = answer.headers['set-cookie'] ?? [];
    for (const cookie of setCookie) {
      const [pair, ...attributes] = cookie.split(';');
      const index = pair!.indexOf('=');
      const name = pair!.slice(0, index).trim();
      const value = pair!.slice(index + 1).trim();
      const expired = attributes.some((a) => /expires=thu, 01 jan 1970/i.test(a.trim())) || value === '';
      if (expired) this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
  }

  async request(url: string, init: { form?: Record<string, string> } = {}): Promise<BrowserAnswer> {
    const headers = this.headers(
      init.form ? { 'content-type': 'application/x-www-form-urlencoded', origin: new URL(url).origin } : {},
    );
    const answer = await request(url, {
      method: init.form ? 'POST' : 'GET',
      headers,
      agent: this.agent,
      ...(init.form ? { body: new URLSearchParams(init.form).toString() } : {}),
    });
    return this.received(url, answer);
  }

  /** Takes an answer got some other way (a slow request) as if this browser had received it. */
  received(url: string, answer: Answer): BrowserAnswer {
    this.keepCookies(answer);
    const location = answer.headers.location;
    return { ...answer, location: location ? new URL(location, url).href : undefined };
  }

  close(): void {
    this.agent.destroy();
  }
}

export interface BrowserAnswer extends Answer {
  location: string | undefined;
}
