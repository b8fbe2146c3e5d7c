/**
 * Shared pieces of the third-party client journeys: a fetch that records every HTTP exchange an SDK
 * makes (so the tests can say what the SDK did at each step), the user who answers the browser
 * redirects an SDK asks for, readers for tool results and the consent page, and an https server for
 * a client ID metadata document.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { getCACertificates, setDefaultCACertificates } from 'node:tls';
import { Browser, type PlayedUser, playUser } from '../helpers/oauth.ts';
import { freePort } from '../helpers/stack.ts';

export interface Exchange {
  method: string;
  url: URL;
  status: number;
  /** Request headers, lower-case names. */
  requestHeaders: Record<string, string>;
  /** The request body when it was a string or form (registration and token requests). */
  requestBody?: string;
  /** `WWW-Authenticate` of the response, when there was one. */
  challenge?: string;
}

/** A `fetch` that records each request and its answer, for the SDK's transport and its OAuth calls. */
export function recordingFetch() {
  const exchanges: Exchange[] = [];
  const fetchImpl = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const request = new Request(input, init);
    const requestBody =
      typeof init?.body === 'string'
        ? init.body
        : init?.body instanceof URLSearchParams
          ? init.body.toString()
          : undefined;
    const response = await fetch(input, init);
    const requestHeaders: Record<string, string> = {};
    request.headers.forEach((value, name) => {
      requestHeaders[name] = value;
    });
    exchanges.push({
      method: request.method,
      url: new URL(request.url),
      status: response.status,
      requestHeaders,
      ...(requestBody === undefined ? {} : { requestBody }),
      ...(response.headers.has('www-authenticate')
        ? { challenge: response.headers.get('www-authenticate')! }
        : {}),
    });
    return response;
  };
  return { fetch: fetchImpl, exchanges };
}

/** Paths of the exchanges, in order, as `METHOD path status`, for failure messages. */
export const describeExchanges = (exchanges: Exchange[]) =>
  exchanges.map((e) => `${e.method} ${e.url.origin}${e.url.pathname} ${e.status}`).join('\n');

/** A loopback redirect URI on a port nobody listens on: the test user stops at the redirect. */
export async function loopbackRedirectUri(): Promise<string> {
  return `http://127.0.0.1:${await freePort()}/callback`;
}

/**
 * The person in front of the browser: every authorization URL an SDK "opens" is recorded and played
 * through login and consent with one browser (so the second visit reuses the sign-in session, as a
 * real browser would). The callback of the latest visit is kept for the host to hand to finishAuth.
 */
export class User {
  readonly browser = new Browser();
  readonly visits: Array<{ url: URL; played: PlayedUser }> = [];
  readonly email: string;
  constructor(email = 'alice@example.com') {
    this.email = email;
  }

  async open(url: URL): Promise<void> {
    const played = await playUser(url.href, { browser: this.browser, email: this.email });
    this.visits.push({ url, played });
  }

  /** The callback of the latest visit (the redirect back to the client, with code, state and iss). */
  get callback(): URL {
    const last = this.visits.at(-1);
    if (!last) throw new Error('the user was never sent to the authorization server');
    return last.played.callback;
  }
}

/** The scopes the consent page asks for (new) and lists as already allowed. */
export function consentScopes(html: string | undefined): { requested: string[]; granted: string[] } {
  const list = (className: string) => {
    const match = new RegExp(`<ul class="scopes ${className}">([\\s\\S]*?)</ul>`).exec(html ?? '');
    return [...(match?.[1] ?? '').matchAll(/<code>([^<]+)<\/code>/g)].map((m) => m[1]!);
  };
  return { requested: list('requested'), granted: list('granted') };
}

export const scopesOf = (value: string | null | undefined) =>
  new Set((value ?? '').split(' ').filter(Boolean));

/** The text of a tool result. */
export const textOf = (result: object) =>
  (((result as { content?: unknown }).content as Array<{ type: string; text?: string }> | undefined) ?? [])
    .map((c) => c.text ?? '')
    .join('');

export interface Stock {
  symbol: string;
  region: string;
}

export const stocksOf = (result: object) => (JSON.parse(textOf(result)) as { stocks: Stock[] }).stocks;

export interface Order {
  status: string;
  client: string;
  symbol: string;
  side: string;
  quantity: number;
}

export const orderOf = (result: object) => JSON.parse(textOf(result)) as Order;

/** The `key="value"` parameters of a Bearer challenge. */
export function challengeParams(header: string | undefined): Record<string, string> {
  const params: Record<string, string> = {};
  for (const match of (header ?? '').matchAll(/([a-z_]+)="([^"]*)"/g)) params[match[1]!] = match[2]!;
  return params;
}

export interface MetadataDocumentServer {
  /** The https URL of the document, the client_id. */
  url: string;
  redirectUri: string;
  close(): Promise<void>;
}

/**
 * Serves a client ID metadata document over https on loopback. Both SDK generations only use a
 * `clientMetadataUrl` that is https (http is refused with invalid_client_metadata, even on loopback),
 * so the document gets a throwaway certificate that this process, where the authorization server
 * runs, is told to trust. Returns a reason instead when openssl is not there to make one.
 */
export async function serveMetadataDocument(clientName: string): Promise<MetadataDocumentServer | string> {
  const dir = mkdtempSync(path.join(tmpdir(), 'gatehouse-cimd-tls-'));
  const keyFile = path.join(dir, 'key.pem');
  const certFile = path.join(dir, 'cert.pem');
  try {
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-days',
        '1',
        '-subj',
        '/CN=127.0.0.1',
        '-addext',
        'subjectAltName=IP:127.0.0.1',
        '-keyout',
        keyFile,
        '-out',
        certFile,
      ],
      { stdio: 'ignore' },
    );
  } catch {
    rmSync(dir, { recursive: true, force: true });
    return 'openssl is not available to make a certificate for the https metadata document';
  }
  const cert = readFileSync(certFile, 'utf8');
  const key = readFileSync(keyFile, 'utf8');
  rmSync(dir, { recursive: true, force: true });
  setDefaultCACertificates([...getCACertificates('default'), cert]);

  const redirectUri = await loopbackRedirectUri();
  let url = '';
  const server = createHttpsServer({ cert, key }, (req, res) => {
    if (req.url !== '/oauth/client.json') {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'max-age=300' });
    res.end(
      JSON.stringify({
        client_id: url,
        client_name: clientName,
        redirect_uris: [redirectUri],
        grant_types: ['authorization_code'],
        response_types: ['code'],
        token_endpoint_auth_method: 'none',
      }),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `https://127.0.0.1:${(server.address() as AddressInfo).port}/oauth/client.json`;
  return {
    url,
    redirectUri,
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** What the authorization server logged about fetching a metadata document. */
export const documentFetches = (logs: string[], clientId: string) =>
  logs
    .map((line) => JSON.parse(line) as Record<string, unknown>)
    .filter((r) => r.message === 'client metadata document fetched' && r.client_id === clientId);

/**
 * The browser's last step for a client with its own callback listener (mcp-remote, the Inspector
 * CLI): the redirect to it, retried briefly, since such a client may print the URL a moment before
 * its listener is up (a person is never that quick).
 */
export async function deliverCallback(callback: URL): Promise<void> {
  for (let attempt = 0; ; attempt += 1) {
    try {
      await (await fetch(callback)).text();
      return;
    } catch (error) {
      if (attempt >= 50) throw error;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}
