/**
 * The redirect target of a native app (RFC 8252 §7.3): a tiny HTTP server on 127.0.0.1 at a port
 * the system picks, that waits for the authorization response, answers the browser with a friendly
 * page, and closes.
 *
 * Only a response carrying the expected `state` is taken (RFC 6749 §10.12): anything else is answered
 * with an explanation and ignored, so a stray or forged request cannot end the wait. When the agent
 * replaces an expired sign-in link with a new request (expect()), the old state stops being taken at
 * once: its code was bound to a PKCE verifier the agent no longer holds, and one outstanding request
 * at a time is what the user can follow. The page never
 * repeats what the authorization server said (RFC 9207: until `iss` is checked it may come from an
 * attacker), and is sent with `Referrer-Policy: no-referrer` so the code cannot leak onwards.
 */
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { AgentError } from './errors.ts';

export const CALLBACK_PATH = '/callback';

export interface LoopbackCallback {
  /** `http://127.0.0.1:<port>/callback`: the redirect_uri of this authorization request. */
  redirectUri: string;
  /** The query parameters of the authorization response whose `state` matched. */
  response: Promise<URLSearchParams>;
  /** Takes only `state` from now on; the states expected before are refused as replaced. */
  expect(state: string): void;
  close(): Promise<void>;
}

const page = (title: string, message: string) => `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;color:#1f2328}
h1{font-size:1.4rem}p{line-height:1.5}</style></head>
<body><h1>${title}</h1><p>${message}</p></body></html>`;

function answer(res: ServerResponse, status: number, title: string, message: string) {
  res.writeHead(status, {
    'content-type': 'text/html; charset=utf-8',
    'cache-control': 'no-store',
    'referrer-policy': 'no-referrer',
    'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'",
    'x-frame-options': 'DENY',
  });
  res.end(page(title, message));
}

export async function startLoopbackCallback(options: {
  /** The state of the first request; none is taken until there is one (see expect()). */
  state?: string | undefined;
  timeoutMs: number;
  onRequest?: (url: URL) => void;
}): Promise<LoopbackCallback> {
  let settle!: { resolve: (params: URLSearchParams) => void; reject: (error: Error) => void };
  const response = new Promise<URLSearchParams>((resolve, reject) => {
    settle = { resolve, reject };
  });
  // A rejection nobody awaits yet (the caller may still be opening the browser) must not crash the process.
  response.catch(() => {});
  let expected = options.state;
  // Only to tell the user which page they are on; a replaced state is refused like any other.
  const replaced = new Set<string>();

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    if (url.pathname !== CALLBACK_PATH) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('Not found\n');
      return;
    }
    options.onRequest?.(url);
    if (req.method !== 'GET') {
      res.writeHead(405, { allow: 'GET' }).end();
      return;
    }
    const state = url.searchParams.get('state');
    if (state !== null && replaced.has(state)) {
      answer(
        res,
        400,
        'This sign-in link was replaced',
        'It waited too long, so the agent gave you a new sign-in link in the terminal. This sign-in was not used. Return to the terminal and open the newest link there.',
      );
      return;
    }
    if (expected === undefined || state !== expected) {
      answer(
        res,
        400,
        'Not the expected sign-in',
        'This response does not belong to the sign-in the agent is waiting for, so it was ignored. If you started a new sign-in, finish that one.',
      );
      return;
    }
    const failed = url.searchParams.has('error') || !url.searchParams.has('code');
    answer(
      res,
      failed ? 400 : 200,
      failed ? 'Sign-in did not complete' : 'Signed in',
      failed
        ? 'The authorization server did not grant access. Return to the terminal to see what happened.'
        : 'You can close this tab and return to the terminal.',
    );
    settle.resolve(url.searchParams);
    void close();
  });

  let closed = false;
  let timer: NodeJS.Timeout | undefined;
  const close = () =>
    new Promise<void>((resolve) => {
      if (closed) return resolve();
      closed = true;
      clearTimeout(timer);
      server.close(() => resolve());
      // Let the answer reach the browser, then drop idle keep-alive connections.
      setImmediate(() => server.closeIdleConnections());
    });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  timer = setTimeout(() => {
    settle.reject(
      new AgentError(
        'authorization',
        `no sign-in response arrived within ${Math.round(options.timeoutMs / 1000)} seconds`,
        'Open the sign-in link again (run the command again), or raise --timeout.',
      ),
    );
    void close();
  }, options.timeoutMs);
  timer.unref();

  const expect = (state: string) => {
    if (expected !== undefined && expected !== state) replaced.add(expected);
    expected = state;
  };

  return { redirectUri: `http://127.0.0.1:${port}${CALLBACK_PATH}`, response, expect, close };
}
