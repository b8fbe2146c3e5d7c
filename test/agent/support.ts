/**
 * Helpers for the agent's end-to-end tests: a user who answers every sign-in the agent starts, a
 * server for the agent's client metadata document, and the agent's credentials file.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { CallToolResult } from '@modelcontextprotocol/client';
import { resultText } from '../../src/agent/index.ts';
import { Browser, type PlayedUser, playUser } from '../helpers/oauth.ts';

/** A user at a browser: each authorization URL the agent opens is played through to the callback. */
export function userAt(browser: Browser = new Browser(), email = 'alice@example.com') {
  const plays: PlayedUser[] = [];
  return {
    browser,
    plays,
    openUrl: async (url: string) => {
      plays.push(await playUser(url, { email, browser, followCallback: true }));
    },
  };
}

/** The scopes a consent page asks for anew (not those listed as already allowed). */
export function requestedScopes(consentHtml: string | undefined): string[] {
  const list = /<ul class="scopes requested">([\s\S]*?)<\/ul>/.exec(consentHtml ?? '')?.[1] ?? '';
  return [...list.matchAll(/<code>([^<]+)<\/code>/g)].map((match) => match[1]!);
}

/** A fresh credentials file path (in a new directory nobody else uses). */
export const storeFile = () =>
  path.join(mkdtempSync(path.join(tmpdir(), 'gatehouse-agent-')), 'credentials.json');

export interface StoreContents {
  authorizationServers: Record<
    string,
    {
      registration?: {
        client_id: string;
        registration_client_uri?: string;
        registration_access_token?: string;
      };
      tokens: Record<string, { access_token: string; refresh_token?: string; scope?: string }>;
      dpop_keys?: Record<string, { private_jwk: { d?: string } }>;
    }
  >;
}

export const readStore = (file: string) => JSON.parse(readFileSync(file, 'utf8')) as StoreContents;

/** Every token, registration secret and DPoP private key in the store: none may appear in a trace. */
export function secretsIn(file: string): string[] {
  const secrets: string[] = [];
  for (const entry of Object.values(readStore(file).authorizationServers)) {
    if (entry.registration?.registration_access_token)
      secrets.push(entry.registration.registration_access_token);
    for (const tokens of Object.values(entry.tokens)) {
      secrets.push(tokens.access_token);
      if (tokens.refresh_token) secrets.push(tokens.refresh_token);
    }
    for (const key of Object.values(entry.dpop_keys ?? {}))
      if (key.private_jwk.d) secrets.push(key.private_jwk.d);
  }
  return secrets;
}

export function parseResult<T>(result: CallToolResult): T {
  if (result.isError) throw new Error(`the tool failed: ${resultText(result)}`);
  return JSON.parse(resultText(result)) as T;
}

/** Serves one JSON document on 127.0.0.1 (a client ID metadata document), counting the fetches. */
export async function serveDocument(pathname: string, document: (url: string) => unknown) {
  let hits = 0;
  let url = '';
  const server = createServer((req, res) => {
    if (new URL(req.url ?? '/', 'http://x').pathname !== pathname) {
      res.writeHead(404).end();
      return;
    }
    hits += 1;
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(document(url)));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}${pathname}`;
  return {
    url,
    hits: () => hits,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
